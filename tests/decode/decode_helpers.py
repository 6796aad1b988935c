"""Building MIDAS events and ODBs for the decoder tests (through the
project's own ``cygno_online.midas`` encoder and parser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cygno_online.decode.items import RunInfo
from cygno_online.midas.event import encode_event, parse_event
from cygno_online.midas.odb import Odb

TID_UINT16 = 4
TID_INT16 = 5
TID_UINT32 = 6
TID_FLOAT = 9
TID_DOUBLE = 10
TID_CHAR = 3


def event(
    event_id: int,
    banks: list[tuple[str, int, Any]],
    *,
    serial: int = 1,
    time_stamp: int = 1_700_000_000,
    trigger_mask: int = 0,
    **kw: Any,
):
    """An Event parsed from freshly encoded bytes (so bank data are views of
    the event buffer, as in production)."""
    buf = encode_event(
        event_id, serial, banks, trigger_mask=trigger_mask, time_stamp=time_stamp, **kw
    )
    return parse_event(buf, source="test", offset=0)


def odb(tree: dict[str, Any] | None = None) -> Odb:
    return Odb(tree or {})


def real_odb(shared_data: Path) -> Odb:
    return Odb.from_json_file(shared_data / "odb" / "lime_lngs_run42901_odb.json")


def run_info(run: int = 1, odb_obj: Any = None, start_s: int = 1_700_000_000) -> RunInfo:
    return RunInfo(run=run, start_time_ns=start_s * 1_000_000_000, odb=odb_obj)


def lime_dgh0_a(
    ntrig: tuple[int, int] = (1, 1), *, versioned: bool = False, rng=None
) -> tuple[np.ndarray, np.ndarray]:
    """DGH0 (layout A, or B if ``versioned``) and DIG0 for a V1742 + V1720 pair."""
    rng = rng or np.random.default_rng(1)
    words: list[int] = [1000] if versioned else []
    words.append(2)
    data = []
    for (model, ns, nch, samp), nev in zip(
        ((1742, 1024, 32, 1333), (1720, 4000, 8, 250)), ntrig, strict=True
    ):
        words += [model, ns, nch, nev, 4096, samp]
        words += list(range(100, 100 + nch))  # offsets
        words += [1000 + k for k in range(nev)]  # ttt
        if versioned:
            words += [2000 + k for k in range(nev)]  # ttt1
        if model == 1742:
            words += [k % 1024 for k in range(nev)]  # sic
        data.append(rng.integers(0, 4096, size=nev * nch * ns, dtype=np.uint16))
    return np.array(words, dtype=np.uint32), np.concatenate(data).astype(np.uint16)


def dgh0_c(boards: list[tuple[int, int, int, int, int]], version: int = 1001) -> np.ndarray:
    """Layout C header words for boards (model, nsamples, nchannels, nevents, sampling)."""
    words: list[int] = []
    n = len(boards)
    for i, (model, ns, nch, nev, samp) in enumerate(boards):
        words += [version, n, i, model, ns, nch, nev, 4096, samp]
        words += [7] * nch
        words += [3000 + k for k in range(nev)]  # ttt
        words += [0x5 + k for k in range(nev)]  # pattern
        if model == 1742:
            words += [k for k in range(nev)]  # sic
    return np.array(words, dtype=np.uint32)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
