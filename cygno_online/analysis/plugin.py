"""The analyzer plugin interface and its discovery.

An analyzer is a class with a tiny life cycle, modelled on MIDAS's manalyzer:

* ``configure(params, env)`` - read and validate its parameters (also called
  again on SIGHUP with new parameters, between events);
* ``begin_run(run)`` - reset run-scoped state;
* ``process(item, flow)`` - one decoded item in, outputs out;
* ``finish_run(run)`` - optional: outputs of work still pending when the run
  ends (e.g. camera frames waiting for their pedestal), published like an
  event's outputs just before ``end_run``;
* ``end_run(run)`` - the analyzer's section of the end-of-run summary;
* ``export_run_state()`` / ``import_run_state(state)`` - optional: the
  run-scoped state, so that a run survives a daemon restart (checkpointed by
  the daemon, resumed when the same run is still running). Declare it with
  ``run_state = ("attr", ...)`` or override both methods; an analyzer that
  declares nothing starts the resumed run fresh and its summary section says
  so (``resumed_fresh`` in the summary);
* ``catalogue(ctx)`` - what it can emit (metric catalogue: families, tags,
  fields, types, units).

Plugins live in packages (the shipped ones in ``analyzers/``, which installs as
``cygno_online.analyzers``; users add folders with ``plugin_paths``). A plugin
package exposes ``ANALYZERS = [MyAnalyzer, ...]``. Nothing in the daemon core
names a concrete analyzer.

Concurrency contract (the pipeline relies on it):

* events are processed one at a time, in order;
* for one event, items with a different ``item.key`` (``cam0``, ``cam1``...)
  may be processed concurrently on different threads; items with the same key
  never are;
* for one item, the analyzers that consume it run in configuration order on
  one thread and share one ``flow`` dict, so an upstream analyzer can hand
  results down the chain (camera clusters -> classification).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cygno_online.analysis.catalogue import CatalogueContext, SeriesSpec
from cygno_online.analysis.outputs import Output
from cygno_online.decode.items import RunInfo
from cygno_online.errors import ConfigError
from cygno_online.params import Params

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AnalyzerEnv:
    """Services an analyzer may use; all optional so analyzers run in tests
    and in ``cygno-online summary`` without a daemon."""

    experiment: str = "cygno"
    #: writable directory for persistent analyzer state (e.g. pedestal store)
    state_dir: Path | None = None
    #: extra knobs set by the host (e.g. ``workers`` for thread pools)
    options: dict[str, Any] = field(default_factory=dict)


Flow = dict[str, Any]


class Analyzer:
    """Base class of every analyzer plugin."""

    #: unique plugin name used in configuration (``analyzers: [{plugin: NAME}]``)
    name: ClassVar[str] = ""
    #: decoded item types (``cygno_online.decode.items``) this analyzer receives
    consumes: ClassVar[tuple[type, ...]] = ()
    #: one-line description for ``--help`` and docs
    description: ClassVar[str] = ""
    #: names of the attributes holding the run-scoped state (what
    #: ``begin_run`` resets): checkpointed by the daemon and restored when it
    #: restarts during the same run. Their values must be picklable plain
    #: data (numbers, containers, numpy arrays, the plugin's own classes).
    run_state: ClassVar[tuple[str, ...]] = ()
    #: bump when the layout of the run state changes: a checkpoint written
    #: with another version is not imported (the run restarts fresh)
    run_state_version: ClassVar[int] = 1

    def __init__(self) -> None:
        self.instance_name = self.name
        self.env = AnalyzerEnv()

    def configure(self, params: Params, env: AnalyzerEnv) -> None:
        """Read parameters; report problems through ``params`` (collected, with
        key paths). Must not keep a half-applied configuration: read everything
        into locals, then assign."""
        self.env = env

    def begin_run(self, run: RunInfo) -> Iterable[Output]:
        return ()

    def process(self, item: Any, flow: Flow) -> Iterable[Output]:
        raise NotImplementedError

    def finish_run(self, run: RunInfo) -> Iterable[Output]:
        """Outputs of work still pending at the end of the run (called once,
        just before ``end_run``; the host publishes and stores them like an
        event's outputs). Default: none."""
        return ()

    def end_run(self, run: RunInfo) -> dict[str, Any]:
        return {}

    def export_run_state(self) -> Any | None:
        """The run-scoped state for a checkpoint, or None when this analyzer
        cannot be resumed (the default when ``run_state`` is empty). Called on
        the analysis thread between events; the host pickles the result at
        once, so live references are fine (override and copy under a lock
        if another thread mutates them, see ``note_dropped``)."""
        if not self.run_state:
            return None
        return {name: getattr(self, name) for name in self.run_state}

    def import_run_state(self, state: Any) -> None:
        """Restore what ``export_run_state`` returned, right after
        ``begin_run`` of the same run. Raise on anything unusable: the host
        then calls ``begin_run`` again (a fresh start for this analyzer)."""
        if not self.run_state:
            raise ValueError(f"{self.instance_name}: declares no run state")
        missing = [n for n in self.run_state if n not in state]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)}")
        for name in self.run_state:
            setattr(self, name, state[name])

    def warm_up(self) -> None:
        """Compile/prepare expensive code paths (numba kernels) before the host
        reports readiness."""

    def catalogue(self, ctx: CatalogueContext) -> list[SeriesSpec]:
        """The series this (configured) analyzer can emit: family, tag keys,
        fields with type and unit (:mod:`cygno_online.analysis.catalogue`).
        Alarm rules are validated against it and a test checks every point
        the analyzer emits on simulated data against it. An analyzer that
        declares nothing cannot be watched by alarm rules."""
        return []


