"""Deterministic detector data for the TUI tests, published through
:class:`FakeSource` exactly as the daemon would publish it."""

from __future__ import annotations

import numpy as np

from cygno_online.tui.source import Expectations, FakeSource, Limit, track_units

#: the tests' wall clock: 2026-01-02 03:04:05 UTC
NOW = 1767323045.0
NOW_NS = int(NOW * 1e9)
RUN_START_NS = NOW_NS - 3725 * 10**9  # 1 h 2 min 5 s ago


def frame(seed: int = 0, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 2.0, shape).astype(np.float32)
    # a bright track whose position depends on the seed
    r = 20 + 7 * (seed % 5)
    img[r : r + 4, 10:70] += 60.0
    return img


def populate(src: FakeSource, *, now_ns: int = NOW_NS, n_points: int = 30) -> FakeSource:
    src.run(
        experiment="LIME",
        run=42901,
        state="running",
        description="S003:DATA:Fe, 55Fe source on",
        start_time_ns=RUN_START_NS,
        exposure_s=0.3,
        source="simulator",
    )
    for i in range(n_points):
        t = now_ns - (n_points - 1 - i) * 600_000_000  # 0.6 s apart
        # the camera analyzer's per-image metric (analyzers/camera)
        src.metric(
            "camera",
            {
                "raw_mean": 100.0 + 0.1 * np.sin(i / 3),
                "raw_rms": 2.5 + 0.05 * (i % 4),
                "n_clusters": 3 + i % 5,
                "n_over_threshold": 1200 + 10 * i,
                "spark": False,
                **{f"box{k}_raw_mean": 100.0 + k * 0.1 for k in range(9)},
                **{f"box{k}_raw_rms": 2.0 + k * 0.01 for k in range(9)},
                **{f"box{k}_ped_mean": 0.1 for k in range(9)},
                **{f"box{k}_ped_rms": 2.6 for k in range(9)},
                # one bad corner (the map does not describe it any more)
                "box2_ped_mean": 24.0,
                "box2_ped_rms": 30.0,
                "frac_over_threshold": 0.0012 + 0.00001 * i,
                "pedestal_age_days": 0.1,
                "pedestal_map_run": 42880,
            },
            tags={"camera": "cam0"},
            units={"raw_mean": "ADU", "raw_rms": "ADU"},
            time_ns=t,
            run=42901,
            serial=i,
        )
        src.metric(
            "daq",
            {"rate_hz": 1.7 + 0.01 * (i % 3), "lag_s": 0.4},
            tags={"event_id": "1"},
            units={"rate_hz": "Hz", "lag_s": "s"},
            time_ns=t,
            run=42901,
            serial=i,
        )
    # slow control (analyzers/slowcontrol): a minute apart, like the equipment
    for i in range(5):
        t = now_ns - (4 - i) * 60 * 10**9
        src.metric(
            "environment",
            # one unconverted channel (no ODB formula): a raw 4-20 mA current
            {"lime_pressure": 0.99 + 0.001 * i, "gas_temperature": 22.0 + 0.1 * i, "p1uin7": 7.3},
            units={"lime_pressure": "bar", "gas_temperature": "C", "p1uin7": "mA"},
            time_ns=t,
        )
        for fld, value, unit in (
            ("demand", 440.0, "V"),
            ("measured", 439.5 + 0.1 * i, "V"),
            ("current", 0.12, "uA"),
        ):
            src.metric("hv", {fld: value}, tags={"channel": "GEM1"}, units={fld: unit}, time_ns=t)
    # the camera temperature shares the camera's series id (last record wins)
    src.metric(
        "camera",
        {"sensor_temperature": -18.2},
        tags={"camera": "cam0"},
        units={"sensor_temperature": "degC"},
        time_ns=now_ns - 5 * 10**9,
    )
    # one old variable: stale
    src.metric("gas", {"he_flow": 20.0}, units={"he_flow": "l/h"}, time_ns=now_ns - 3600 * 10**9)
    src.health(
        rate_in_hz=1.7,
        rate_processed_hz=1.69,
        events_in=6300,
        events_processed=6298,
        events_dropped=2,
        drops={"queue_full": 2},
        latency_ms_p50=180.0,
        latency_ms_p99=420.0,
        source_state="running",
    )
    src.display(
        "image",
        "camera/cam0/frame",
        {"image": frame(0)},
        meta={
            "boxes": [{"row0": 30, "col0": 40, "row1": 50, "col1": 60, "class": "fe55"}],
            "scale": 4,
        },
        time_ns=now_ns - 1_000_000_000,
        run=42901,
        serial=29,
    )
    edges = np.linspace(0, 20000, 51)
    centers = 0.5 * (edges[:-1] + edges[1:])
    counts = np.round(
        200 * np.exp(-0.5 * ((centers - 7000) / 900) ** 2) + 20 * np.exp(-centers / 5000)
    )
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": counts, "edges": edges},
        meta={"fit": {"mu": 7000.0, "sigma": 900.0}},
        time_ns=now_ns - 2_000_000_000,
    )
    rng = np.random.default_rng(3)
    x = rng.uniform(1000, 20000, 300)
    src.display(
        "scatter",
        "clusters/cam0/length_integral",
        {"y": x, "x": 5 + x / 1000 + rng.normal(0, 1, 300)},
        meta={"x": "length (px)", "y": "integral (ADU)"},
        time_ns=now_ns - 2_000_000_000,
    )
    src.metric(
        "clusters",
        {"n_fe55": 120, "n_alpha": 3, "n_muon": 7, "fe55_integral_mean": 7010.0},
        tags={"camera": "cam0"},
        time_ns=now_ns - 1_000_000_000,
    )
    tt = np.arange(1024)
    waves = {
        f"ch{c}": 3850 - 300 * np.exp(-0.5 * ((tt - 300 - 10 * c) / 8) ** 2) for c in (1, 2, 3, 4)
    }
    src.display(
        "waveforms",
        "pmt/0/latest",
        waves,
        meta={"labels": {"ch1": "PMT1"}},
        time_ns=now_ns - 1_000_000_000,
    )
    src.display(
        "histogram",
        "pmt/0/amplitude/ch1",
        {"counts": np.arange(20, dtype=float), "edges": np.linspace(0, 2000, 21)},
        meta={"label": "PMT1"},
        time_ns=now_ns - 1_000_000_000,
    )
    src.display(
        "histogram",
        "pmt/0/multiplicity",
        {"counts": np.array([5.0, 10, 4, 1]), "edges": np.arange(5) - 0.5},
        time_ns=now_ns - 1_000_000_000,
    )
    for c in (1, 2, 3, 4):
        src.metric(
            "pmt",
            {"baseline": 3850.0 + c, "rms": 2.1, "amplitude": 300.0, "npeaks": 1.0, "charge": 1.5},
            tags={"board": "0", "channel": str(c)},
            time_ns=now_ns - 1_000_000_000,
        )
    src.metric(
        "pmt",
        {"multiplicity": 4, "rate": 12.5},
        tags={"board": "0"},
        time_ns=now_ns - 1_000_000_000,
    )
    src.alarm(
        id="lime_pressure",
        name="LIME gas pressure",
        severity="error",
        state="active_unack",
        active=True,
        rule="lime_pressure",
        limit="outside [0.995, 1.05] for 120 s",
        guidance="check the gas system panel",
        contact="gas expert",
        message="pressure 0.994 bar outside 0.995..1.05",
        value=0.994,
        raised_ns=now_ns - 120 * 10**9,
        transition="raised",
    )
    src.alarm(
        id="no_events",
        name="No trigger events",
        severity="warning",
        state="cleared_unack",
        latched=True,
        message="no events",
        raised_ns=now_ns - 600 * 10**9,
        cleared_ns=now_ns - 300 * 10**9,
        transition="cleared",
    )
    add_summaries(src, now_ns)
    src.log("run 42901 started", time_ns=now_ns - 3725 * 10**9)
    src.log("camera: spark in image 12", level="warning", time_ns=now_ns - 100 * 10**9)
    src.log(
        "Run 42901 started by shifter", level="talk", origin="midas", time_ns=now_ns - 3700 * 10**9
    )
    return src


