"""What the ODB says about a run: :func:`run_info_from_odb` -> :class:`RunInfo`."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from cygno_online.decode.items import RunInfo

log = logging.getLogger(__name__)

NS = 1_000_000_000


def _get(odb: Any, path: str) -> Any:
    if odb is None:
        return None
    try:
        return odb.get(path, None)
    except Exception as exc:  # a damaged ODB must not stop a run from starting
        log.debug("ODB %s unreadable: %s", path, exc)
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.lower().startswith("0x"):
                return float(int(text, 16))
            # dumps written under a comma-decimal locale
            return float(text.replace(",", "."))
        except ValueError:
            return None
    return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("y", "yes", "true", "1"):
            return True
        if text in ("n", "no", "false", "0"):
            return False
    return None


_TOKENS = re.compile(r"[A-Za-z0-9]+")


def is_pedestal_description(description: str) -> bool:
    """``"S000:PED:HV off"`` -> True; ``"S003:DATA:Fe"`` -> False. A whole
    token ``PED``/``PEDESTAL`` is needed (``"speed test"`` is not a pedestal)."""
    return any(t.upper() in ("PED", "PEDESTAL", "PEDESTALS") for t in _TOKENS.findall(description))


def run_info_from_odb(
    odb: Any,
    *,
    run: int,
    time_stamp: int,
    source: str,
    pedestal: bool | None = None,
    experiment: str | None = None,
) -> RunInfo:
    """Build the :class:`RunInfo` of a run from its ODB (``None`` = unknown).

    - exposure: ``/Configurations/Exposure`` (seconds);
    - description: ``/Experiment/Run Parameters/Run description``;
    - pedestal: ``pedestal`` when given, else ``/Configurations/Pedestal``
      or a ``PED`` token in the description;
    - experiment: ``experiment`` when given, else ``/Experiment/Name``;
    - start time: ``/Runinfo/Start time binary`` if present, else ``time_stamp``
      (Unix seconds).
    """
    description = _get(odb, "/Experiment/Run Parameters/Run description")
    description = description if isinstance(description, str) else ""
    exposure = _number(_get(odb, "/Configurations/Exposure"))
    if pedestal is None:
        flag = _flag(_get(odb, "/Configurations/Pedestal"))
        pedestal = bool(flag) or is_pedestal_description(description)
    if experiment is None:
        name = _get(odb, "/Experiment/Name")
        experiment = name if isinstance(name, str) else ""
    start = _number(_get(odb, "/Runinfo/Start time binary"))
    start_s = int(start) if start is not None and start > 0 else int(time_stamp)
    extra: dict[str, Any] = {}
    for key, path in (
        ("trigger_mode", "/Configurations/TriggerMode"),
        ("free_running", "/Configurations/FreeRunning"),
        ("odb_run_number", "/Runinfo/Run number"),
    ):
        value = _get(odb, path)
        if value is not None:
            extra[key] = value
    return RunInfo(
        run=int(run),
        start_time_ns=start_s * NS,
        experiment=experiment,
        description=description,
        exposure_s=exposure,
        pedestal=bool(pedestal),
        odb=odb,
        source=source,
        extra=extra,
    )


_RUN_IN_NAME = re.compile(r"run(\d+)")


def run_number_from_name(path: str) -> int:
    """``run00042sub0003.mid.lz4`` -> 42; 0 when the name carries no number."""
    m = _RUN_IN_NAME.search(str(path).rsplit("/", 1)[-1])
    return int(m.group(1)) if m else 0


class RunTracker:
    """Turns a stream of MIDAS events (files, replay) into run transitions.

    :meth:`transitions` yields, for one event, what it implies, in order:
    ``("end", stop_time_ns | None, complete)`` - a run ends (``complete`` is
    False when no end-of-run event closed it), ``("begin", RunInfo)`` and
    ``("event", event)`` for a data event. A begin-of-run event starts a run
    (closing an open one), an end-of-run event ends it, and data without a
    begin-of-run event (a sub-run file, a file cut at the start) open a run
    named after the file. One tracker spans several files, so sub-run files
    given in order are one run.
    """

    def __init__(self, *, pedestal: bool | None = None, experiment: str | None = None) -> None:
        self.pedestal = pedestal
        self.experiment = experiment
        self.open = False

    def _info(self, odb: Any, run: int, time_stamp: int, source: str) -> RunInfo:
        return run_info_from_odb(
            odb,
            run=run,
            time_stamp=time_stamp,
            source=source,
            pedestal=self.pedestal,
            experiment=self.experiment,
        )

    def transitions(self, event: Any, source: str) -> Any:
        if event.is_bor:
            if self.open:
                log.warning(
                    "%s: begin of run %s while a run is open: closing it", source, event.serial
                )
                yield ("end", None, False)
            odb = None
            try:
                odb = event.odb()
            except Exception as exc:  # a damaged ODB dump must not lose the run's events
                log.warning(
                    "%s: run %s: begin-of-run ODB unreadable (%s); using defaults",
                    source,
                    event.serial,
                    exc,
                )
            self.open = True
            yield ("begin", self._info(odb, event.serial, event.header.time_stamp, source))
            return
        if event.is_eor:
            if self.open:
                yield ("end", event.header.time_stamp * 1_000_000_000, True)
            self.open = False
            return
        if not self.open:
            self.open = True
            yield (
                "begin",
                self._info(None, run_number_from_name(source), event.header.time_stamp, source),
            )
        yield ("event", event)

    def finish(self) -> Any:
        """At the end of the input: close a run no end-of-run event closed."""
        if self.open:
            self.open = False
            yield ("end", None, False)
