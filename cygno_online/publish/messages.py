"""The versioned wire format between the daemon and its viewers.

A message is a ZeroMQ multipart message::

    [topic, envelope, *array_frames]

* ``topic`` - UTF-8, ``<kind>`` or ``<kind>.<detail>`` (``metric.camera``,
  ``display.camera/cam0/frame``, ``alarm``, ``run``, ``log``, ``summary``,
  ``health``, ``hb``); subscribers filter on its prefix.
* ``envelope`` - msgpack map ``{"v": PROTOCOL_VERSION, "seq": int,
  "kind": str, "body": {...}, "arrays": [[name, dtype, shape], ...]}``;
  ``seq`` increases by exactly one per published message (all topics), so a
  viewer that subscribes to everything detects any gap.
* ``array_frames`` - raw C-contiguous bytes of each array listed in
  ``arrays``, in order (no copy, no base64).

Bodies by kind (all times Unix nanoseconds):

* ``metric``: ``family, time_ns, run, serial, tags, fields, units``
* ``display``: ``kind, name, run, serial, time_ns, meta`` (+ arrays)
* ``run``: ``experiment, run, state, description, start_time_ns, stop_time_ns,
  exposure_s, pedestal, source``
* ``alarm``: see :class:`cygno_online.publish.state.AlarmRecord`
* ``log``: ``time_ns, level, origin, text, run, serial``
* ``summary``: the end-of-run summary document
* ``health``: daemon self-monitoring (queues, drops, cpu, memory...)
* ``hb``: ``time_ns`` (heartbeat; lets a viewer say "disconnected since")

The snapshot reply uses the same framing with kind ``snapshot`` and body
:meth:`MonitorState.to_body`; its ``seq`` is the last sequence number the
snapshot includes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from cygno_online.analysis.outputs import Display, Metric

PROTOCOL_VERSION = 1

KINDS = ("metric", "display", "run", "alarm", "log", "summary", "health", "hb", "snapshot")


class ProtocolError(ValueError):
    """A message that does not follow this module's format."""


@dataclass(slots=True)
class Message:
    kind: str
    body: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    seq: int = 0
    topic: str = ""

    def make_topic(self) -> str:
        if self.topic:
            return self.topic
        if self.kind == "metric":
            return f"metric.{self.body['family']}"
        if self.kind == "display":
            return f"display.{self.body['name']}"
        return self.kind


def metric_message(m: Metric) -> Message:
    return Message(
        "metric",
        {
            "family": m.family,
            "time_ns": m.time_ns,
            "run": m.run,
            "serial": m.serial,
            "tags": m.tags,
            "fields": m.fields,
            "units": m.units,
        },
    )


def display_message(d: Display) -> Message:
    return Message(
        "display",
        {
            "kind": d.kind,
            "name": d.name,
            "run": d.run,
            "serial": d.serial,
            "time_ns": d.time_ns,
            "meta": d.meta,
        },
        dict(d.arrays),
    )


def metric_from_body(body: dict[str, Any]) -> Metric:
    return Metric(
        family=body["family"],
        time_ns=body["time_ns"],
        run=body["run"],
        serial=body["serial"],
        fields=dict(body["fields"]),
        tags=dict(body.get("tags") or {}),
        units=dict(body.get("units") or {}),
    )


def display_from_message(body: dict[str, Any], arrays: dict[str, np.ndarray]) -> Display:
    return Display(
        kind=body["kind"],
        name=body["name"],
        run=body["run"],
        serial=body["serial"],
        time_ns=body["time_ns"],
        arrays=arrays,
        meta=dict(body.get("meta") or {}),
    )


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(msg: Message) -> list[bytes | memoryview]:
    """Multipart frames for ``msg`` (arrays are sent as zero-copy buffers)."""
    specs = []
    frames: list[bytes | memoryview] = []
    for name, arr in msg.arrays.items():
        arr = np.ascontiguousarray(arr)
        specs.append([name, arr.dtype.str, list(arr.shape)])
        frames.append(memoryview(arr).cast("B") if arr.size else b"")
    envelope = {
        "v": PROTOCOL_VERSION,
        "seq": msg.seq,
        "kind": msg.kind,
        "body": msg.body,
        "arrays": specs,
    }
    head = msgpack.packb(envelope, default=_default, use_bin_type=True)
    return [msg.make_topic().encode(), head, *frames]


def decode(frames: list[bytes | memoryview | Any]) -> Message:
    """Inverse of :func:`encode`; raises :class:`ProtocolError` on anything else."""
    frames = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames, got {len(frames)}")
    try:
        topic = bytes(frames[0]).decode()
        env = msgpack.unpackb(bytes(frames[1]), raw=False, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"undecodable envelope: {exc}") from exc
    if not isinstance(env, dict) or env.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {env.get('v') if isinstance(env, dict) else None!r}"
        )
    specs = env.get("arrays") or []
    if len(specs) != len(frames) - 2:
        raise ProtocolError(f"envelope lists {len(specs)} arrays, message has {len(frames) - 2}")
    arrays = {}
    for (name, dtype, shape), buf in zip(specs, frames[2:], strict=True):
        try:
            arrays[name] = np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"array {name!r}: {exc}") from exc
    kind = env.get("kind")
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}")
    return Message(kind, env.get("body") or {}, arrays, int(env.get("seq", 0)), topic)
