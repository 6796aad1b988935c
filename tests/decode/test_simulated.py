"""The simulator's events (every layout) decode without errors, and the
CYGNO-04 millisecond time stamps resolve to the simulator's absolute times."""

from __future__ import annotations

import pytest

from cygno_online.decode.bankmap import EventDecoder
from cygno_online.decode.items import CameraFrame, DigitizerBoard, SlowControl
from cygno_online.decode.runinfo import run_info_from_odb
from cygno_online.midas.event import parse_event
from cygno_online.simulate.run import Simulator


@pytest.mark.parametrize(
    ("layout", "kw", "shape", "dgh"),
    [
        ("cygno04", {"cameras": 1}, (2304, 4096), "B"),
        ("crop:256", {"cameras": 2}, (256, 256), "A"),
    ],
)
def test_simulated_run_decodes(layout, kw, shape, dgh):
    sim = Simulator(layout, run=3, sc_every_n_triggers=2, **kw)
    bor = parse_event(sim.bor(), source="sim", offset=0)
    dec = EventDecoder.lime()
    info = run_info_from_odb(bor.odb(), run=3, time_stamp=bor.header.time_stamp, source="sim")
    dec.begin_run(info)
    equipment = set()
    ntrig = 0
    for se in sim.events(2):
        res = dec.decode(parse_event(se.data, source="sim", offset=0), run=3)
        assert not res.errors, [str(e) for e in res.errors]
        if se.event_id == 1:
            ntrig += 1
            # trigger events: exact to the millisecond (CYGNO-04) or second (LIME)
            tol = 1_000_000 if layout == "cygno04" else 1_000_000_000
            assert abs(res.seen.ctx.time_ns - se.time_ns) < tol
            frames = [i for i in res.items if isinstance(i, CameraFrame)]
            assert len(frames) == kw["cameras"] and all(f.image.shape == shape for f in frames)
            boards = [i for i in res.items if isinstance(i, DigitizerBoard)]
            assert {b.layout for b in boards} == {dgh}
        equipment |= {i.equipment for i in res.items if isinstance(i, SlowControl)}
    assert ntrig == 2
    assert equipment >= {"hv", "cathode", "environment", "camera", "trigger_module"}
    assert not dec.warnings
