"""A tiny frame generator for the camera tests (independent of the project's
simulator): pedestal + Gaussian noise + Gaussian spots and line tracks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Obj:
    kind: str
    row: float
    col: float
    integral: float


@dataclass
class Gen:
    shape: tuple[int, int] = (512, 512)
    seed: int = 0
    ped_level: float = 100.0
    noise: float = 2.5
    mean: np.ndarray = field(init=False)
    sigma: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.rng = np.random.default_rng(self.seed + 1000)
        self.mean = (self.ped_level + rng.normal(0, 3.0, self.shape)).astype(np.float32)
        self.sigma = np.clip(rng.normal(self.noise, 0.3, self.shape), 1.0, None).astype(np.float32)

    def pedestal_frame(self) -> np.ndarray:
        f = self.mean + self.sigma * self.rng.standard_normal(self.shape, dtype=np.float32)
        return np.clip(np.rint(f), 0, 65535).astype(np.uint16)

    def _add_gauss(self, img: np.ndarray, r: float, c: float, s: float, integral: float) -> None:
        h = int(4 * s + 2)
        r0, r1 = max(int(r) - h, 0), min(int(r) + h + 1, img.shape[0])
        c0, c1 = max(int(c) - h, 0), min(int(c) + h + 1, img.shape[1])
        yy, xx = np.mgrid[r0:r1, c0:c1]
        g = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * s * s))
        img[r0:r1, c0:c1] += integral * g / (2 * np.pi * s * s)

    def _add_line(self, img, r, c, length, angle, width, integral) -> None:
        n = max(int(length), 2)
        t = np.linspace(-0.5, 0.5, n) * length
        for k in range(n):
            self._add_gauss(
                img, r + t[k] * np.sin(angle), c + t[k] * np.cos(angle), width, integral / n
            )

    def frame(self, n_fe=3, n_alpha=0, n_muon=0, fe_integral=6000.0, margin=40):
        sig = np.zeros(self.shape, np.float64)
        objs: list[Obj] = []
        rows, cols = self.shape
        for _ in range(n_fe):
            r, c = self.rng.uniform(margin, rows - margin), self.rng.uniform(margin, cols - margin)
            self._add_gauss(sig, r, c, 4.0, fe_integral)
            objs.append(Obj("fe55", r, c, fe_integral))
        for _ in range(n_alpha):
            r, c = (
                self.rng.uniform(margin + 80, rows - margin - 80),
                self.rng.uniform(margin + 80, cols - margin - 80),
            )
            integ = 2e5
            self._add_line(sig, r, c, 150.0, self.rng.uniform(0, np.pi), 4.0, integ)
            objs.append(Obj("alpha", r, c, integ))
        for _ in range(n_muon):
            r, c = rows / 2, cols / 2
            integ = 3e4
            self._add_line(sig, r, c, 0.8 * min(rows, cols), self.rng.uniform(0, np.pi), 1.5, integ)
            objs.append(Obj("muon", r, c, integ))
        f = self.mean + self.sigma * self.rng.standard_normal(self.shape, dtype=np.float32) + sig
        return np.clip(np.rint(f), 0, 65535).astype(np.uint16), objs
