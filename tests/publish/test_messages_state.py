import numpy as np
import pytest

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.publish.messages import (
    Message,
    ProtocolError,
    decode,
    display_message,
    encode,
    metric_message,
)
from cygno_online.publish.state import MonitorState


def _metric(serial: int, value: float) -> Metric:
    return Metric(
        "camera",
        1_000 + serial,
        7,
        serial,
        {"mean": value, "nclusters": 3},
        {"camera": "cam0"},
        {"mean": "ADU"},
    )


def test_metric_round_trip_through_frames():
    frames = encode(metric_message(_metric(5, 99.5)))
    msg = decode([bytes(f) for f in frames])
    assert msg.kind == "metric" and msg.topic == "metric.camera"
    assert msg.body["fields"] == {"mean": 99.5, "nclusters": 3}


def test_display_arrays_are_raw_frames():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = Display("image", "camera/cam0/frame", 7, 1, 10, {"image": img}, {"scale": 4})
    frames = encode(display_message(d))
    assert len(frames) == 3 and bytes(frames[2]) == img.tobytes()
    back = decode([bytes(f) for f in frames])
    np.testing.assert_array_equal(back.arrays["image"], img)


def test_decode_rejects_bad_input():
    with pytest.raises(ProtocolError):
        decode([b"metric"])
    with pytest.raises(ProtocolError):
        decode([b"metric", b"\xc1garbage"])
    frames = encode(Message("hb", {"time_ns": 1}))
    with pytest.raises(ProtocolError):
        decode([*frames, b"extra"])


def test_late_viewer_snapshot_equals_live_viewer():
    live, server = MonitorState(), MonitorState()
    msgs = [metric_message(_metric(i, float(i))) for i in range(1, 6)]
    msgs.append(
        display_message(
            Display("image", "camera/cam0/frame", 7, 5, 10, {"image": np.ones((2, 2))}, {})
        )
    )
    msgs.append(
        Message(
            "alarm",
            {
                "id": "a1",
                "name": "spark rate",
                "severity": "error",
                "state": "active_unack",
                "active": True,
                "transition": "raised",
            },
        )
    )
    for seq, m in enumerate(msgs, start=1):
        m.seq = seq
        server.apply(m)
        live.apply(decode([bytes(f) for f in encode(m)]))
    snap = decode([bytes(f) for f in encode(server.to_message())])
    late = MonitorState()
    late.apply(snap)
    assert late.seq == live.seq == len(msgs)
    assert late.series.keys() == live.series.keys()
    assert [p for p in late.history["camera{camera=cam0}"]["mean"]] == [
        p for p in live.history["camera{camera=cam0}"]["mean"]
    ]
    np.testing.assert_array_equal(
        late.displays["camera/cam0/frame"].arrays["image"], np.ones((2, 2))
    )
    assert late.alarm_counts()["error"] == 1


def test_series_are_capped_and_evictions_counted(monkeypatch):
    import cygno_online.publish.state as st

    monkeypatch.setattr(st, "MAX_SERIES", 3)
    state = MonitorState()
    for i in range(5):
        m = Metric("clusters", 100 + i, 1, i, {"integral": 1.0}, {"cluster": str(i)})
        state.apply(metric_message(m))
    assert len(state.series) == 3 and state.series_evicted == 2
    assert "clusters{cluster=0}" not in state.series and "clusters{cluster=4}" in state.series
    assert "clusters{cluster=0}" not in state.history


def test_metrics_of_one_series_from_several_analyzers_are_merged():
    state = MonitorState()
    state.apply(
        metric_message(
            Metric("camera", 1, 7, 1, {"mean": 99.0}, {"camera": "cam0"}, {"mean": "ADU"})
        )
    )
    state.apply(
        metric_message(
            Metric(
                "camera",
                2,
                7,
                2,
                {"sensor_temperature": -18.0},
                {"camera": "cam0"},
                {"sensor_temperature": "degC"},
            )
        )
    )
    rec = state.series["camera{camera=cam0}"]
    assert rec.fields == {"mean": 99.0, "sensor_temperature": -18.0}
    assert rec.units == {"mean": "ADU", "sensor_temperature": "degC"} and rec.serial == 2
