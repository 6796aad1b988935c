"""The run registry: one SQL row per run, and the ``run_summary`` point.

The registry is named by a URL:

* ``sqlite:///PATH`` - embedded SQLite (stdlib ``sqlite3``); the default is
  ``<state_dir>/runs.sqlite``;
* ``mysql://USER@HOST[:PORT]/DB`` (also ``mariadb://``) - MariaDB/MySQL, what
  the collaboration's run catalogue runs on, through the pure-Python PyMySQL;
* ``postgresql://USER@HOST[:PORT]/DB`` - PostgreSQL through the pure-Python
  pg8000 (optional extra ``postgresql``).

Secrets never go into the URL (it ends up in configuration files, shell
history and ``ps``): the password comes from ``?password_file=PATH`` or
``?password_env=VAR``. Other query options: ``unix_socket=PATH`` (MySQL),
``table=NAME`` (default ``cygno_runs``), ``connect_timeout=S``.

A row holds the run's key numbers (:func:`run_record`, the same fields as the
``run_summary`` InfluxDB point), the verdict with flags and reasons, the
per-channel/per-reading extras and the reference histograms of the
data-quality checks as JSON. Writing a run again replaces its row, so
``cygno-online summary FILES --registry URL`` can refill past runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cygno_online.analysis.outputs import Metric
from cygno_online.errors import ConfigError

#: 55Fe K-alpha energy: the light-yield estimate is the 55Fe peak per keV
FE55_KEV = 5.9
VERDICTS = ("good", "warning", "bad")
SCHEMES = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql",
           "postgres": "postgresql"}  # fmt: skip

#: fixed columns: name -> kind ("int", "float", "text")
COLUMNS: dict[str, str] = {
    "start_time_ns": "int",
    "stop_time_ns": "int",
    "duration_s": "float",
    "description": "text",
    "run_type": "text",
    "pedestal": "int",
    "exposure_s": "float",
    "events_seen": "int",
    "events_processed": "int",
    "events_dropped": "int",
    "drop_fraction": "float",
    "event_rate_hz": "float",
    "trigger_rate_hz": "float",
    "images": "int",
    "cluster_rate_hz": "float",
    "fe55_peak": "float",
    "fe55_sigma": "float",
    "fe55_resolution": "float",
    "fe55_entries": "int",
    "light_yield": "float",
    "alpha_rate_hz": "float",
    "muon_rate_hz": "float",
    "spark_fraction": "float",
    "spark_rate_hz": "float",
    "gas_temperature": "float",
    "lime_pressure": "float",
    "atm_pressure": "float",
    "verdict": "text",
    "flags": "text",
    "reasons": "text",
}
#: JSON columns: per-channel PMT means and environment means, the checks,
#: the histograms the reference checks compare
JSON_COLUMNS = ("extra", "checks", "histograms")


# -- the record ------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def run_type(doc: Mapping[str, Any]) -> str:
    """``DATA:Fe`` from a LIME description ``S003:DATA:Fe, ...``; ``PED`` for
    pedestal runs; else ``pedestal``/``data``."""
    desc = str(doc.get("description") or "")
    m = re.match(r"\s*S\d+:([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+))?", desc)
    if m:
        kind = m.group(1).upper()
        if kind.startswith("PED"):
            return "PED"
        return f"{kind}:{m.group(2)}" if m.group(2) else kind
    return "pedestal" if doc.get("pedestal") else "data"


def _sum_cameras(doc: Mapping[str, Any], key: str) -> float | None:
    vals = [_num(c.get(key)) for c in (doc.get("cameras") or {}).values() if isinstance(c, Mapping)]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def _first_camera(doc: Mapping[str, Any], key: str) -> float | None:
    for c in (doc.get("cameras") or {}).values():
        if isinstance(c, Mapping) and _num(c.get(key)) is not None:
            return _num(c.get(key))
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def verdict_of(doc: Mapping[str, Any]) -> str:
    """Worst of the data-quality checks and the summary's quality flags
    (flag severity error -> bad, warning -> warning, info -> good)."""
    worst = 0
    for fl in doc.get("quality_flags") or ():
        sev = fl.get("severity")
        worst = max(worst, 2 if sev == "error" else 1 if sev == "warning" else 0)
    for ch in doc.get("checks") or ():
        st = ch.get("status")
        if st in VERDICTS:
            worst = max(worst, VERDICTS.index(st))
    return VERDICTS[worst]


def run_record(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(fixed columns, extras) of a run summary document."""
    c = doc.get("counters") or {}
    daq = doc.get("daq") or {}
    cam = doc.get("camera") or {}
    env = doc.get("environment") or {}
    duration = _num(doc.get("duration_s"))
    seen = _num(c.get("events_seen"))
    fe55_peak = _first_camera(doc, "fe55_peak")
    sparks = _num(cam.get("sparks"))
    flags = doc.get("quality_flags") or []
    bad_checks = [ch for ch in doc.get("checks") or () if ch.get("status") in ("warning", "bad")]
    reasons = [f"{fl.get('flag')}: {fl.get('reason')}" for fl in flags] + [
        f"{ch.get('name')}: {ch.get('reason')}" for ch in bad_checks
    ]

    def env_mean(name: str) -> float | None:
        st = env.get(name)
        return _num(st.get("mean")) if isinstance(st, Mapping) else None

    rec: dict[str, Any] = {
        "start_time_ns": doc.get("start_time_ns"),
        "stop_time_ns": doc.get("stop_time_ns"),
        "duration_s": duration,
        "description": doc.get("description") or "",
        "run_type": run_type(doc),
        "pedestal": 1 if doc.get("pedestal") else 0,
        "exposure_s": _num(doc.get("exposure_s")),
        "events_seen": c.get("events_seen"),
        "events_processed": c.get("events_processed"),
        "events_dropped": c.get("events_dropped"),
        "drop_fraction": _num(c.get("drop_fraction")),
        "event_rate_hz": seen / duration if seen is not None and duration else None,
        "trigger_rate_hz": _num(daq.get("trigger_rate_hz")),
        "images": cam.get("images"),
        "cluster_rate_hz": _num(cam.get("cluster_rate_hz")),
        "fe55_peak": fe55_peak,
        "fe55_sigma": _first_camera(doc, "fe55_width"),
        "fe55_resolution": _first_camera(doc, "fe55_resolution"),
        "fe55_entries": _first_camera(doc, "fe55_entries"),
        "light_yield": fe55_peak / FE55_KEV if fe55_peak is not None else None,
        "alpha_rate_hz": _sum_cameras(doc, "alpha_rate_hz"),
        "muon_rate_hz": _sum_cameras(doc, "muon_rate_hz"),
        "spark_fraction": _num(cam.get("spark_fraction")),
        "spark_rate_hz": sparks / duration if sparks is not None and duration else None,
        "gas_temperature": env_mean("gas_temperature"),
        "lime_pressure": env_mean("lime_pressure"),
        "atm_pressure": env_mean("atmospheric_pressure") or env_mean("atm_pressure"),
        "verdict": doc.get("verdict") or verdict_of(doc),
        "flags": ",".join(sorted({str(fl.get("flag")) for fl in flags}
                                 | {str(ch.get("name")) for ch in bad_checks})),
        "reasons": "; ".join(reasons),
    }  # fmt: skip
    for k in ("events_seen", "events_processed", "events_dropped", "images", "fe55_entries"):
        v = _num(rec[k])
        rec[k] = int(v) if v is not None else None
    extra: dict[str, float] = {}
    for key, p in (doc.get("pmt") or {}).items():
        b, _, ch = str(key).partition("/")
        for q in ("amplitude_adc", "baseline_adc", "rms_adc", "charge_pc"):
            v = _num((p or {}).get(q))
            if v is not None:
                extra[f"pmt_b{_safe(b)}_ch{_safe(ch)}_{q}"] = v
    for name, st in env.items():
        v = _num((st or {}).get("mean")) if isinstance(st, Mapping) else None
        if v is not None:
            extra[f"env_{_safe(name)}_mean"] = v
    return rec, extra


