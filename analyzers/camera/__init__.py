"""Camera analysis plugin: the collaboration's offline camera chain, live on
every frame (see README "Camera analysis" and ``sample.yaml``).

Modules: ``kernels`` (numba), ``reference`` (numpy/scipy/sklearn oracle),
``chain`` (configuration and per-frame orchestration), ``pedestals``
(accumulation, estimation, store), ``clusters`` (feature table, 55Fe fit),
``classify`` (cluster classes), ``analyzer`` (the ``camera`` plugin).
"""

from cygno_online.analyzers.camera.analyzer import CameraAnalyzer

ANALYZERS = [CameraAnalyzer]

__all__ = ["ANALYZERS", "CameraAnalyzer"]
