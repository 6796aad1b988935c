"""The MIDAS stand-in follows the documented bindings' behaviour."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from standin import get_midas, midas_event, small_event, standin, standin_autouse  # noqa: F401


def connect(midas, name="t", **kw):
    exp = midas.experiment.create(name)
    client = midas.client.MidasClient("tester", expt_name=name)
    return exp, client


def test_receive_semantics_and_numpy_banks():
    midas = get_midas()
    exp, c = connect(midas)
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
    assert c.receive_event(h, async_flag=True) is None  # returns at once
    assert c.receive_event(h, async_flag=20) is None  # 20 ms timeout
    exp.produce(small_event(7))
    ev = c.receive_event(h, async_flag=1000, use_numpy=True)
    assert ev.header.serial_number == 7 and ev.header.event_id == 1
    assert isinstance(ev.banks["CAM0"].data, np.ndarray)
    assert ev.banks["CAM0"].type == 4 and ev.banks["CAM0"].size_bytes == 64
    exp.produce(small_event(8))
    ev = c.receive_event(h, async_flag=1000)
    assert isinstance(ev.banks["CAM0"].data, tuple)


def test_nonblocking_reader_misses_events_when_buffer_wraps():
    midas = get_midas()
    exp = midas.experiment.create("wrap")
    exp.buffer("SYSTEM", size=10 * 200)
    c = midas.client.MidasClient("t", expt_name="wrap")
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
    for i in range(50):
        exp.produce(small_event(i, size=150), timeout=1)  # never blocks the producer
    got = []
    while (ev := c.receive_event(h, True)) is not None:
        got.append(ev.header.serial_number)
    assert got and got[-1] == 49 and len(got) < 50


def test_get_all_reader_makes_the_producer_wait():
    midas = get_midas()
    exp = midas.experiment.create("all")
    exp.buffer("SYSTEM", size=3 * 200)
    c = midas.client.MidasClient("t", expt_name="all")
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, sampling_type=midas.GET_ALL)
    for i in range(3):
        exp.produce(small_event(i, size=150), timeout=1)
    with pytest.raises(TimeoutError):
        exp.produce(small_event(3, size=150), timeout=0.05)
    t = threading.Thread(
        target=lambda: [exp.produce(small_event(i, size=150)) for i in range(3, 8)]
    )
    t.start()
    got = [c.receive_event(h, async_flag=2000).header.serial_number for _ in range(8)]
    t.join()
    assert got == list(range(8))


def test_request_filters_on_event_id():
    midas = get_midas()
    exp, c = connect(midas, "filter")
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, event_id=3, sampling_type=midas.GET_NONBLOCKING)
    exp.produce(small_event(1, event_id=1))
    exp.produce(small_event(2, event_id=3))
    assert c.receive_event(h, 500).header.serial_number == 2


def test_event_bigger_than_receive_buffer_is_an_error():
    midas = get_midas()
    exp, c = connect(midas, "big")
    h = c.open_event_buffer("SYSTEM", max_event_size=100)
    c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
    exp.produce(small_event(1, size=400))
    with pytest.raises(midas.MidasError):
        c.receive_event(h, 500)


def test_string_bank_makes_the_unpacker_raise():
    midas = get_midas()
    exp, c = connect(midas, "str")
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, sampling_type=midas.GET_NONBLOCKING)
    exp.produce(midas_event(1, {"TEXT": (12, b"hello\0")}))
    with pytest.raises(ValueError):
        c.receive_event(h, 500, use_numpy=True)


def test_transitions_fire_only_in_communicate_on_the_calling_thread():
    midas = get_midas()
    exp, c = connect(midas, "tr")
    calls = []
    c.register_transition_callback(
        midas.TR_START, 500, lambda cl, run: calls.append(("start", run, threading.get_ident()))
    )
    c.register_transition_callback(
        midas.TR_STOP, 500, lambda cl, run: calls.append(("stop", run, threading.get_ident()))
    )
    exp.start_run(42, "S001:DATA:test")
    assert calls == []  # not before communicate()
    c.communicate(10)
    assert calls == [("start", 42, threading.get_ident())]
    assert c.odb_get("/Runinfo/State") == 3 and c.odb_get("/runinfo/run number") == 42
    exp.stop_run()
    c.communicate(0)
    assert calls[-1][:2] == ("stop", 42)
    with pytest.raises(KeyError):
        c.odb_get("/No/Such/Key")


def test_shutdown_request_raises_system_exit():
    midas = get_midas()
    exp, c = connect(midas, "sd")
    exp.request_shutdown()
    with pytest.raises(SystemExit):
        c.communicate(10)
    # the client disconnected itself: a new one may connect
    midas.client.MidasClient("again", expt_name="sd").disconnect()


def test_one_client_per_process_and_connection_loss():
    midas = get_midas()
    exp, c = connect(midas, "one")
    with pytest.raises(midas.MidasError):
        midas.client.MidasClient("second", expt_name="one")
    exp.go_away()
    with pytest.raises(midas.MidasError):
        c.odb_get("/Runinfo/State")
    c.disconnect()
    with pytest.raises(midas.MidasError):
        midas.client.MidasClient("t", expt_name="one")
    exp.come_back()
    c2 = midas.client.MidasClient("t", expt_name="one")
    c2.msg("hello", is_error=True)
    assert exp.messages == [("t", "hello", True)]
    c2.disconnect()
    with pytest.raises(midas.MidasError):
        midas.client.MidasClient("t", expt_name="undefined")


def test_recent_sampling_skips_old_events():
    midas = get_midas()
    exp, c = connect(midas, "recent")
    h = c.open_event_buffer("SYSTEM", max_event_size=1024)
    c.register_event_request(h, sampling_type=midas.GET_RECENT)
    exp.produce(small_event(1))
    buf = exp.buffer("SYSTEM")
    buf.events[0].time -= 5  # pretend the event is 5 s old
    exp.produce(small_event(2))
    assert c.receive_event(h, 500).header.serial_number == 2