def run_summary_metric(doc: Mapping[str, Any]) -> Metric:
    """The ``run_summary`` point: tags run and experiment (added by the sink),
    fields of :func:`run_record`, time = run start (so the run's trend point
    sits where the run began and a rewrite replaces it)."""
    rec, extra = run_record(doc)
    fields: dict[str, Any] = {}
    for k, v in rec.items():
        if k in ("start_time_ns", "stop_time_ns") or v is None:
            continue
        kind = COLUMNS[k]
        if kind == "text":
            fields[k] = str(v)
        elif k == "pedestal":
            fields[k] = bool(v)
        else:
            fields[k] = float(v)
    fields["verdict_level"] = float(VERDICTS.index(rec["verdict"]))
    fields.update(extra)
    t = int(doc.get("start_time_ns") or doc.get("stop_time_ns") or time.time_ns())
    units = {k: u for k, u in RECORD_UNITS.items() if k in fields}
    return Metric("run_summary", t, int(doc.get("run") or 0), 0, fields, {}, units)


def run_summary_series() -> Any:
    from cygno_online.analysis.catalogue import FieldSpec, SeriesSpec

    fields = []
    for name, kind in COLUMNS.items():
        if name in ("start_time_ns", "stop_time_ns"):
            continue
        typ = "string" if kind == "text" else "bool" if name == "pedestal" else "float"
        fields.append(FieldSpec(name, typ, RECORD_UNITS.get(name, "")))
    fields += [
        FieldSpec("verdict_level", "float", "", "0 good, 1 warning, 2 bad"),
        FieldSpec("pmt_b<board>_ch<channel>_<quantity>", "float", "",
                  "per-channel PMT means: amplitude_adc, baseline_adc, rms_adc, charge_pc"),
        FieldSpec("env_<reading>_mean", "float", "", "run mean of a slow-control reading"),
    ]  # fmt: skip
    return SeriesSpec(
        "run_summary", tuple(fields), (), "run registry",
        "one point per run at its start time (end of run, cygno_online/sinks/registry.py)",
    )  # fmt: skip


