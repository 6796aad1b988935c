"""Camera banks (CAM0..CAMn): dense little-endian uint16, row-major, no header.

The image is a zero-copy ``(rows, cols)`` view of the bank. The shape comes,
in this order, from the configuration (per camera, then the rule's global
``shape``), from the ODB (an optional ``odb_shape`` path), and only then from
the bank size when that is unambiguous (:func:`infer_shape`). A size that does
not match the expected shape is a :class:`BankError` naming both.
"""

from __future__ import annotations

import math
from typing import Any

from cygno_online.decode.common import TID_INT16, TID_UINT16, BankError, bank_array, trailing_number
from cygno_online.decode.items import CameraFrame, EventContext

LIME_SHAPE = (2304, 2304)
OLD_SHAPE = (2048, 2048)
#: ORCA-Quest: 2304 rows (high) x 4096 cols (wide)
QUEST_SHAPE = (2304, 4096)
#: full sensors the inference knows, by pixel count
KNOWN_SHAPES = {r * c: (r, c) for r, c in (LIME_SHAPE, OLD_SHAPE, QUEST_SHAPE)}
#: a square crop cannot be larger than the smallest sensor dimension in use
MAX_CROP = 2304


def infer_shape(npix: int) -> tuple[int, int] | None:
    """Shape from the pixel count alone, or ``None`` when not unambiguous.

    Full LIME (2304x2304), old (2048x2048) and Quest (2304x4096) frames are
    recognised by size; otherwise a perfect square up to 2304 is a square crop.
    (2304*4096 is also 3072**2, but no sensor in use can give a 3072 crop.)
    """
    if npix in KNOWN_SHAPES:
        return KNOWN_SHAPES[npix]
    side = math.isqrt(npix)
    if npix > 0 and side * side == npix and side <= MAX_CROP:
        return (side, side)
    return None


def _shape_from_value(value: Any) -> tuple[int, int] | None:
    """An ODB value giving a shape: ``[rows, cols]`` or ``"rows x cols"``."""
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").split("x")
        try:
            value = [int(p) for p in parts]
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            r, c = int(value[0]), int(value[1])
        except (TypeError, ValueError):
            return None
        if r > 0 and c > 0:
            return (r, c)
    return None


class CameraDecoder:
    """Decodes one camera bank into a :class:`CameraFrame`."""

    def __init__(
        self,
        shape: tuple[int, int] | None = None,
        cameras: dict[int, tuple[int, int]] | None = None,
        odb_shape: str | None = None,
        infer: bool = True,
    ) -> None:
        self.shape = shape
        self.cameras = dict(cameras or {})
        self.odb_shape = odb_shape
        self.infer = infer
        self._odb_shapes: dict[int, tuple[int, int] | None] = {}
        self._odb: Any = None

    def begin_run(self, odb: Any) -> None:
        self._odb = odb
        self._odb_shapes.clear()

    def _odb_shape_for(self, camera: int) -> tuple[int, int] | None:
        if self.odb_shape is None or self._odb is None:
            return None
        if camera not in self._odb_shapes:
            path = self.odb_shape.replace("{n}", str(camera))
            try:
                value = self._odb.get(path, None)
            except Exception:
                value = None
            self._odb_shapes[camera] = _shape_from_value(value)
        return self._odb_shapes[camera]

    def expected_shape(self, camera: int) -> tuple[tuple[int, int] | None, str]:
        """(shape, where it came from) for camera ``camera``."""
        if camera in self.cameras:
            return self.cameras[camera], "configuration (cameras)"
        if self.shape is not None:
            return self.shape, "configuration (shape)"
        odb = self._odb_shape_for(camera)
        if odb is not None:
            return odb, f"ODB {self.odb_shape}"
        return None, ""

    def decode(self, bank: Any, ctx: EventContext) -> CameraFrame:
        pixels = bank_array(bank, (TID_UINT16, TID_INT16), as_dtype="<u2")
        camera = trailing_number(bank.name)
        camera = 0 if camera is None else camera
        npix = int(pixels.size)
        shape, origin = self.expected_shape(camera)
        if shape is None:
            shape = infer_shape(npix) if self.infer else None
            if shape is None:
                raise BankError(
                    "camera_shape",
                    f"cannot tell the image shape of {npix} pixels ({2 * npix} bytes): "
                    "not a known sensor size nor a square crop; configure shape: [rows, cols]",
                    bank.name,
                )
        rows, cols = shape
        if rows * cols != npix:
            raise BankError(
                "camera_shape",
                f"expected {rows}x{cols} = {rows * cols} pixels ({2 * rows * cols} bytes) "
                f"from {origin}, got {npix} pixels ({2 * npix} bytes)",
                bank.name,
            )
        # reshape of a contiguous 1-D view is a view: the frame is never copied
        image = pixels.reshape(rows, cols)
        return CameraFrame(ctx=ctx, camera=camera, bank=bank.name, image=image)
