"""The analysis chain with fake decoders and analyzers: routing, flow,
per-key concurrency, failure isolation, reconfiguration and plugin discovery."""

from __future__ import annotations

import textwrap
import threading
from dataclasses import dataclass, field

import pytest

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, discover
from cygno_online.decode.items import CameraFrame, EventContext, EventSeen, RunInfo
from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params

CTX = EventContext(run=3, serial=10, event_id=1, trigger_mask=0, time_ns=1, source="t")


@dataclass
class FakeDecoded:
    items: list
    errors: list = field(default_factory=list)
    seen: object = None


class FakeDecoder:
    def __init__(self, items):
        self.items = items
        self.runs = []

    def begin_run(self, run):
        self.runs.append(run.run)

    def decode(self, event, *, run, source="", received_ns=0):
        return FakeDecoded(list(self.items))


class Producer(Analyzer):
    name = "producer"
    consumes = (CameraFrame,)

    def configure(self, params, env):
        super().configure(params, env)
        self.gain = params.number("gain", 1.0, minimum=0)
        self.threads = set()
        self.barrier = None

    def process(self, item, flow):
        self.threads.add(threading.get_ident())
        if self.barrier is not None:
            # Both cameras must be inside process() at once for this to pass.
            self.barrier.wait(timeout=60)
        flow["clusters"] = [item.camera * self.gain]
        return [Metric("camera", 1, 3, 10, {"v": item.camera * self.gain}, {"camera": item.key})]

    def end_run(self, run):
        return {"gain": self.gain}


class Consumer(Analyzer):
    name = "consumer"
    consumes = (CameraFrame,)

    def process(self, item, flow):
        return [Metric("clusters", 1, 3, 10, {"n": len(flow["clusters"])}, {"camera": item.key})]


class Broken(Analyzer):
    name = "broken"
    consumes = (EventSeen,)

    def process(self, item, flow):
        raise RuntimeError("kaput")


CLASSES = {c.name: c for c in (Producer, Consumer, Broken)}


def frames(n):
    return [CameraFrame(CTX, i, f"CAM{i}", None) for i in range(n)]


def make_chain(cfg, items, workers=1):
    return AnalysisChain.from_params(
        Params(cfg), AnalyzerEnv(), workers=workers, classes=CLASSES, decoder=FakeDecoder(items)
    )


def test_items_routed_in_order_with_flow():
    cfg = {"analyzers": [{"plugin": "producer", "params": {"gain": 2.0}}, {"plugin": "consumer"}]}
    chain = make_chain(cfg, frames(2))
    chain.begin_run(RunInfo(run=3, start_time_ns=0))
    res = chain.process_event(object(), run=3)
    fams = sorted((m.family, m.tags["camera"]) for m in res.outputs)
    assert fams == [
        ("camera", "cam0"),
        ("camera", "cam1"),
        ("clusters", "cam0"),
        ("clusters", "cam1"),
    ]
    assert {"producer", "consumer", "decode"} <= set(res.timings_s)
    assert chain.end_run() == {"producer": {"gain": 2.0}, "consumer": {}}


def test_cameras_of_one_event_run_concurrently():
    chain = make_chain({"analyzers": [{"plugin": "producer"}]}, frames(2), workers=2)
    producer = chain.analyzers[0]
    producer.barrier = threading.Barrier(2)
    chain.begin_run(RunInfo(run=3, start_time_ns=0))
    chain.process_event(object(), run=3)
    assert len(producer.threads) == 2
    chain.close()


def test_failing_analyzer_is_isolated_and_counted():
    items = [EventSeen(CTX, 100, ("CAM0",)), *frames(1)]
    chain = make_chain({"analyzers": [{"plugin": "broken"}, {"plugin": "producer"}]}, items)
    chain.begin_run(RunInfo(run=3, start_time_ns=0))
    res = chain.process_event(object(), run=3)
    assert [m.family for m in res.outputs] == ["camera"]
    assert res.analyzer_errors and res.analyzer_errors[0][0] == "broken"
    assert chain.analyzer_failures["broken"] == 1


def test_config_errors_name_key_paths():
    cfg = {
        "analyzers": [
            {"plugin": "producr"},
            {"plugin": "producer", "params": {"gain": -1, "gian": 2}},
        ]
    }
    with pytest.raises(ConfigErrors) as info:
        AnalysisChain.from_params(Params(cfg), classes=CLASSES, decoder=FakeDecoder([]))
    text = str(info.value)
    assert "analyzers[0].plugin: is not an allowed value (got 'producr')" in text
    assert "analyzers[1].params.gain: is out of range" in text or "analyzers[1].params.gain" in text


def test_unknown_param_key_reported():
    with pytest.raises(ConfigError, match=r"analyzers\[0\]\.params\.gian: is not a known key"):
        AnalysisChain.from_params(
            Params({"analyzers": [{"plugin": "producer", "params": {"gian": 2}}]}),
            classes=CLASSES,
            decoder=FakeDecoder([]),
        )


def test_duplicate_instance_names_rejected():
    cfg = {"analyzers": [{"plugin": "producer"}, {"plugin": "producer"}]}
    with pytest.raises(ConfigError, match="unique name"):
        AnalysisChain.from_params(Params(cfg), classes=CLASSES, decoder=FakeDecoder([]))


def test_reconfigure_keeps_state_and_rejects_bad_config():
    chain = make_chain({"analyzers": [{"plugin": "producer", "params": {"gain": 2.0}}]}, frames(1))
    chain.begin_run(RunInfo(run=3, start_time_ns=0))
    producer = chain.analyzers[0]
    with pytest.raises(ConfigError):
        chain.reconfigure(Params({"analyzers": [{"plugin": "producer", "params": {"gain": "x"}}]}))
    assert chain.analyzers[0] is producer and producer.gain == 2.0
    chain.reconfigure(
        Params(
            {"analyzers": [{"plugin": "producer", "params": {"gain": 5.0}}, {"plugin": "consumer"}]}
        )
    )
    assert chain.analyzers[0] is producer and producer.gain == 5.0
    assert [a.name for a in chain.analyzers] == ["producer", "consumer"]


def test_user_plugin_folder_is_discovered(tmp_path):
    (tmp_path / "myplug.py").write_text(
        textwrap.dedent("""
        from cygno_online.analysis.plugin import Analyzer
        from cygno_online.decode.items import RawBank

        class Mine(Analyzer):
            name = "mine"
            consumes = (RawBank,)

            def process(self, item, flow):
                return []

        ANALYZERS = [Mine]
    """)
    )
    found = discover([tmp_path])
    assert "mine" in found


def test_plugin_folder_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        discover([tmp_path / "nope"])
