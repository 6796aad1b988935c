"""What is in a MIDAS file: the data behind ``cygno-online inspect``.

:func:`inspect_file` reads a whole file once (resync on, so every problem is
found and located) and returns a JSON-ready dict; :func:`render_text` prints
it compactly for an 80-column terminal.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from cygno_online.errors import MidasFormatError
from cygno_online.midas.event import BANK_FORMAT_NAMES, event_id_name, type_name

#: ODB highlights: report key -> ODB path
ODB_HIGHLIGHTS = {
    "exposure_s": "/Configurations/Exposure",
    "pedestal": "/Configurations/Pedestal",
    "description": "/Experiment/Run Parameters/Run description",
    "start_time": "/Runinfo/Start time",
    "start_time_binary": "/Runinfo/Start time binary",
    "experiment": "/Experiment/Name",
}
#: problems listed per file (all are counted)
MAX_LISTED_PROBLEMS = 200

_EVENT_ORDER = {0x8000: -1, 0x8002: 0x10000, 0x8001: 0x10001}
_RUN_IN_NAME = re.compile(r"run(\d+)", re.IGNORECASE)


def run_from_name(path: str) -> int | None:
    m = _RUN_IN_NAME.search(Path(path).name)
    return int(m.group(1)) if m else None


def _problem_dict(exc: MidasFormatError) -> dict[str, Any]:
    return {
        "offset": exc.offset,
        "serial": exc.serial,
        "event_id": exc.event_id,
        "bank": exc.bank,
        "kind": exc.kind,
        "message": exc.reason,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Everything ``inspect`` reports about one file (see README for the keys).

    Raises OSError if the file cannot be opened; format problems are reported
    in ``problems``, never raised.
    """
    from cygno_online.midas.reader import MidasReader

    name = str(path)
    size = Path(path).stat().st_size if name != "-" else None
    reader = MidasReader(path, resync=True)
    counts: dict[int, int] = {}
    banks: dict[tuple[int, str], dict[str, Any]] = {}
    odb_info: dict[str, Any] = {}
    odb_from: str | None = None
    bor_serial: int | None = None
    messages = 0
    duplicates = 0
    extra_problems: list[dict[str, Any]] = []
    try:
        for ev in reader:
            eid = ev.event_id
            counts[eid] = counts.get(eid, 0) + 1
            if ev.is_bor and bor_serial is None:
                bor_serial = ev.serial
            if ev.is_message:
                messages += 1
            # highlights from the first BOR, else from an EOR
            if (ev.is_bor and odb_from != "BOR") or (ev.is_eor and odb_from is None):
                try:
                    odb = ev.odb()
                except MidasFormatError as exc:
                    extra_problems.append(_problem_dict(exc))
                else:
                    odb_from = "BOR" if ev.is_bor else "EOR"
                    odb_info = {
                        key: _jsonable(odb.get(p, None)) for key, p in ODB_HIGHLIGHTS.items()
                    }
            if ev.duplicate_banks:
                duplicates += len(ev.duplicate_banks)
                extra_problems.append(
                    {
                        "offset": ev.offset,
                        "serial": ev.serial,
                        "event_id": eid,
                        "bank": ev.duplicate_banks[0],
                        "kind": "duplicate_bank",
                        "message": "duplicate bank name(s) "
                        + ", ".join(ev.duplicate_banks)
                        + " (first kept)",
                    }
                )
            fmt = BANK_FORMAT_NAMES.get(ev.flags) if ev.flags is not None else None
            for b in ev.banks.values():
                entry = banks.get((eid, b.name))
                if entry is None:
                    banks[(eid, b.name)] = {
                        "event_id": eid,
                        "bank": b.name,
                        "type": type_name(b.type_id),
                        "count": 1,
                        "min_size": b.size,
                        "max_size": b.size,
                        "formats": [fmt] if fmt else [],
                    }
                    continue
                entry["count"] += 1
                entry["min_size"] = min(entry["min_size"], b.size)
                entry["max_size"] = max(entry["max_size"], b.size)
                if fmt and fmt not in entry["formats"]:
                    entry["formats"].append(fmt)
                tname = type_name(b.type_id)
                if tname not in entry["type"].split("/"):
                    entry["type"] += "/" + tname
    except MidasFormatError as exc:  # unsupported (big-endian) files end here
        extra_problems.append(_problem_dict(exc))
    problems = [_problem_dict(p) for p in reader.problems] + extra_problems
    problems.sort(key=lambda p: (p["offset"] is None, p["offset"] or 0))
    total_problems = reader.problems_total + len(extra_problems)
    return {
        "path": name,
        "compression": reader.compression,
        "bytes": size if size is not None else reader.raw_bytes_read,
        "decompressed_bytes": reader.bytes_read,
        "run": bor_serial if bor_serial is not None else run_from_name(name),
        "run_from": "BOR" if bor_serial is not None else "file name",
        # BOR first, EOR last, as they appear in a run
        "events": {
            event_id_name(k): v
            for k, v in sorted(counts.items(), key=lambda kv: _EVENT_ORDER.get(kv[0], kv[0]))
        },
        "events_total": sum(counts.values()),
        "messages": messages,
        "banks": sorted(banks.values(), key=lambda b: (b["event_id"], b["bank"])),
        "odb": odb_info,
        "odb_from": odb_from,
        "problems": problems[:MAX_LISTED_PROBLEMS],
        "problems_total": total_problems,
        "skipped_bytes": reader.skipped_bytes,
        "truncated": reader.truncated,
    }


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render_text(report: dict[str, Any]) -> str:
    """Compact human-readable report (fits 80 columns)."""
    if "error" in report:
        return f"{report['path']}: error: {report['error']}\n"
    lines = []
    run = report["run"]
    run_s = f"run {run}" if run is not None else "run ?"
    if report["run_from"] != "BOR" and run is not None:
        run_s += " (from file name)"
    lines.append(_clip(report["path"], 78))
    lines.append(
        f"  {report['compression']}, {_size(report['bytes'])} "
        f"({_size(report['decompressed_bytes'])} decompressed), {run_s}"
    )
    ev = ", ".join(f"{k}: {v}" for k, v in report["events"].items()) or "none"
    lines.append(_clip(f"  events ({report['events_total']}): {ev}", 80))
    if report["banks"]:
        lines.append(
            f"  {'id':>5} {'bank':<4} {'type':<8} {'count':>6} {'min size':>10} {'max size':>10}  format"
        )
        for b in report["banks"]:
            lines.append(
                f"  {b['event_id']:>5} {b['bank']:<4} {_clip(b['type'], 8):<8} {b['count']:>6} "
                f"{b['min_size']:>10} {b['max_size']:>10}  {'/'.join(b['formats'])}"
            )
    odb = report["odb"]
    if odb:
        parts = []
        if odb.get("exposure_s") is not None:
            parts.append(f"exposure {odb['exposure_s']} s")
        if odb.get("pedestal") is not None:
            parts.append(f"pedestal {'yes' if odb['pedestal'] else 'no'}")
        if odb.get("start_time"):
            parts.append(f"started {odb['start_time']}")
        lines.append(_clip(f"  ODB ({report['odb_from']}): " + ", ".join(parts), 80))
        if odb.get("description"):
            lines.append(_clip(f"    description: {odb['description']}", 80))
    else:
        lines.append("  ODB: no BOR/EOR dump")
    if report["problems_total"]:
        head = f"  problems: {report['problems_total']}"
        if report["skipped_bytes"]:
            head += f", {report['skipped_bytes']} bytes skipped"
        if report["truncated"]:
            head += ", truncated"
        lines.append(head)
        for p in report["problems"]:
            where = f"@{p['offset']}" if p["offset"] is not None else "@?"
            if p["serial"] is not None:
                where += f" serial {p['serial']}"
            lines.extend(
                textwrap.wrap(
                    f"{where} [{p['kind']}] {p['message']}",
                    80,
                    initial_indent="    ",
                    subsequent_indent="      ",
                    break_long_words=True,
                )
            )
        if report["problems_total"] > len(report["problems"]):
            lines.append(f"    ... {report['problems_total'] - len(report['problems'])} more")
    else:
        lines.append("  problems: none")
    return "\n".join(lines) + "\n"
