"""Test helpers of the simulator tests: a reference DGH0 parser written from
lime.md (independent of the project's decoder) and the lime.md formulas."""

from __future__ import annotations

import numpy as np


def parse_dgh0(words: np.ndarray, layout: str) -> list[dict]:
    """Parse DGH0 layout "A" or "B" (lime.md); asserts every word is consumed."""
    w = [int(x) for x in words]
    p = 0
    if layout == "B":
        assert w[p] == 1000
        p += 1
    nboard = w[p]
    p += 1
    boards = []
    for _ in range(nboard):
        model, ns, nch, nev, adcmax, sampling = w[p : p + 6]
        p += 6
        offsets = w[p : p + nch]
        p += nch
        ttt = w[p : p + nev]
        p += nev
        ttt1 = None
        if layout == "B":
            ttt1 = w[p : p + nev]
            p += nev
        sic = None
        if model == 1742:
            sic = w[p : p + nev]
            p += nev
        boards.append(
            dict(
                model=model,
                nsamples=ns,
                nchannels=nch,
                nevents=nev,
                adcmax=adcmax,
                sampling=sampling,
                offsets=offsets,
                ttt=ttt,
                ttt1=ttt1,
                sic=sic,
            )
        )
    assert p == len(w), f"DGH0: consumed {p} of {len(w)} words"
    return boards


def split_dig0(dig0: np.ndarray, boards: list[dict]) -> list[np.ndarray]:
    """DIG0 as one (nevents, nchannels, nsamples) array per board."""
    out, p = [], 0
    for b in boards:
        n = b["nevents"] * b["nchannels"] * b["nsamples"]
        out.append(dig0[p : p + n].reshape(b["nevents"], b["nchannels"], b["nsamples"]))
        p += n
    assert p == dig0.size
    return out


#: lime.md conversions of INPT, by channel index
FORMULAS = {
    0: lambda x: (x - 4) / 16 * 200 - 50,  # gas temperature C (P0IIn0)
    5: lambda x: (x - 4) / 16 * 1.6 * 1.005454,  # LIME pressure bar (P0IIn5)
    3: lambda x: (x - 4) / 16 * 1.6 * 1.007618,  # atmospheric pressure bar (P0IIn3)
    9: lambda x: -22.7 * x + 82.3,  # atmospheric temperature C (P1UIn1)
    13: lambda x: 0.0375 * x * 1000 - 37.7,  # humidity % (P1UIn5)
    22: lambda x: (x - 4) * 10 / 16,  # gas density g/l (P3IIn6)
}