def summary_doc(run: int, start_ns: int, *, pedestal: bool = False, **over) -> dict:
    """A run summary with the blocks the daemon's summaries carry
    (cygno_online.analysis.summary.build_summary)."""
    doc = {
        "schema": 1,
        "run": run,
        "experiment": "LIME",
        "description": "S000:PED:pedestal, HV off" if pedestal else "S003:DATA:Fe, 55Fe source on",
        "pedestal": pedestal,
        "exposure_s": 0.3,
        "start_time_ns": start_ns,
        "stop_time_ns": start_ns + 240 * 10**9,
        "duration_s": 240.0,
        "counters": {"events_seen": 400, "drop_fraction": 0.0, "complete": True},
        "daq": {"trigger_rate_hz": 1.7, "lag_mean_s": 0.4},
        "camera": {
            "images": 400,
            "spark_fraction": 0.0025,
            "cluster_rate_hz": 0.0 if pedestal else 5.1,
            "fe55_peak": None if pedestal else 7050.0,
            "fe55_width": None if pedestal else 880.0,
            "pedestal_age_days": 0.1,
        },
        "environment": {"gas_temperature": {"mean": 22.1, "unit": "C", "min": 22.0, "max": 22.3}},
        "references": {"fe55_peak": 7200.0},
        "quality_flags": [],
        "quality": "good",
        "generated_ns": start_ns + 241 * 10**9,
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return doc


def add_summaries(src: FakeSource, now_ns: int = NOW_NS) -> None:
    """Three ended runs before the one in progress: pedestal, good, flagged."""
    base = RUN_START_NS - 3 * 600 * 10**9
    src.apply_summary(summary_doc(42898, base, pedestal=True))
    src.apply_summary(summary_doc(42899, base + 600 * 10**9))
    src.apply_summary(
        summary_doc(
            42900,
            base + 1200 * 10**9,
            camera={"fe55_peak": 6100.0, "spark_fraction": 0.07},
            quality="flagged",
            quality_flags=[
                {
                    "flag": "fe55_peak_shifted",
                    "reason": "cam0: 55Fe peak moved by -15.3% from the reference (limit 10%)",
                    "severity": "warning",
                },
                {
                    "flag": "spark_rate_high",
                    "reason": "cam0: 7.0% of the images had a spark (limit 5%)",
                    "severity": "warning",
                },
            ],
        )
    )


def make_source() -> FakeSource:
    limits = [Limit("lime_pressure", "environment", {}, "lime_pressure", 0.995, 1.05, "error")]
    # the reference 55Fe peak of the daemon's configuration (summary.references)
    src = FakeSource(limits=limits, expectations=Expectations(fe55_peak=7200.0))
    # as a client that was connected while the data arrived
    track_units(src)
    return populate(src)


def fe55_spectrum(src: FakeSource, counts, t_ns: int, edges=None) -> None:
    """Publish camera cam0's 55Fe integral spectrum display as the clusters
    analyzer does (50 bins over 0-20000 ADU unless ``edges`` are given)."""
    edges = np.linspace(0.0, 20000.0, 51) if edges is None else edges
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": np.asarray(counts, dtype=float), "edges": edges},
        meta={"units": "ADU"},
        time_ns=t_ns,
    )
