"""The real MIDAS files of ../shared/data decode completely, without errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cygno_online.decode.bankmap import EventDecoder
from cygno_online.decode.items import CameraFrame, DigitizerBoard, EventSeen, SlowControl
from cygno_online.decode.runinfo import run_info_from_odb
from cygno_online.midas.reader import read_events

EXPECTED = {
    # file: (camera shape, trigger events, environment events, camera-status events)
    "run00010.mid.lz4": ((2304, 2304), 4, 5, 3),
    "run00011.mid.gz": ((512, 512), 6, 7, 5),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file_decodes_completely(shared_data, name):
    shape, n_trig, n_env, n_cam = EXPECTED[name]
    path = shared_data / "midas" / name
    dec = EventDecoder.lime()
    counts: Counter = Counter()
    ntrig_seen = []
    run = None
    for ev in read_events(path):
        if ev.is_bor:
            info = run_info_from_odb(
                ev.odb(), run=ev.serial, time_stamp=ev.header.time_stamp, source=name
            )
            assert info.exposure_s == pytest.approx(0.3)
            dec.begin_run(info)
            run = info.run
            continue
        if ev.is_eor:
            continue
        assert run is not None
        res = dec.decode(ev, run=run, source=name)
        assert not res.errors, [str(e) for e in res.errors]
        assert isinstance(res.items[0], EventSeen)
        counts[ev.header.event_id] += 1
        for item in res.items[1:]:
            counts[type(item).__name__] += 1
            if isinstance(item, CameraFrame):
                assert item.image.shape == shape
                assert np.shares_memory(item.image, ev.banks["CAM0"].data)
                # synthetic pedestal ~99 ADU
                assert 80 < float(item.image[:64, :64].mean()) < 120
                assert item.ctx.time_ns == ev.header.time_stamp * 10**9
            elif isinstance(item, DigitizerBoard):
                assert item.layout == "A"
                assert (item.model, item.nchannels, item.nsamples) in (
                    (1742, 32, 1024),
                    (1720, 8, 4000),
                )
                if item.model == 1742:
                    ntrig_seen.append(item.ntriggers)
            elif isinstance(item, SlowControl):
                if item.equipment == "environment":
                    r = {x.name: x for x in item.readings}
                    assert len(item.readings) == 24
                    assert r["P0IIn0"].unit == "degC" and -20 < r["P0IIn0"].value < 60
                else:
                    assert item.equipment == "camera"
                    assert item.readings[0].unit == "degC"
    assert counts[1] == n_trig and counts[5] == n_env and counts[7] == n_cam
    assert counts["CameraFrame"] == n_trig and counts["DigitizerBoard"] == 2 * n_trig
    assert counts["SlowControl"] == n_env + n_cam
    assert set(ntrig_seen) == {0, 1, 3}
    assert not dec.warnings
