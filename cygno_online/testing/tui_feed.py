"""A LIME-rate stream of viewer messages for the TUI benchmark.

What the daemon publishes during a LIME data run (docs/lime.md: ~1.7 camera
events per second, 4 PMTs, slow control every 10-60 s), with the shapes and
field names of the shipped analyzers: per image a ``camera`` metric (nine
pedestal boxes, fraction over threshold...), a ``clusters`` metric, a ``daq``
metric, four ``pmt`` channel metrics and a board metric; the displays the
publisher lets through at ``display_hz`` (frame 144x144 at scale 16, the 55Fe
and integral spectra, the length-integral scatter, PMT latest and average
waveforms, per-channel amplitude and the multiplicity spectra); the health
report every second; slow control every 10 s. Frames are noisy (every one
differs everywhere, the worst case for terminal output); a pool of them is
made once so the benchmark times the viewer, not the random generator.
"""

from __future__ import annotations

import numpy as np

from cygno_online.tui.source import Expectations, FakeSource, Limit

#: camera events per second (docs/lime.md)
LIME_RATE_HZ = 1.7
#: the publisher's per-display rate limit (publish.display_hz default)
DISPLAY_HZ = 2.0
SLOW_EVERY_S = 10.0
HEALTH_EVERY_S = 1.0
FRAME_SHAPE = (144, 144)  # 2304 px / display scale 16


