"""``cygno-online bench pmt``: PMT/GEM waveform features per camera image, the
numba kernel against the plain numpy/scipy reference.

One image carries ``--triggers`` PMT triggers on two boards, LIME-sized: the
fast V1742 (8 channels x 1024 samples, channels 1-7 analysed, 100 baseline
samples) and the slow V1720 (8 x 4000, channels 1-4, 400 baseline samples).
Waveforms are realistic synthetic ones (noise, negative pulses, some clipped).
Rows: all features of the image (kernel vs reference, results checked equal
first), peak finding alone (kernel vs ``scipy.signal.find_peaks``), and the
whole analyzer ``process`` of both boards (metrics + displays, no reference).
"""

from __future__ import annotations

import argparse

from cygno_online.bench.harness import Case, Report, run_cases

BENCH = "pmt"
HELP = "PMT waveform features per image: numba kernels vs numpy/scipy reference"

BOARDS = (
    # board, model, nsamples, sample_ns, channels analysed, baseline samples
    (0, 1742, 1024, 1000 / 750, (1, 2, 3, 4, 5, 6, 7), 100),
    (1, 1720, 4000, 4.0, (1, 2, 3, 4), 400),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--triggers", type=int, default=3, help="PMT triggers per image and board (3)"
    )
    parser.add_argument("--seed", type=int, default=1, help="waveform generator seed (1)")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per row (15)")


def run(args: argparse.Namespace) -> Report:
    import numpy as np
    from scipy.signal import find_peaks as scipy_find_peaks

    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.analyzers.pmt import PmtAnalyzer
    from cygno_online.analyzers.pmt import kernels as kern
    from cygno_online.analyzers.pmt.reference import (
        synthetic_block,
        waveform_features_reference,
    )
    from cygno_online.decode.items import DigitizerBoard, EventContext, RunInfo
    from cygno_online.params import Params

    ntr = max(1, int(args.triggers))
    rng = np.random.default_rng(args.seed)
    nsigma, distance, width = 5.0, 10.0, 2.0
    blocks = []
    for board, model, ns, sample_ns, chans, nbase in BOARDS:
        wf = synthetic_block(rng, ntr, 8, ns)
        blocks.append((board, model, ns, sample_ns, np.array(chans, np.int64), nbase, wf))

    def fast() -> list:
        res = []
        for _, _, ns, _, chans, nbase, wf in blocks:
            out = np.empty((ntr, len(chans), kern.NFEATURES))
            sig = np.empty((ntr, len(chans), ns), dtype=np.float32)
            kern.waveform_features(wf, chans, nbase, -1.0, nsigma, distance, width, 4095, out, sig)
            res.append(out)
        return res

    def reference() -> list:
        return [
            waveform_features_reference(wf, chans, nbase, -1.0, nsigma, distance, width, 4095)
            for _, _, _, _, chans, nbase, wf in blocks
        ]

    # Same numbers first: a fast wrong answer is not a result.
    worst = 0.0
    for a, b in zip(fast(), reference(), strict=True):
        worst = max(worst, float(np.max(np.abs(a - b)[..., : kern.F_PEAK_SAMPLE])))

    signals = []
    for _, _, _, _, chans, nbase, wf in blocks:
        for t in range(ntr):
            for ch in chans:
                raw = wf[t, ch].astype(np.float64)
                base = raw[:nbase].mean()
                signals.append((-(raw - base), nsigma * raw[:nbase].std()))

    # Peak positions per waveform. scipy orders equal heights with numpy's
    # unstable argsort (CPU-dependent on AVX-512); a difference is only
    # legitimate where two equal-height candidates lie closer than distance.
    identical = tie_only = 0
    for x, h in signals:
        ours = kern.find_peaks(x, h, distance, width)
        theirs = scipy_find_peaks(x, height=h, distance=distance, width=width)[0]
        if np.array_equal(ours, theirs):
            identical += 1
            continue
        cand = scipy_find_peaks(x, height=h)[0]
        close = np.diff(cand) < np.ceil(distance)
        if np.any(close & (x[cand[1:]] == x[cand[:-1]])):
            tie_only += 1

    def peaks_fast() -> int:
        return sum(len(kern.find_peaks(x, h, distance, width)) for x, h in signals)

    def peaks_ref() -> int:
        return sum(
            len(scipy_find_peaks(x, height=h, distance=distance, width=width)[0])
            for x, h in signals
        )

    analyzer = PmtAnalyzer()
    analyzer.configure(Params({}, "bench"), AnalyzerEnv())
    analyzer.warm_up()
    t0 = 1_700_000_000 * 10**9
    run_info = RunInfo(run=1, start_time_ns=t0)
    analyzer.begin_run(run_info)
    items = [
        DigitizerBoard(
            ctx=EventContext(1, 1, 1, 0, t0),
            board=board,
            model=model,
            nsamples=ns,
            nchannels=8,
            ntriggers=ntr,
            adcmax=4096,
            sampling=1333 if model == 1742 else 250,
            sample_ns=sample_ns,
            offsets=np.zeros(8, np.uint32),
            ttt=np.arange(ntr, dtype=np.uint32) * 12000,
            waveforms=wf,
            layout="A",
        )
        for board, model, ns, sample_ns, _, _, wf in blocks
    ]

    def analyzer_image() -> int:
        return sum(len(list(analyzer.process(it, {}))) for it in items)

    nwave = len(signals)
    cases = [
        Case(
            f"features image ({ntr} trg x 2 boards)",
            fast,
            reference,
            units=1,
            unit_name="img",
            repeat=args.repeat,
            reference_repeat=max(3, args.repeat // 3),
        ),
        Case(
            f"find_peaks ({nwave} waveforms)",
            peaks_fast,
            peaks_ref,
            units=nwave,
            unit_name="wf",
            repeat=args.repeat,
            reference_repeat=max(3, args.repeat // 3),
        ),
        Case(
            "pmt analyzer process (2 boards)",
            analyzer_image,
            None,
            units=1,
            unit_name="img",
            repeat=args.repeat,
        ),
    ]
    report = run_cases(
        BENCH,
        cases,
        {
            "triggers_per_board": ntr,
            "boards": "V1742 8x1024 (ch1-7) + V1720 8x4000 (ch1-4)",
            "max_abs_diff_vs_reference": f"{worst:.2e}",
            "peaks_identical_to_scipy": f"{identical}/{len(signals)} waveforms",
            "peaks_differing_only_by_tie_order": tie_only,
            "peaks_differing_otherwise": len(signals) - identical - tie_only,
            "peaks_found": peaks_fast(),
        },
    )
    return report
