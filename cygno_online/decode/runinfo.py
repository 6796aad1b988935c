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