class LimeFeed:
    def __init__(self, t0: float, *, seed: int = 1, pool: int = 8) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.frames = []
        for i in range(pool):
            img = rng.normal(100.0, 2.5, FRAME_SHAPE).astype(np.float32)
            r = 20 + 11 * i % 100
            img[r : r + 3, 30:90] += 40.0
            self.frames.append(img)
        self.t0 = t0
        self.serial = 0
        self._next_image = t0
        self._next_slow = t0
        self._next_health = t0
        self._last_display = -1e9
        self.messages = 0
        edges = np.linspace(0, 20000, 51)
        self.fe55_edges = edges
        self.fe55 = np.zeros(50)
        self.integral = np.zeros(50)
        # the PMT analyzer's spectra: 128 amplitude bins over the 12-bit ADC per
        # channel, multiplicity 0..31 (analyzers/pmt/analyzer.py)
        self.amp_edges = np.linspace(0.0, 4096.0, 129)
        self.amp = {c: np.zeros(128) for c in (1, 2, 3, 4)}
        self.mult = np.zeros(32)
        self.wave_sum = {c: np.zeros(1024) for c in (1, 2, 3, 4)}
        self.wave_n = 0

    def source(self) -> FakeSource:
        limits = [
            Limit("lime_pressure", "environment", {}, "lime_pressure", 0.8, 1.2, "error"),
            Limit("gas_temperature", "environment", {}, "gas_temperature", 15, 35, "warning"),
        ]
        src = FakeSource(limits=limits, expectations=Expectations(fe55_peak=7000.0))
        src.run(
            experiment="LIME",
            run=12001,
            state="running",
            description="S003:DATA:Fe, bench",
            start_time_ns=int(self.t0 * 1e9),
            exposure_s=0.3,
        )
        return src

    def advance(self, src: FakeSource, now: float) -> int:
        """Publish everything due up to ``now``; returns the message count."""
        n0 = src._seq
        while self._next_image <= now:
            self._image(src, self._next_image)
            self._next_image += 1.0 / LIME_RATE_HZ
        while self._next_slow <= now:
            self._slow(src, self._next_slow)
            self._next_slow += SLOW_EVERY_S
        while self._next_health <= now:
            t = self._next_health
            src.health(
                rate_in_hz=LIME_RATE_HZ,
                rate_processed_hz=LIME_RATE_HZ,
                events_in=self.serial,
                events_processed=self.serial,
                events_dropped=0,
                latency_ms_p50=180.0,
                latency_ms_p99=400.0,
                source_state="running",
            )
            src.apply(_hb(t))
            self._next_health += HEALTH_EVERY_S
        n = src._seq - n0
        self.messages += n
        return n

    def _image(self, src: FakeSource, t: float) -> None:
        rng = self.rng
        ns = int(t * 1e9)
        self.serial += 1
        s = self.serial
        run = 12001
        fields = {
            "raw_mean": 100.0 + rng.normal(0, 0.05),
            "raw_rms": 2.5 + rng.normal(0, 0.02),
            "ped_mean": rng.normal(0, 0.05),
            "ped_rms": 2.6 + rng.normal(0, 0.02),
            "n_over_threshold": int(rng.integers(4000, 6000)),
            "frac_over_threshold": float(rng.uniform(0.0008, 0.0011)),
            "hot_pixels": 3,
            "spark": False,
            "n_clusters": int(rng.integers(2, 9)),
            "process_ms": 120.0,
            "pedestal_age_days": 0.4,
        }
        for k in range(9):
            fields[f"box{k}_raw_mean"] = 100.0 + rng.normal(0, 0.1)
            fields[f"box{k}_raw_rms"] = 2.6 + rng.normal(0, 0.02)
            fields[f"box{k}_ped_mean"] = rng.normal(0, 0.1)
            fields[f"box{k}_ped_rms"] = 2.6 + rng.normal(0, 0.02)
        src.metric(
            "camera",
            fields,
            tags={"camera": "cam0"},
            units={"raw_mean": "ADU"},
            time_ns=ns,
            run=run,
            serial=s,
        )
        n_fe = int(rng.integers(0, 4))
        fe = rng.normal(7000, 800, n_fe)
        src.metric(
            "clusters",
            {
                "n_clusters": fields["n_clusters"],
                "n_fe55": n_fe,
                "fe55_integral_mean": float(fe.mean()) if n_fe else 7000.0,
            },
            tags={"camera": "cam0"},
            units={"fe55_integral_mean": "ADU"},
            time_ns=ns,
            run=run,
            serial=s,
        )
        src.metric(
            "daq",
            {"rate_hz": LIME_RATE_HZ + rng.normal(0, 0.02), "lag_s": 0.4},
            tags={"event_id": "1"},
            units={"rate_hz": "Hz", "lag_s": "s"},
            time_ns=ns,
            run=run,
            serial=s,
        )
        for ch in (1, 2, 3, 4):
            src.metric(
                "pmt",
                {
                    "baseline": 3850.0 + rng.normal(0, 0.5),
                    "rms": 2.1,
                    "amplitude": 300 + rng.normal(0, 20),
                    "npeaks": 2.0,
                    "saturated": 0,
                    "no_signal": False,
                    "triggers": 5,
                },
                tags={"board": "0", "channel": str(ch)},
                units={"amplitude": "ADC"},
                time_ns=ns,
                run=run,
                serial=s,
            )
        src.metric(
            "pmt",
            {"multiplicity": 5, "rate": 8.5},
            tags={"board": "0"},
            time_ns=ns,
            run=run,
            serial=s,
        )
        if t - self._last_display >= 1.0 / DISPLAY_HZ:
            self._last_display = t
            self._displays(src, ns, s, fe)

    def _displays(self, src: FakeSource, ns: int, s: int, fe: np.ndarray) -> None:
        rng = self.rng
        img = self.frames[s % len(self.frames)]
        src.display(
            "image",
            "camera/cam0/frame",
            {"image": img},
            meta={"scale": 16, "units": "ADU", "boxes": []},
            time_ns=ns,
            run=12001,
            serial=s,
        )
        self.fe55 += np.histogram(fe, self.fe55_edges)[0]
        self.integral += np.histogram(rng.lognormal(8.5, 0.6, 6), self.fe55_edges)[0]
        src.display(
            "histogram",
            "clusters/cam0/fe55_integral",
            {"counts": self.fe55.copy(), "edges": self.fe55_edges},
            meta={"units": "ADU"},
            time_ns=ns,
        )
        src.display(
            "histogram",
            "clusters/cam0/integral",
            {"counts": self.integral.copy(), "edges": self.fe55_edges},
            meta={"units": "ADU"},
            time_ns=ns,
        )
        x = rng.uniform(5, 100, 200)
        src.display(
            "scatter",
            "clusters/cam0/length_integral",
            {"x": x, "y": 100 * x + rng.normal(0, 300, 200)},
            meta={"x": "length (px)", "y": "integral (ADU)"},
            time_ns=ns,
        )
        tt = np.arange(1024)
        waves = {
            f"ch{c}": 3850
            - 300 * np.exp(-0.5 * ((tt - 300 - 10 * c) / 8) ** 2)
            + rng.normal(0, 2, 1024)
            for c in (1, 2, 3, 4)
        }
        labels = {f"ch{c}": f"PMT{c}" for c in (1, 2, 3, 4)}
        meta = {"units": "ADC", "labels": labels, "sample_ns": 1.0}
        src.display("waveforms", "pmt/0/latest", waves, meta=meta, time_ns=ns)
        self.wave_n += 1
        for c in (1, 2, 3, 4):
            self.wave_sum[c] += waves[f"ch{c}"]
        src.display(
            "waveforms",
            "pmt/0/average",
            {f"ch{c}": self.wave_sum[c] / self.wave_n for c in (1, 2, 3, 4)},
            meta={**meta, "triggers": self.wave_n},
            time_ns=ns,
        )
        for c in (1, 2, 3, 4):
            self.amp[c] += np.histogram(rng.normal(300, 20, 5), self.amp_edges)[0]
            src.display(
                "histogram",
                f"pmt/0/amplitude/ch{c}",
                {"counts": self.amp[c].copy(), "edges": self.amp_edges},
                meta={"units": "ADC", "label": labels[f"ch{c}"], "x": "amplitude"},
                time_ns=ns,
            )
        self.mult[int(rng.integers(3, 8))] += 1
        src.display(
            "histogram",
            "pmt/0/multiplicity",
            {"counts": self.mult.copy(), "edges": np.arange(33, dtype=np.float64) - 0.5},
            meta={"units": "triggers per image", "x": "multiplicity"},
            time_ns=ns,
        )

    def _slow(self, src: FakeSource, t: float) -> None:
        rng = self.rng
        ns = int(t * 1e9)
        src.metric(
            "environment",
            {
                "lime_pressure": 1.0 + rng.normal(0, 0.001),
                "gas_temperature": 22.0 + rng.normal(0, 0.05),
                "atm_pressure": 0.93,
                "humidity": 40.0,
            },
            units={
                "lime_pressure": "bar",
                "gas_temperature": "C",
                "atm_pressure": "bar",
                "humidity": "%",
            },
            time_ns=ns,
        )
        for name in ("GEM1", "GEM2", "GEM3", "DRIFT"):
            src.metric(
                "hv",
                {"demand": 440.0, "measured": 440.0 + rng.normal(0, 0.2), "current": 0.12},
                tags={"channel": name},
                units={"demand": "V", "measured": "V", "current": "uA"},
                time_ns=ns,
            )
        src.metric(
            "camera",
            {"sensor_temperature": -20.0 + rng.normal(0, 0.05)},
            tags={"camera": "cam0"},
            units={"sensor_temperature": "degC"},
            time_ns=ns,
        )


def _hb(t: float):
    from cygno_online.publish.messages import Message

    return Message("hb", {"time_ns": int(t * 1e9)})
