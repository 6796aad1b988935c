"""Start real database servers on loopback for tests and benchmarks.

Each server runs from its Debian package binary (``tests/servers/install.sh``)
in its own temporary directory on free 127.0.0.1 ports, and is stopped
afterwards. Readiness is polled (``/ping`` or ``/health``), never slept for.
``restart()`` keeps the data directory, so an outage can be simulated.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

INFLUXD = "influxd"
VICTORIA = "victoria-metrics"


def find_binary(name: str) -> str | None:
    """Path of a server binary (PATH, then /usr/bin and /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, data: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


#: what the servers log when their port is in use (influxd, victoria-metrics,
#: mariadbd "Can't start server: Bind on TCP/IP port", postgres)
_PORT_TAKEN = re.compile(r"address already in use|bind on tcp/ip port|errno 98", re.IGNORECASE)


class ServerStartError(RuntimeError):
    """A test server that exited at start or was not ready in time; the
    message names the server, its port and its log file."""

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


class ServerProcess:
    """A server binary run in ``workdir`` on a free loopback port."""

    name = "server"
    ready_path = "/ping"

    #: bound for a start on a loaded shared machine (a first MariaDB start
    #: initialises InnoDB): readiness is a real request, so a quick server is
    #: ready in well under a second; this only bounds a hung one
    START_TIMEOUT_S = 180.0
    #: attempts with a fresh port when the chosen one was taken meanwhile by
    #: another process (free_port cannot reserve it)
    PORT_ATTEMPTS = 3

    def __init__(
        self, binary: str, workdir: Path, *, start_timeout: float = START_TIMEOUT_S
    ) -> None:
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` arguments (e.g. the user to run as)."""
        return {}

    def start(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        first = not getattr(self, "_started", False)
        for attempt in range(self.PORT_ATTEMPTS):
            try:
                self._spawn()
                self._started = True
                return self
            except ServerStartError as exc:
                # only a first start may move: a restart keeps the port its
                # clients were configured with
                if not (first and exc.port_taken) or attempt == self.PORT_ATTEMPTS - 1:
                    raise
                taken = self.port
                self.port = free_port()
                with open(self.log_path, "a") as fh:
                    fh.write(f"\n[test harness] port {taken} was taken; retrying on {self.port}\n")
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        logf = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        finally:
            logf.close()
        self.wait_ready()

    def ready(self) -> bool:
        try:
            status, _ = http("GET", self.url + self.ready_path, timeout=1.0)
        except OSError:
            return False
        return 200 <= status < 300

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_tail()
                raise ServerStartError(
                    f"{self.name} exited with {self.proc.returncode} at start "
                    f"(port {self.port}); log {self.log_path}:\n{tail}",
                    port_taken=_PORT_TAKEN.search(tail) is not None,
                )
            if self.ready():
                return
            time.sleep(0.05)
        proc, self.proc = self.proc, None
        if proc is not None:  # not left behind holding the port and data dir
            proc.kill()
            proc.wait(10)
        raise ServerStartError(
            f"{self.name} not ready within {self.start_timeout:g} s (port {self.port}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, SIGKILL if it does not go."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class InfluxDB1(ServerProcess):
    """InfluxDB 1.x (``influxd``) with meta/data/wal under ``workdir``."""

    name = "influxd"

    def __init__(
        self, workdir: Path, binary: str | None = None, *, auth: bool = False, **kw: Any
    ) -> None:
        super().__init__(binary or find_binary(INFLUXD) or INFLUXD, workdir, **kw)
        self.auth = auth
        #: admin credentials for query() when auth is on (create_admin() sets them)
        self.admin: tuple[str, str] | None = None
        self.rpc_port = free_port()
        self.config_path = self.workdir / "influxdb.conf"
        self._write_config()

    def _write_config(self) -> None:
        d = self.workdir
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"
  logging-enabled = false

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""
        )

    def command(self) -> list[str]:
        return [self.binary, "-config", str(self.config_path)]

    def query(self, q: str, db: str | None = None) -> dict:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        if self.admin is not None:
            params["u"], params["p"] = self.admin
        status, body = http("POST", self.url + "/query?" + urllib.parse.urlencode(params))
        doc = json.loads(body or b"{}")
        if status != 200:
            raise RuntimeError(f"query {q!r}: HTTP {status}: {body[:300]!r}")
        for res in doc.get("results", []):
            if "error" in res:
                raise RuntimeError(f"query {q!r}: {res['error']}")
        return doc

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def create_admin(self, user: str, password: str) -> None:
        """The first admin user (allowed without credentials on a fresh server)."""
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
        self.admin = (user, password)

    def rows(self, q: str, db: str) -> list[dict]:
        """The rows of the first series result of ``q`` as dicts (column -> value)."""
        out = []
        for res in self.query(q, db).get("results", []):
            for series in res.get("series", []) or []:
                cols = series["columns"]
                for values in series["values"]:
                    row = dict(zip(cols, values, strict=True))
                    row.update(series.get("tags") or {})
                    out.append(row)
        return out


class VictoriaMetrics(ServerProcess):
    """Single-node VictoriaMetrics with its storage under ``workdir``."""

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, workdir: Path, binary: str | None = None, **kw: Any) -> None:
        super().__init__(binary or find_binary(VICTORIA) or VICTORIA, workdir, **kw)

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            # points just written must be visible to the export right away
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]

    def force_flush(self) -> None:
        with contextlib.suppress(OSError):
            http("GET", self.url + "/internal/force_flush")

    def export(self, match: str) -> list[dict]:
        """``/api/v1/export`` JSON lines: one dict per series (metric, values, timestamps)."""
        self.force_flush()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = http("GET", self.url + "/api/v1/export?" + q, timeout=30)
        if status != 200:
            raise RuntimeError(f"export {match}: HTTP {status}: {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]


MARIADBD = "mariadbd"
MARIADB_INSTALL_DB = "mariadb-install-db"


class MariaDB(ServerProcess):
    """MariaDB (Debian's ``mariadb-server``) with its data directory under
    ``workdir``: a unix socket there and a free 127.0.0.1 TCP port, no
    binary log, a small buffer pool. ``mariadb-install-db`` creates the
    system tables first. As root the server must be told ``--user=root``
    explicitly (it refuses otherwise); as any other user it runs as that user.
    Readiness is a real connection (PyMySQL) through the socket.
    """

    name = "mariadbd"

    def __init__(self, workdir: Path, binary: str | None = None, **kw: Any) -> None:
        super().__init__(binary or find_binary(MARIADBD) or MARIADBD, workdir, **kw)
        self.datadir = self.workdir / "data"
        self.socket = self.workdir / "mysqld.sock"
        self.install_db = find_binary(MARIADB_INSTALL_DB) or MARIADB_INSTALL_DB

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> ServerProcess:
        if not (self.datadir / "mysql").is_dir():
            out = subprocess.run(
                [
                    self.install_db,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *self._user_args(),
                ],
                capture_output=True,
                text=True,
                timeout=self.start_timeout,
            )
            if out.returncode != 0:
                raise RuntimeError(
                    f"mariadb-install-db failed for {self.datadir}: "
                    f"{out.stdout[-1500:]}{out.stderr[-1500:]}"
                )
        return super().start()

    def command(self) -> list[str]:
        return [
            self.binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            f"--log-error={self.log_path}",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--performance-schema=OFF",
            *self._user_args(),
        ]

    def ready(self) -> bool:
        try:
            self.sql("SELECT 1")
        except Exception:
            return False
        return True

    def sql(self, statement: str, database: str | None = None) -> list[tuple]:
        """Run one statement as the server's root over the unix socket."""
        import pymysql

        conn = pymysql.connect(
            unix_socket=str(self.socket), user="root", password="", database=database,
            connect_timeout=2, autocommit=True,
        )  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()

    def create_database(self, db: str, user: str, password: str) -> None:
        """A database and a user that may use it from 127.0.0.1 and the socket."""
        self.sql(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        for host in ("127.0.0.1", "localhost"):
            self.sql(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'")
            self.sql(f"GRANT ALL ON `{db}`.* TO '{user}'@'{host}'")


def find_postgres_bindir() -> Path | None:
    """Debian's server binaries (``/usr/lib/postgresql/<major>/bin``), newest first."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgreSQL(ServerProcess):
    """PostgreSQL (Debian's ``postgresql``) in a temporary cluster: ``initdb``
    with a superuser password (TCP logins need it: scram-sha-256), unix
    socket in the work directory, a free 127.0.0.1 port, no fsync.

    ``postgres`` refuses to run as root. As root (CI) the cluster therefore
    belongs to the ``postgres`` system user the package creates: both
    ``initdb`` and the server run as that user (``Popen(user=...)``) in a
    private directory under the system temp dir (the tests' own temporary
    directories are root-only), removed by :meth:`stop`.
    """

    name = "postgres"
    ADMIN_PASSWORD = "admin-test-only"

    def __init__(self, workdir: Path, bindir: Path | None = None, **kw: Any) -> None:
        import tempfile

        self.bindir = Path(bindir or find_postgres_bindir() or "/usr/lib/postgresql/15/bin")
        self.as_user: str | None = None
        self._own_dir: Path | None = None
        if os.geteuid() == 0:
            import pwd

            self.as_user = "postgres"
            pw = pwd.getpwnam(self.as_user)
            workdir = Path(tempfile.mkdtemp(prefix="cygno-pg-"))
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
            self._own_dir = workdir
        super().__init__(str(self.bindir / "postgres"), workdir, **kw)
        self.datadir = self.workdir / "data"
        self.socket_dir = self.workdir

    def popen_kwargs(self) -> dict[str, Any]:
        if self.as_user is None:
            return {}
        return {"user": self.as_user, "group": self.as_user, "extra_groups": []}

    def start(self) -> ServerProcess:
        if not (self.datadir / "PG_VERSION").exists():
            pwfile = self.workdir / "admin.pw"
            pwfile.write_text(self.ADMIN_PASSWORD + "\n")
            if self.as_user is not None:
                import pwd

                pw = pwd.getpwnam(self.as_user)
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            out = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D", str(self.datadir),
                    "-U", "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E", "UTF8",
                    "--no-sync",
                ],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=self.start_timeout,
                **self.popen_kwargs(),
            )  # fmt: skip
            pwfile.unlink()
            if out.returncode != 0:
                raise RuntimeError(f"initdb failed: {out.stdout[-1500:]}{out.stderr[-1500:]}")
        return super().start()

    def command(self) -> list[str]:
        return [
            self.binary,
            "-D", str(self.datadir),
            "-k", str(self.socket_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "shared_buffers=16MB",
            "-c", "max_connections=20",
        ]  # fmt: skip

    def _admin(self, database: str = "postgres") -> Any:
        import pg8000.dbapi

        conn = pg8000.dbapi.connect(
            user="postgres", password=self.ADMIN_PASSWORD, host="127.0.0.1", port=self.port,
            database=database, timeout=2,
        )  # fmt: skip
        conn.autocommit = True
        return conn

    def ready(self) -> bool:
        try:
            self._admin().close()
        except Exception:
            return False
        return True

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit)."""
        conn = self._admin(database)
        try:
            cur = conn.cursor()
            cur.execute(statement)
            rows = cur.fetchall() if cur.description else []
            return [tuple(r) for r in rows]
        finally:
            conn.close()

    def create_database(self, db: str, user: str, password: str) -> None:
        if not self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'"):
            self.sql(f"CREATE USER {user} PASSWORD '{password}'")
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
            self.sql(f"CREATE DATABASE {db} OWNER {user}")

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
