"""Run segmentation of an event stream (shared by replay and offline summary)."""

from __future__ import annotations

from types import SimpleNamespace

from cygno_online.decode.runinfo import RunTracker, run_number_from_name


def ev(kind: str, serial: int = 1, t: int = 100):
    return SimpleNamespace(
        is_bor=kind == "bor",
        is_eor=kind == "eor",
        serial=serial,
        header=SimpleNamespace(time_stamp=t),
        odb=lambda: None,
    )


def kinds(tracker, events, source="run00042.mid"):
    out = []
    for e in events:
        for tr in tracker.transitions(e, source):
            out.append(tr[0] if tr[0] != "begin" else ("begin", tr[1].run))
    out += [("end", c) for _k, _t, c in tracker.finish()]
    return out


def test_bor_data_eor():
    assert kinds(RunTracker(), [ev("bor", 7), ev("data"), ev("eor", 7)]) == [
        ("begin", 7),
        "event",
        "end",
    ]


def test_data_without_bor_opens_run_named_after_file_and_is_closed_incomplete():
    assert kinds(RunTracker(), [ev("data"), ev("data")]) == [
        ("begin", 42),
        "event",
        "event",
        ("end", False),
    ]


def test_bor_while_open_closes_previous_run():
    out = kinds(RunTracker(), [ev("bor", 1), ev("data"), ev("bor", 2), ev("eor", 2)])
    assert out == [("begin", 1), "event", "end", ("begin", 2), "end"]


def test_stray_eor_is_ignored_and_damaged_odb_keeps_run():
    bad = ev("bor", 5)

    def broken():
        raise ValueError("garbage dump")

    bad.odb = broken
    assert kinds(RunTracker(), [ev("eor"), bad, ev("data")]) == [
        ("begin", 5),
        "event",
        ("end", False),
    ]


def test_run_number_from_name():
    assert run_number_from_name("/data/run00042sub0003.mid.lz4") == 42
    assert run_number_from_name("pedestals.mid") == 0