def _collect(module: Any, found: dict[str, type[Analyzer]], origin: str) -> None:
    for cls in getattr(module, "ANALYZERS", ()):
        if not (isinstance(cls, type) and issubclass(cls, Analyzer)) or not cls.name:
            raise ConfigError(
                "plugin_paths",
                f"{origin}: ANALYZERS entry {cls!r} is not a named Analyzer subclass",
            )
        if cls.name in found and found[cls.name] is not cls:
            raise ConfigError(
                "plugin_paths", f"{origin}: analyzer name {cls.name!r} is defined twice"
            )
        found[cls.name] = cls


def discover(plugin_paths: Iterable[str | Path] = ()) -> dict[str, type[Analyzer]]:
    """All analyzer classes by name: the shipped plugins first, then every
    module or package found in ``plugin_paths``."""
    import cygno_online.analyzers as shipped

    found: dict[str, type[Analyzer]] = {}
    for info in pkgutil.iter_modules(shipped.__path__, shipped.__name__ + "."):
        _collect(importlib.import_module(info.name), found, info.name)
    for folder in plugin_paths:
        folder = Path(folder)
        if not folder.is_dir():
            raise ConfigError("plugin_paths", "is not a directory", value=str(folder))
        for info in pkgutil.iter_modules([str(folder)]):
            mod_name = f"cygno_online_user_plugins.{folder.name}.{info.name}"
            if mod_name in sys.modules:
                module = sys.modules[mod_name]
            else:
                path = folder / info.name
                location = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
                spec = importlib.util.spec_from_file_location(
                    mod_name,
                    location,
                    submodule_search_locations=[str(path)] if info.ispkg else None,
                )
                if spec is None or spec.loader is None:
                    raise ConfigError("plugin_paths", f"cannot import {location}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                try:
                    spec.loader.exec_module(module)
                except Exception as exc:
                    del sys.modules[mod_name]
                    raise ConfigError(
                        "plugin_paths", f"importing {location} failed: {exc}"
                    ) from exc
            _collect(module, found, str(folder / info.name))
    return found
