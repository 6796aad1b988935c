from __future__ import annotations

import numpy as np
import pytest
from decode_helpers import TID_FLOAT, TID_INT16, TID_UINT16, event, odb, run_info

from cygno_online.decode.bankmap import EventDecoder
from cygno_online.decode.camera import infer_shape
from cygno_online.decode.items import CameraFrame


def cam_map(**opts):
    return EventDecoder.from_config(
        {"banks": [{"event_id": 1, "bank": "CAM*", "decoder": "camera", **opts}]}
    )


def decode(dec, ev, run=7):
    return dec.decode(ev, run=run, source="test")


def test_infer_shape():
    assert infer_shape(2304 * 2304) == (2304, 2304)
    assert infer_shape(2048 * 2048) == (2048, 2048)
    assert infer_shape(2304 * 4096) == (2304, 4096)  # Quest, not a 3072 square
    assert infer_shape(512 * 512) == (512, 512)
    assert infer_shape(256 * 256) == (256, 256)
    assert infer_shape(100 * 200) is None
    assert infer_shape(2400 * 2400) is None  # square larger than any sensor
    assert infer_shape(0) is None


def test_lime_frame_is_zero_copy_view():
    img = np.arange(2304 * 2304, dtype=np.uint16).reshape(2304, 2304)
    ev = event(1, [("CAM0", TID_UINT16, img)])
    res = decode(EventDecoder.lime(), ev)
    assert not res.errors
    frames = [i for i in res.items if isinstance(i, CameraFrame)]
    assert len(frames) == 1
    f = frames[0]
    assert f.camera == 0 and f.bank == "CAM0" and f.key == "cam0"
    assert f.image.shape == (2304, 2304) and f.image.dtype == np.uint16
    assert np.array_equal(f.image, img)
    assert np.shares_memory(f.image, ev.banks["CAM0"].data)
    assert f.ctx.run == 7 and f.ctx.serial == 1 and f.ctx.event_id == 1


def test_quest_cameras_inferred_and_numbered():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 60000, (2304, 4096), dtype=np.uint16) for _ in range(2)]
    ev = event(1, [("CAM0", TID_UINT16, imgs[0]), ("CAM1", TID_UINT16, imgs[1])])
    res = decode(EventDecoder.lime(), ev)
    assert not res.errors
    frames = sorted((i for i in res.items if isinstance(i, CameraFrame)), key=lambda f: f.camera)
    assert [f.camera for f in frames] == [0, 1]
    for f, img in zip(frames, imgs, strict=True):
        assert f.image.shape == (2304, 4096)
        assert np.array_equal(f.image, img)
        assert np.shares_memory(f.image, ev.banks[f.bank].data)


def test_square_crop_inferred():
    img = np.full((512, 512), 99, dtype=np.uint16)
    ev = event(1, [("CAM0", TID_UINT16, img)])
    (frame,) = [i for i in decode(EventDecoder.lime(), ev).items if isinstance(i, CameraFrame)]
    assert frame.image.shape == (512, 512)


def test_configured_shape_wins_and_mismatch_is_named():
    img = np.zeros((256, 1024), dtype=np.uint16)  # 262144 = 512**2
    ev = event(1, [("CAM0", TID_UINT16, img)])
    res = decode(cam_map(shape=[256, 1024]), ev)
    assert not res.errors
    assert res.items[1].image.shape == (256, 1024)
    # without configuration the same size is taken as a 512x512 crop
    assert decode(cam_map(), ev).items[1].image.shape == (512, 512)
    # configured shape that does not match the bank
    res = decode(cam_map(shape=[2304, 2304]), ev)
    (err,) = res.errors
    assert err.bank == "CAM0" and err.kind == "camera_shape"
    assert "expected 2304x2304 = 5308416 pixels" in str(err)
    assert "got 262144 pixels (524288 bytes)" in str(err)
    assert "configuration" in str(err)
    assert res.seen.errors == (("CAM0", "camera_shape", err.reason),)


def test_per_camera_shape_and_other_banks_still_decode():
    a = np.zeros((100, 300), dtype=np.uint16)
    b = np.zeros((64, 64), dtype=np.uint16)
    ev = event(1, [("CAM0", TID_UINT16, a), ("CAM1", TID_UINT16, b), ("CAM2", TID_UINT16, a)])
    dec = cam_map(cameras={0: {"shape": [100, 300]}, 2: {"shape": [300, 100]}})
    res = decode(dec, ev)
    frames = {f.camera: f for f in res.items if isinstance(f, CameraFrame)}
    assert frames[0].image.shape == (100, 300)
    assert frames[1].image.shape == (64, 64)  # inferred square
    assert frames[2].image.shape == (300, 100)


def test_ambiguous_size_is_an_error_not_a_guess():
    ev = event(1, [("CAM0", TID_UINT16, np.zeros(100 * 200, dtype=np.uint16))])
    res = decode(EventDecoder.lime(), ev)
    (err,) = res.errors
    assert err.bank == "CAM0" and "cannot tell the image shape of 20000 pixels" in str(err)
    res = decode(
        cam_map(infer_shape=False), event(1, [("CAM0", TID_UINT16, np.zeros(64, np.uint16))])
    )
    assert res.errors and "configure shape" in str(res.errors[0])


def test_shape_from_odb():
    dec = cam_map(odb_shape="/Configurations/Camera{n} Shape")
    dec.begin_run(run_info(odb_obj=odb({"Configurations": {"Camera0 Shape": [128, 512]}})))
    ev = event(1, [("CAM0", TID_UINT16, np.zeros((128, 512), np.uint16))])
    res = decode(dec, ev)
    assert not res.errors and res.items[1].image.shape == (128, 512)
    ev = event(1, [("CAM0", TID_UINT16, np.zeros((300, 300), np.uint16))])
    (err,) = decode(dec, ev).errors
    assert "from ODB /Configurations/Camera{n} Shape" in str(err)


def test_int16_accepted_float_rejected():
    ev = event(1, [("CAM0", TID_INT16, np.zeros((64, 64), np.int16))])
    res = decode(EventDecoder.lime(), ev)
    assert not res.errors and res.items[1].image.dtype == np.uint16
    ev = event(1, [("CAM0", TID_FLOAT, np.zeros((64, 64), np.float32))])
    (err,) = decode(EventDecoder.lime(), ev).errors
    assert err.kind == "type" and "FLOAT" in str(err)


@pytest.mark.parametrize("shape", [[0, 10], [10], "2304x2304", [1.5, 2]])
def test_bad_shape_config(shape):
    from cygno_online.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        cam_map(shape=shape)
    assert "decode.banks[0].shape: must be [rows, cols]" in str(info.value)