RECORD_UNITS = {
    "duration_s": "s", "exposure_s": "s", "event_rate_hz": "Hz", "trigger_rate_hz": "Hz",
    "cluster_rate_hz": "Hz", "fe55_peak": "ADU", "fe55_sigma": "ADU", "light_yield": "ADU/keV",
    "alpha_rate_hz": "Hz", "muon_rate_hz": "Hz", "spark_rate_hz": "Hz",
    "gas_temperature": "degC", "lime_pressure": "bar", "atm_pressure": "bar",
}  # fmt: skip


# -- URL ------------------------------------------------------------------------------------
@dataclass(slots=True)
class RegistryURL:
    dialect: str
    path: str = ""
    host: str = "127.0.0.1"
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str = ""
    unix_socket: str | None = None
    table: str = "cygno_runs"
    connect_timeout: float = 10.0

    def display(self) -> str:
        """The URL without secrets, for logs."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.path}"
        where = self.unix_socket or f"{self.host}:{self.port or ''}".rstrip(":")
        return f"{self.dialect}://{self.user or ''}@{where}/{self.database}"


def parse_url(url: str, *, key: str = "registry") -> RegistryURL:
    """Validate a registry URL (ConfigError naming ``key`` and the problem)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(key, "must be a URL: sqlite:///PATH, mysql://USER@HOST/DB or "
                               "postgresql://USER@HOST/DB", value=url)  # fmt: skip
    parts = urllib.parse.urlsplit(url)
    dialect = SCHEMES.get(parts.scheme.lower())
    if dialect is None:
        raise ConfigError(key, f"unknown database {parts.scheme!r} (sqlite, mysql, postgresql)",
                          value=url)  # fmt: skip
    query = dict(urllib.parse.parse_qsl(parts.query))
    table = query.pop("table", "cygno_runs")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", table):
        raise ConfigError(key, "table must be a plain SQL name", value=table)
    try:
        timeout = float(query.pop("connect_timeout", 10.0))
    except ValueError:
        raise ConfigError(key, "connect_timeout must be a number of seconds", value=url) from None
    if dialect == "sqlite":
        path = urllib.parse.unquote(url.split("://", 1)[1].split("?", 1)[0])
        if not path or path == "/":
            raise ConfigError(key, "sqlite needs a file: sqlite:///PATH", value=url)
        if query:
            raise ConfigError(key, f"unknown sqlite options {sorted(query)}", value=url)
        return RegistryURL("sqlite", path=path, table=table, connect_timeout=timeout)
    if parts.password is not None:
        raise ConfigError(
            key,
            "no password in the URL: use ?password_file=PATH or ?password_env=VARIABLE",
            value=RegistryURL(dialect).display(),
        )
    password = None
    pw_file, pw_env = query.pop("password_file", None), query.pop("password_env", None)
    if pw_file:
        try:
            password = Path(pw_file).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(key, f"cannot read password_file ({exc.strerror})",
                              value=pw_file) from None  # fmt: skip
    elif pw_env:
        password = os.environ.get(pw_env)
        if password is None:
            raise ConfigError(key, f"environment variable {pw_env} (the password) is not set")
    unix_socket = query.pop("unix_socket", None)
    if query:
        raise ConfigError(key, f"unknown options {sorted(query)}", value=url)
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(key, "names no database (.../DB)", value=url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(key, "has an invalid port", value=url) from None
    return RegistryURL(
        dialect,
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=urllib.parse.unquote(parts.username) if parts.username else None,
        password=password,
        database=database,
        unix_socket=unix_socket,
        table=table,
        connect_timeout=timeout,
    )


def default_url(state_dir: str | Path) -> str:
    return f"sqlite://{Path(state_dir).expanduser().resolve() / 'runs.sqlite'}"


# -- the registry ---------------------------------------------------------------------------------
_TYPES = {
    "sqlite": {"int": "INTEGER", "float": "REAL", "text": "TEXT", "json": "TEXT", "key": "TEXT"},
    "mysql": {"int": "BIGINT", "float": "DOUBLE", "text": "TEXT", "json": "LONGTEXT",
              "key": "VARCHAR(64)"},
    "postgresql": {"int": "BIGINT", "float": "DOUBLE PRECISION", "text": "TEXT", "json": "TEXT",
                   "key": "VARCHAR(64)"},
}  # fmt: skip


class RegistryError(Exception):
    """The registry database failed (connect, query); the message names it."""


class RunRegistry:
    """One row per (experiment, run). Thread-safe (one connection, a lock)."""

    def __init__(self, url: str | RegistryURL) -> None:
        self.url = parse_url(url) if isinstance(url, str) else url
        self.table = self.url.table
        self._conn: Any = None
        self._lock = threading.Lock()
        self._mark = "?" if self.url.dialect == "sqlite" else "%s"

    # -- connection --------------------------------------------------------------
    def _connect(self) -> Any:
        u = self.url
        try:
            if u.dialect == "sqlite":
                import sqlite3

                Path(u.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(u.path, timeout=u.connect_timeout, check_same_thread=False)
            elif u.dialect == "mysql":
                try:
                    import pymysql
                except ImportError:
                    raise RegistryError("MySQL/MariaDB registry needs PyMySQL: "
                                        "pip install 'cygno-online[mysql]'") from None  # fmt: skip
                kw: dict[str, Any] = {
                    "user": u.user or "", "password": u.password or "", "database": u.database,
                    "connect_timeout": u.connect_timeout, "autocommit": False,
                    "charset": "utf8mb4",
                }  # fmt: skip
                if u.unix_socket:
                    kw["unix_socket"] = u.unix_socket
                else:
                    kw["host"], kw["port"] = u.host, u.port or 3306
                conn = pymysql.connect(**kw)
            else:
                try:
                    import pg8000.dbapi
                except ImportError:
                    raise RegistryError("PostgreSQL registry needs pg8000: "
                                        "pip install 'cygno-online[postgresql]'") from None  # fmt: skip
                conn = pg8000.dbapi.connect(
                    user=u.user or "", password=u.password, host=u.host, port=u.port or 5432,
                    database=u.database, timeout=u.connect_timeout,
                )  # fmt: skip
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(f"registry {u.display()}: cannot connect: {exc}") from None
        self._create(conn)
        return conn

    def _create(self, conn: Any) -> None:
        t = _TYPES[self.url.dialect]
        cols = [f"experiment {t['key']} NOT NULL", "run BIGINT NOT NULL"]
        cols += [f"{name} {t[kind]}" for name, kind in COLUMNS.items()]
        cols += [f"{name} {t['json']}" for name in JSON_COLUMNS]
        cols += ["updated_ns BIGINT", "PRIMARY KEY (experiment, run)"]
        cur = conn.cursor()
        try:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(cols)})")
            conn.commit()
        finally:
            cur.close()

    def _run(self, fn: Any) -> Any:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            try:
                return fn(self._conn)
            except RegistryError:
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):
                    self._conn.rollback()
                # a dropped server connection: reconnect on the next call
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
                raise RegistryError(f"registry {self.url.display()}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------
    def record(self, doc: Mapping[str, Any], histograms: Mapping[str, Any] | None = None) -> None:
        """Insert or replace the row of the run of summary ``doc``."""
        rec, extra = run_record(doc)
        experiment = str(doc.get("experiment") or "")
        run = int(doc.get("run") or 0)
        row: dict[str, Any] = {"experiment": experiment, "run": run, **rec}
        row["extra"] = json.dumps(extra, sort_keys=True)
        row["checks"] = json.dumps(list(doc.get("checks") or []), default=str)
        row["histograms"] = json.dumps(histograms or doc.get("histograms") or {}, default=str)
        row["updated_ns"] = time.time_ns()
        names = list(row)
        m = self._mark
        insert = (
            f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join([m] * len(names))})"
        )

        def go(conn: Any) -> None:
            cur = conn.cursor()
            try:
                # delete + insert: the same statement on all three databases
                cur.execute(
                    f"DELETE FROM {self.table} WHERE experiment = {m} AND run = {m}",
                    (experiment, run),
                )
                cur.execute(insert, tuple(row[n] for n in names))
                conn.commit()
            finally:
                cur.close()

        self._run(go)

    # -- reading ------------------------------------------------------------------------
    def _select(self, where: str = "", args: tuple = (), order: str = "run",
                limit: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        sql = f"SELECT * FROM {self.table}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def go(conn: Any) -> list[dict[str, Any]]:
            cur = conn.cursor()
            try:
                cur.execute(sql, args)
                cols = [d[0] for d in cur.description]
                rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
                conn.commit()  # end the read transaction (MySQL repeatable read)
            finally:
                cur.close()
            return [self._decode(r) for r in rows]

        return self._run(go)

    @staticmethod
    def _decode(row: dict[str, Any]) -> dict[str, Any]:
        out = {str(k).lower(): v for k, v in row.items()}
        for name in JSON_COLUMNS:
            text = out.get(name)
            try:
                out[name] = json.loads(text) if text else ({} if name != "checks" else [])
            except (TypeError, ValueError):
                out[name] = {}
        for k, v in list(out.items()):
            if hasattr(v, "as_integer_ratio") and not isinstance(v, (int, float)):
                out[k] = float(v)  # Decimal from some drivers
        return out

    def get(self, run: int, experiment: str | None = None) -> dict[str, Any] | None:
        m = self._mark
        if experiment is None:
            rows = self._select(f"run = {m}", (int(run),), order="updated_ns DESC", limit=1)
        else:
            rows = self._select(f"run = {m} AND experiment = {m}", (int(run), experiment))
        return rows[0] if rows else None

    def runs(self, *, since_ns: int | None = None, experiment: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        m = self._mark
        where, args = [], []
        if since_ns is not None:
            where.append(f"start_time_ns >= {m}")
            args.append(int(since_ns))
        if experiment is not None:
            where.append(f"experiment = {m}")
            args.append(experiment)
        return self._select(" AND ".join(where), tuple(args), limit=limit)

    def latest_good(self, *, run_type: str, exposure_s: float | None, before_run: int,
                    experiment: str | None = None) -> dict[str, Any] | None:  # fmt: skip
        """The latest run before ``before_run`` with verdict good, the same run
        type and (within 1 %) the same exposure: the automatic reference."""
        m = self._mark
        where = [f"verdict = {m}", f"run_type = {m}", f"run < {m}"]
        args: list[Any] = ["good", run_type, int(before_run)]
        if experiment is not None:
            where.append(f"experiment = {m}")
            args.append(experiment)
        if exposure_s is not None:
            where.append(f"exposure_s BETWEEN {m} AND {m}")
            args += [exposure_s * 0.99, exposure_s * 1.01]
        rows = self._select(" AND ".join(where), tuple(args), order="run DESC", limit=1)
        return rows[0] if rows else None


def open_registry(url: str | None, state_dir: str | Path | None) -> RunRegistry:
    """The registry of ``url``, or the default SQLite file in ``state_dir``."""
    if not url:
        if state_dir is None:
            raise ConfigError("registry", "no URL and no state directory for the default")
        url = default_url(state_dir)
    return RunRegistry(url)


def records_as_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A compact text table of registry rows (``cygno-online runs``)."""
    head = f"{'run':>6} {'experiment':<10} {'start (UTC)':<20} {'dur s':>7} {'type':<10} " \
           f"{'events':>7} {'55Fe peak':>9} {'res':>6} {'LY':>7} {'verdict':<8} flags"  # fmt: skip
    lines = [head]
    for r in rows:
        start = r.get("start_time_ns")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start / 1e9)) if start else "-"

        def f(v: Any, fmt: str) -> str:
            return fmt.format(v) if isinstance(v, (int, float)) else "-"

        lines.append(
            f"{r.get('run'):>6} {r.get('experiment') or '-'!s:<10} {when:<20} "
            f"{f(r.get('duration_s'), '{:7.0f}'):>7} {r.get('run_type') or '-'!s:<10} "
            f"{f(r.get('events_seen'), '{:d}'):>7} {f(r.get('fe55_peak'), '{:9.1f}'):>9} "
            f"{f(r.get('fe55_resolution'), '{:6.3f}'):>6} {f(r.get('light_yield'), '{:7.1f}'):>7} "
            f"{r.get('verdict') or '-'!s:<8} {r.get('flags') or ''}"
        )
    return "\n".join(lines) + "\n"
