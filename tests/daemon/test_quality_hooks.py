"""The daemon's hooks of the reference checks: live checks from the periodic
tick go to the viewers (and sink, alarms) like any metric."""

from __future__ import annotations

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.main import Daemon
from cygno_online.decode.items import RunInfo


def test_periodic_tick_publishes_live_checks(tmp_path):
    cfg, chain = parse_config(
        {
            "experiment": "TEST",
            "state_dir": str(tmp_path / "state"),
            "source": {"type": "simulator"},
            "publish": {"enabled": False},
            "analyzers": [{"plugin": "daqhealth"}],
            "quality": {"live_every_s": 60},
        },
        source="test",
    )
    daemon = Daemon(cfg, chain)
    try:
        assert daemon.pipeline.quality is daemon.quality is not None
        now = [0.0]
        daemon.quality.clock = lambda: now[0]
        daemon.quality.begin_run(RunInfo(run=9, start_time_ns=0, description="S003:DATA:Fe"))
        seen = []
        daemon.publisher.submit_outputs = seen.extend
        daemon.periodic()
        assert not [m for m in seen if getattr(m, "family", "") == "quality"]
        now[0] = 61.0
        daemon.periodic()
        quality = [m for m in seen if getattr(m, "family", "") == "quality"]
        assert quality and {m.run for m in quality} == {9}
        assert any(m.tags == {"check": "verdict"} for m in quality)
    finally:
        daemon.registry.close()
        chain.close()
