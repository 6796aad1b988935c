"""Digitizer banks: DGH0 (uint32 header words) + DIG0 (uint16 samples).

Three DGH0 layouts exist (lime.md):

A (LIME 2022-24)
    ``nboard``, then per board ``model, nsamples, nchannels, nevents, adcmax,
    sampling, offsets[nchannels], ttt[nevents]`` and, for a V1742 only,
    ``sic[nevents]``.
B (CYGNO-04)
    the DAQ version word ``1000`` first, then as A with a second time-tag array
    ``ttt1[nevents]`` right after ``ttt``.
C (newest library)
    one header per board, several concatenated: ``version (> 1000), nboard,
    board_index, model, nsamples, nchannels, nevents, adcmax, sampling,
    offsets[nchannels], ttt[nevents], pattern[nevents]`` and ``sic[nevents]``
    for a V1742.

The decoder never guesses: every layout is tried, and one is accepted only
when its words are consumed exactly AND ``sum(nevents*nchannels*nsamples)``
equals the number of samples in DIG0. None or several fitting is an error
naming the bank and why each layout was refused.

DIG0 holds board by board, trigger by trigger, channel by channel,
``nsamples`` each, so each board's waveforms are a zero-copy
``(ntriggers, nchannels, nsamples)`` view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cygno_online.decode.common import (
    TID_INT16,
    TID_INT32,
    TID_UINT16,
    TID_UINT32,
    BankError,
    bank_array,
)
from cygno_online.decode.items import DigitizerBoard, EventContext

#: sanity limits: beyond them a header word is garbage, not a board
MAX_BOARDS = 16
MAX_CHANNELS = 64
MAX_SAMPLES = 1 << 20
MAX_EVENTS = 4096
#: layout B's DAQ version word
VERSION_B = 1000


def sample_ns(model: int, sampling: int) -> float:
    """Sampling period in ns. The x742 family (V1742, DT5742) writes the period
    in ps; the other boards (V1720...) write the rate in MS/s."""
    if model % 1000 == 742:
        return sampling / 1000.0
    if sampling > 0:
        return 1000.0 / sampling
    return math.nan


@dataclass(slots=True)
class BoardHeader:
    """One board as read from DGH0 (array fields are views of DGH0)."""

    board: int
    model: int
    nsamples: int
    nchannels: int
    nevents: int
    adcmax: int
    sampling: int
    offsets: np.ndarray
    ttt: np.ndarray
    ttt1: np.ndarray | None = None
    sic: np.ndarray | None = None
    pattern: np.ndarray | None = None

    @property
    def nwords(self) -> int:
        """uint16 samples this board occupies in DIG0."""
        return self.nevents * self.nchannels * self.nsamples


class _Refused(Exception):
    """A layout does not fit the header words (message says why)."""


class _Cursor:
    def __init__(self, words: np.ndarray) -> None:
        self.words = words
        self.pos = 0

    def take(self, n: int, what: str) -> np.ndarray:
        end = self.pos + n
        if end > self.words.size:
            raise _Refused(
                f"header ends inside {what} (needs {n} word(s) at word {self.pos}, "
                f"has {self.words.size})"
            )
        out = self.words[self.pos : end]
        self.pos = end
        return out

    def word(self, what: str) -> int:
        return int(self.take(1, what)[0])


def _board_fields(cur: _Cursor, label: str) -> tuple[int, int, int, int, int, int]:
    model = cur.word(f"{label} model")
    nsamples = cur.word(f"{label} nsamples")
    nchannels = cur.word(f"{label} nchannels")
    nevents = cur.word(f"{label} nevents")
    adcmax = cur.word(f"{label} adcmax")
    sampling = cur.word(f"{label} sampling")
    if not 1 <= nchannels <= MAX_CHANNELS:
        raise _Refused(f"{label}: nchannels {nchannels} outside 1..{MAX_CHANNELS}")
    if not 1 <= nsamples <= MAX_SAMPLES:
        raise _Refused(f"{label}: nsamples {nsamples} outside 1..{MAX_SAMPLES}")
    if nevents > MAX_EVENTS:
        raise _Refused(f"{label}: nevents {nevents} larger than {MAX_EVENTS}")
    if not 0 < model < 100_000:
        raise _Refused(f"{label}: model {model} is not a digitizer model number")
    return model, nsamples, nchannels, nevents, adcmax, sampling


def _is_742(model: int) -> bool:
    return model % 1000 == 742


def parse_ab(words: np.ndarray, versioned: bool) -> list[BoardHeader]:
    """Layout A (``versioned=False``) or B (leading 1000 and ``ttt1``)."""
    cur = _Cursor(words)
    if versioned:
        version = cur.word("version word")
        if version != VERSION_B:
            raise _Refused(f"first word is {version}, not the version word {VERSION_B}")
    nboard = cur.word("nboard")
    if nboard > MAX_BOARDS:
        raise _Refused(f"nboard {nboard} larger than {MAX_BOARDS}")
    boards = []
    for b in range(nboard):
        label = f"board {b}"
        model, nsamples, nchannels, nevents, adcmax, sampling = _board_fields(cur, label)
        offsets = cur.take(nchannels, f"{label} offsets")
        ttt = cur.take(nevents, f"{label} ttt")
        ttt1 = cur.take(nevents, f"{label} ttt1") if versioned else None
        sic = cur.take(nevents, f"{label} sic") if _is_742(model) else None
        boards.append(
            BoardHeader(
                b, model, nsamples, nchannels, nevents, adcmax, sampling, offsets, ttt, ttt1, sic
            )
        )
    if cur.pos != words.size:
        raise _Refused(f"{words.size - cur.pos} word(s) left over after {nboard} board(s)")
    return boards


def parse_c(words: np.ndarray) -> list[BoardHeader]:
    """Layout C: one self-describing header per board, concatenated."""
    cur = _Cursor(words)
    boards: list[BoardHeader] = []
    nboard_first: int | None = None
    if words.size == 0:
        raise _Refused("header is empty")
    while cur.pos < words.size:
        k = len(boards)
        label = f"header {k}"
        version = cur.word(f"{label} version")
        if version <= VERSION_B:
            raise _Refused(f"{label}: version word {version} is not > {VERSION_B}")
        nboard = cur.word(f"{label} nboard")
        if not 1 <= nboard <= MAX_BOARDS:
            raise _Refused(f"{label}: nboard {nboard} outside 1..{MAX_BOARDS}")
        if nboard_first is None:
            nboard_first = nboard
        elif nboard != nboard_first:
            raise _Refused(
                f"{label}: nboard {nboard} differs from the first header's {nboard_first}"
            )
        index = cur.word(f"{label} board_index")
        if index >= nboard:
            raise _Refused(f"{label}: board_index {index} not below nboard {nboard}")
        model, nsamples, nchannels, nevents, adcmax, sampling = _board_fields(cur, label)
        offsets = cur.take(nchannels, f"{label} offsets")
        ttt = cur.take(nevents, f"{label} ttt")
        pattern = cur.take(nevents, f"{label} pattern")
        sic = cur.take(nevents, f"{label} sic") if _is_742(model) else None
        boards.append(
            BoardHeader(
                index,
                model,
                nsamples,
                nchannels,
                nevents,
                adcmax,
                sampling,
                offsets,
                ttt,
                None,
                sic,
                pattern,
            )
        )
    if nboard_first is not None and len(boards) != nboard_first:
        raise _Refused(f"{len(boards)} header(s) but nboard says {nboard_first}")
    indices = [b.board for b in boards]
    if len(set(indices)) != len(indices):
        raise _Refused(f"board_index repeated: {indices}")
    return boards


LAYOUTS = (
    ("A", lambda w: parse_ab(w, versioned=False)),
    ("B", lambda w: parse_ab(w, versioned=True)),
    ("C", parse_c),
)


def parse_header(words: np.ndarray, nsamples_total: int) -> tuple[str, list[BoardHeader]]:
    """The one layout that fits ``words`` and a DIG0 of ``nsamples_total``
    uint16; raises :class:`BankError` (kind ``digitizer_header``) otherwise."""
    fits: list[tuple[str, list[BoardHeader]]] = []
    reasons: list[str] = []
    for name, parse in LAYOUTS:
        try:
            boards = parse(words)
        except _Refused as exc:
            reasons.append(f"{name}: {exc}")
            continue
        total = sum(b.nwords for b in boards)
        if total != nsamples_total:
            reasons.append(
                f"{name}: header announces {total} samples "
                f"(sum of nevents*nchannels*nsamples), DIG0 has {nsamples_total}"
            )
            continue
        fits.append((name, boards))
    if not fits:
        raise BankError(
            "digitizer_header",
            f"{words.size} header words fit no known layout: " + "; ".join(reasons),
        )
    if len(fits) > 1:
        raise BankError(
            "digitizer_header",
            "header fits several layouts ("
            + ", ".join(n for n, _ in fits)
            + "): refusing to guess",
        )
    return fits[0]


class DigitizerDecoder:
    """Decodes a header bank (DGH0) and its data bank (DIG0) into boards."""

    def decode(
        self, header: Any | None, data: Any | None, ctx: EventContext
    ) -> list[DigitizerBoard]:
        if header is None:
            if data is not None:
                samples = bank_array(data, (TID_UINT16, TID_INT16), as_dtype="<u2")
                if samples.size:
                    raise BankError(
                        "digitizer_header",
                        f"{samples.size} samples but no digitizer header bank",
                        data.name,
                    )
            return []
        words = bank_array(header, (TID_UINT32, TID_INT32), as_dtype="<u4")
        if data is not None:
            samples = bank_array(data, (TID_UINT16, TID_INT16), as_dtype="<u2")
        else:
            samples = np.empty(0, dtype="<u2")
        if words.size == 0 and samples.size == 0:
            return []  # an empty header bank: no board read out
        try:
            layout, headers = parse_header(words, int(samples.size))
        except BankError as exc:
            if data is None:
                exc.message += " (data bank missing)"
            exc.bank = header.name
            raise
        boards = []
        pos = 0
        for h in headers:
            n = h.nwords
            waves = samples[pos : pos + n].reshape(h.nevents, h.nchannels, h.nsamples)
            pos += n
            boards.append(
                DigitizerBoard(
                    ctx=ctx,
                    board=h.board,
                    model=h.model,
                    nsamples=h.nsamples,
                    nchannels=h.nchannels,
                    ntriggers=h.nevents,
                    adcmax=h.adcmax,
                    sampling=h.sampling,
                    sample_ns=sample_ns(h.model, h.sampling),
                    offsets=h.offsets,
                    ttt=h.ttt,
                    waveforms=waves,
                    layout=layout,
                    ttt1=h.ttt1,
                    sic=h.sic,
                    pattern=h.pattern,
                )
            )
        return boards
