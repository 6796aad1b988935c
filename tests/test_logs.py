"""The rate-limited log: first occurrence in full, then one summary line per
interval with the count, never a line per occurrence."""

from __future__ import annotations

import logging

from cygno_online.logs import RateLimitedLog, flush_summaries


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "test.ratelimit"]


def test_first_in_full_then_one_summary_per_interval(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=60, clock=clock)
    with caplog.at_level(logging.INFO):
        for i in range(814):  # a minute of spool drops
            clock.t = i * 60 / 814
            rl.warning("spool full: dropped %d points", i)
        assert lines(caplog) == ["spool full: dropped 0 points"]
        clock.t = 60.0
        assert rl.flush() == 1
        assert lines(caplog)[1] == (
            "spool full: dropped 813 points (813 more in the last 60 s; repeats are summarised)"
        )
        assert rl.flush() == 0  # nothing pending: no empty summary
        clock.t = 500.0  # quiet for a long time: the next one is in full again
        rl.warning("spool full: dropped %d points", 1)
        assert lines(caplog)[-1] == "spool full: dropped 1 points"
    assert rl.total == 815


def test_keys_are_independent_and_a_continuous_flood_is_one_line_per_interval(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=10, clock=clock)
    with caplog.at_level(logging.INFO):
        for i in range(1000):
            clock.t = i * 0.1  # 100 s of a continuous flood
            rl.error("bad request from %s", "a", key="a")
            rl.error("bad request from %s", "b", key="b")
        rl.flush(force=True)
    out = lines(caplog)
    # per key: one full line, then one summary per 10 s window
    assert len([x for x in out if "from a" in x]) <= 12
    assert len([x for x in out if "from b" in x]) <= 12
    total_a = sum(int(x.split("(")[1].split()[0]) for x in out if "from a" in x and "more in" in x)
    assert total_a + 1 == 1000  # every occurrence is counted in a summary


def test_flush_summaries_reaches_every_helper(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=5, clock=clock)
    with caplog.at_level(logging.INFO):
        rl.info("x")
        rl.info("x")
        flush_summaries(force=True)
    assert lines(caplog) == ["x", "x (1 more in the last 0 s; repeats are summarised)"]
