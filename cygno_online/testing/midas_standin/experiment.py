"""The stand-in experiment: one process that plays ODB, event buffers, run
control (odbedit's start/stop/shutdown), mserver and a frontend, reachable from
other processes (the monitor's reader process) through the stand-in bindings.

A test starts one with :class:`Experiment` (a handle with the run-control and
frontend commands), which writes an exptab line and spawns
``python -m cygno_online.testing.midas_standin.experiment DIR NAME``::

    exp = Experiment.start(tmp_path, "lime", remote=False)
    env = exp.client_env()          # MIDASSYS, MIDAS_EXPTAB, MIDAS_EXPT_NAME, PYTHONPATH
    exp.start_run(42)               # returns the seconds the transition took
    exp.produce([event_bytes, ...]) # into SYSTEM, as a frontend
    exp.stream(template, rate_hz=1000, count=5000)
    exp.shutdown_all()              # odbedit "shutdown all": /Runinfo/State may stay 3
    exp.remove_shm()                # the SYSTEM shared memory vanishes
    exp.kill(); exp.restart()       # experiment (mserver) gone and back

Modelled on the doc (/work/shared/docs/midas.md): run transitions are RPCs to
every registered client, served only while it yields, and the run control
waits for each answer (so a client that does not yield delays the
transition); ``shutdown all`` shuts every client down and leaves
``/Runinfo/State`` as it was; GET_ALL readers make producers wait,
GET_NONBLOCKING readers lose events when the ring wraps, GET_RECENT readers
see only events younger than 1 s; the ODB persists across a restart (file).

The stand-in's own choices where the doc is silent: the transport (Unix socket
or TCP with msgpack frames), the shared memory as a file in /dev/shm whose
removal stands for the vanished buffer, connecting to an experiment whose
process is not running fails (``RPC_NET_ERROR``), the run control waits at most
``transition_timeout_s`` for a client, and a truncated event is consumed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cygno_online.testing.midas_standin import path as standin_path
from cygno_online.testing.midas_standin import wire

GET_ALL, GET_NONBLOCKING, GET_RECENT = 1, 2, 4
TR_START, TR_STOP = 1, 2
BM_ASYNC_RETURN = 209
CM_UNDEF_EXP = 105
DEFAULT_BUFFER_SIZE = 64 * 1024 * 1024


@dataclass
class _Stored:
    index: int
    time: float
    data: bytes


@dataclass
class Reader:
    """One client's read cursor on one buffer (its requests are OR-ed)."""

    client_id: int
    requests: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    next_index: int = 0
    missed: int = 0

    @property
    def sampling(self) -> int:
        types = {r[2] for r in self.requests.values()}
        for t in (GET_ALL, GET_NONBLOCKING, GET_RECENT):
            if t in types:
                return t
        return GET_NONBLOCKING

    def wants(self, data: bytes) -> bool:
        eid = int.from_bytes(data[0:2], "little")
        mask = int.from_bytes(data[2:4], "little")
        for r_id, r_mask, _ in self.requests.values():
            if (r_id in (-1, eid)) and (r_mask == -1 or (r_mask & mask)):
                return True
        return False


class Ring:
    """One event buffer."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.events: deque[_Stored] = deque()
        self.used = 0
        self.next_index = 0
        self.readers: dict[int, Reader] = {}
        self.cond = threading.Condition()
        self.produced = 0

    def put(self, data: bytes, timeout: float | None = 10.0) -> bool:
        if len(data) > self.size:
            raise ValueError(f"event of {len(data)} bytes does not fit buffer {self.name}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while self.used + len(data) > self.size:
                oldest = self.events[0]
                blocking = [
                    r
                    for r in self.readers.values()
                    if r.requests and r.sampling == GET_ALL and r.next_index <= oldest.index
                ]
                if blocking:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.cond.wait(0.5 if remaining is None else min(remaining, 0.5))
                    continue
                self.events.popleft()
                self.used -= len(oldest.data)
            self.events.append(_Stored(self.next_index, time.monotonic(), bytes(data)))
            self.used += len(data)
            self.next_index += 1
            self.produced += 1
            self.cond.notify_all()
            return True

    def get(self, client_id: int, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                r = self.readers.get(client_id)
                if r is None:
                    return None
                first = self.events[0].index if self.events else self.next_index
                if r.next_index < first:
                    r.missed += first - r.next_index
                    r.next_index = first
                now = time.monotonic()
                for ev in self.events:
                    if ev.index < r.next_index:
                        continue
                    r.next_index = ev.index + 1
                    if r.sampling == GET_RECENT and now - ev.time > 1.0:
                        r.missed += 1
                        continue
                    if r.wants(ev.data):
                        self.cond.notify_all()
                        return ev.data
                self.cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.cond.wait(0.5 if remaining is None else min(remaining, 0.5))


def _stamped(event: bytes, offset: int) -> bytes:
    b = bytearray(event)
    b[offset : offset + 8] = time.time_ns().to_bytes(8, "little")
    return bytes(b)


def default_odb(name: str) -> dict[str, Any]:
    return {
        "Runinfo": {"State": 1, "Run number": 0, "Start time binary": 0, "Stop time binary": 0},
        "Experiment": {
            "Name": name,
            "MAX_EVENT_SIZE": 4 * 1024 * 1024,
            "Run Parameters": {"Run description": ""},
            "Buffer sizes": {"SYSTEM": DEFAULT_BUFFER_SIZE},
        },
        "Configurations": {"Exposure": 0.3, "Pedestal": 0, "FreeRunning": 0},
        "Equipment": {},
    }


def _find(node: dict, name: str) -> str | None:
    if name in node:
        return name
    low = name.lower()
    for k in node:
        if k.lower() == low:
            return k
    return None


class _Client:
    def __init__(self, cid: int, name: str, pid: int) -> None:
        self.id, self.name, self.pid = cid, name, pid
        self.rpc: socket.socket | None = None
        self.rpc_lock = threading.Lock()
        self.transitions: set[tuple[int, int]] = set()
        self.handles: dict[int, str] = {}
        self.gone = threading.Event()


class Server:
    def __init__(self, directory: Path, name: str, port: int | None = None) -> None:
        self.dir = Path(directory)
        self.name = name
        self.lock = threading.RLock()
        self.odb_file = self.dir / "odb.json"
        self.odb = (
            json.loads(self.odb_file.read_text()) if self.odb_file.exists() else default_odb(name)
        )
        self.rings: dict[str, Ring] = {}
        self.clients: dict[int, _Client] = {}
        self.messages: list[tuple[str, str, bool]] = []
        self.next_id = 1
        self.connects = 0
        self.transition_timeout_s = 30.0
        shm_file = self.dir / ".SYSTEM.SHM"
        if shm_file.exists():
            self.shm = shm_file.read_text().strip()
        else:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else str(self.dir)
            self.shm = f"{base}/standin-{name}-{uuid.uuid4().hex[:8]}-SYSTEM_SHM"
            shm_file.write_text(self.shm)
        if not os.path.exists(self.shm):
            with open(self.shm, "wb") as fh:
                fh.truncate(int(self.odb["Experiment"]["Buffer sizes"]["SYSTEM"]))
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock_path = self.dir / ".standin.sock"
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        self.unix.bind(str(sock_path))
        self.unix.listen(16)
        self.tcp: socket.socket | None = None
        if port is not None:
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("127.0.0.1", port))
            self.tcp.listen(16)
            (self.dir / ".standin.port").write_text(str(self.tcp.getsockname()[1]))

    # -- ODB -------------------------------------------------------------------------
    def _walk(self, path: str, create: bool = False) -> tuple[dict, str]:
        parts = [p for p in path.strip("/").split("/") if p]
        node = self.odb
        for p in parts[:-1]:
            key = _find(node, p)
            if key is None:
                if not create:
                    raise KeyError(path)
                node[p] = {}
                key = p
            node = node[key]
            if not isinstance(node, dict):
                raise KeyError(path)
        return node, parts[-1] if parts else ""

    def odb_get(self, path: str) -> Any:
        with self.lock:
            if path.strip("/") == "":
                return copy.deepcopy(self.odb)
            node, last = self._walk(path)
            key = _find(node, last)
            if key is None:
                raise KeyError(path)
            return copy.deepcopy(node[key])

    def odb_set(self, path: str, value: Any) -> None:
        with self.lock:
            node, last = self._walk(path, create=True)
            node[_find(node, last) or last] = copy.deepcopy(value)
            self._save()

    def _save(self) -> None:
        tmp = self.odb_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.odb))
        os.replace(tmp, self.odb_file)

    def ring(self, name: str, size: int | None = None) -> Ring:
        with self.lock:
            r = self.rings.get(name)
            if r is None:
                sizes = self.odb["Experiment"].get("Buffer sizes", {})
                r = Ring(name, int(size or sizes.get(name) or DEFAULT_BUFFER_SIZE))
                self.rings[name] = r
            return r

    # -- run control -------------------------------------------------------------------
    def transition(self, tr: int, run: int) -> dict[str, Any]:
        """Call every client registered for ``tr`` in sequence order and wait
        for each answer; returns {seconds, errors}."""
        t0 = time.monotonic()
        with self.lock:
            calls = sorted(
                (seq, c) for c in self.clients.values() for (t, seq) in c.transitions if t == tr
            )
        errors = []
        for _seq, c in calls:
            if c.rpc is None:
                continue
            with c.rpc_lock:
                try:
                    c.rpc.settimeout(self.transition_timeout_s)
                    wire.send(c.rpc, {"op": "tr", "tr": tr, "run": run})
                    reply = wire.recv(c.rpc)
                    if reply.get("result"):
                        errors.append(f"{c.name}: {reply['result']}")
                except (OSError, ConnectionError) as exc:
                    errors.append(f"{c.name}: {type(exc).__name__}: {exc}")
        return {"seconds": time.monotonic() - t0, "errors": errors}

    def start_run(self, run: int, description: str, odb: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            ri = self.odb["Runinfo"]
            ri["Run number"] = run
            ri["Start time binary"] = int(time.time())
            self.odb["Experiment"]["Run Parameters"]["Run description"] = description
            for path, value in odb.items():
                self.odb_set(path, value)
        result = self.transition(TR_START, run)
        with self.lock:
            self.odb["Runinfo"]["State"] = 3
            self._save()
        return result

    def stop_run(self) -> dict[str, Any]:
        with self.lock:
            run = self.odb["Runinfo"]["Run number"]
        result = self.transition(TR_STOP, run)
        with self.lock:
            self.odb["Runinfo"]["State"] = 1
            self.odb["Runinfo"]["Stop time binary"] = int(time.time())
            self._save()
        return result

    def shutdown_all(self, timeout: float = 5.0) -> int:
        """odbedit ``shutdown all``: every client gets RPC_SHUTDOWN; the ODB
        (/Runinfo/State included) is left as it is."""
        with self.lock:
            clients = list(self.clients.values())
        for c in clients:
            if c.rpc is None:
                continue
            with c.rpc_lock, contextlib.suppress(OSError):
                wire.send(c.rpc, {"op": "shutdown"})
        for c in clients:
            c.gone.wait(timeout)
        return len(clients)

    # -- connections --------------------------------------------------------------------
    def serve_forever(self) -> None:
        for lsock in [s for s in (self.unix, self.tcp) if s is not None]:
            threading.Thread(target=self._accept, args=(lsock,), daemon=True).start()
        threading.Event().wait()

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            conn, _ = lsock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            hello = wire.recv(conn)
        except (OSError, ConnectionError):
            conn.close()
            return
        role = hello.get("role")
        if role == "rpc":
            with self.lock:
                c = self.clients.get(hello["id"])
                if c is not None:
                    c.rpc = conn
            wire.send(conn, {"result": True})
            return  # the run control writes to it from now on
        if role == "client":
            if hello.get("expt") not in (None, self.name):
                wire.send(
                    conn,
                    {
                        "error": [
                            "MidasError",
                            f"experiment {hello['expt']!r} not defined",
                            CM_UNDEF_EXP,
                        ]
                    },
                )
                conn.close()
                return
            with self.lock:
                c = _Client(self.next_id, hello["name"], hello["pid"])
                self.next_id += 1
                self.clients[c.id] = c
                self.connects += 1
            wire.send(
                conn,
                {
                    "result": {
                        "id": c.id,
                        "expt": self.name,
                        "shm": self.shm if hello.get("local") else None,
                    }
                },
            )
            try:
                self._client_loop(conn, c)
            finally:
                self._drop(c)
                conn.close()
            return
        if role == "control":
            wire.send(conn, {"result": True})
            with contextlib.suppress(OSError, ConnectionError):
                self._control_loop(conn)
            conn.close()

    def _drop(self, c: _Client) -> None:
        with self.lock:
            self.clients.pop(c.id, None)
            for name in c.handles.values():
                ring = self.rings.get(name)
                if ring is not None:
                    with ring.cond:
                        ring.readers.pop(c.id, None)
                        ring.cond.notify_all()
        c.gone.set()

    def _client_loop(self, conn: socket.socket, c: _Client) -> None:
        while True:
            try:
                req = wire.recv(conn)
            except (OSError, ConnectionError):
                return
            op = req.pop("op")
            try:
                result = getattr(self, f"_op_{op}")(c, **req)
                wire.send(conn, {"result": result})
            except KeyError as exc:
                wire.send(conn, {"error": ["KeyError", str(exc.args[0]), None]})
            except (OSError, ConnectionError):
                return

    def _op_open_buffer(self, c: _Client, name: str, size: int | None) -> int:
        ring = self.ring(name, size)
        handle = len(c.handles) + 1
        c.handles[handle] = name
        with ring.cond:
            ring.readers.setdefault(c.id, Reader(c.id, next_index=ring.next_index))
        return handle

    def _op_register_request(
        self, c: _Client, handle: int, event_id: int, trigger_mask: int, sampling: int
    ) -> int:
        ring = self.ring(c.handles[handle])
        with ring.cond:
            r = ring.readers[c.id]
            rid = len(r.requests) + 1
            r.requests[rid] = (event_id, trigger_mask, sampling)
            r.next_index = ring.next_index
        return rid

    def _op_deregister_request(self, c: _Client, handle: int, request: int) -> None:
        ring = self.ring(c.handles[handle])
        with ring.cond:
            ring.readers[c.id].requests.pop(request, None)
            ring.cond.notify_all()

    def _op_receive(self, c: _Client, handle: int, flag: int, size: int) -> list:
        ring = self.ring(c.handles[handle])
        timeout = 0.0 if flag == 1 else None if flag == 0 else flag / 1000.0
        data = ring.get(c.id, timeout)
        if data is None:
            return [BM_ASYNC_RETURN, b"", 0]
        # a truncated event is consumed: only what fits is copied
        return [1, data[:size], len(data)]

    def _op_odb_get(self, c: _Client, path: str, recurse: bool = True) -> Any:
        value = self.odb_get(path)
        if isinstance(value, dict) and not recurse:
            return {k: v for k, v in value.items() if not isinstance(v, dict)}
        return value

    def _op_odb_set(self, c: _Client, path: str, value: Any) -> None:
        self.odb_set(path, value)

    def _op_odb_exists(self, c: _Client, path: str) -> bool:
        try:
            self.odb_get(path)
            return True
        except KeyError:
            return False

    def _op_register_tr(self, c: _Client, tr: int, seq: int) -> None:
        c.transitions.add((tr, seq))

    def _op_deregister_tr(self, c: _Client, tr: int) -> None:
        c.transitions = {t for t in c.transitions if t[0] != tr}

    def _op_msg(self, c: _Client, text: str, is_error: bool) -> None:
        with self.lock:
            self.messages.append((c.name, text, is_error))

    # -- the test's commands -------------------------------------------------------------
    def _control_loop(self, conn: socket.socket) -> None:
        while True:
            req = wire.recv(conn)
            op = req.pop("op")
            try:
                result = getattr(self, f"_ctl_{op}")(**req)
                wire.send(conn, {"result": result})
            except KeyError as exc:
                wire.send(conn, {"error": ["KeyError", str(exc.args[0]), None]})
            except Exception as exc:
                wire.send(conn, {"error": [type(exc).__name__, str(exc), None]})

    def _ctl_start_run(self, run: int, description: str = "", odb: dict | None = None) -> dict:
        return self.start_run(run, description, odb or {})

    def _ctl_stop_run(self) -> dict:
        return self.stop_run()

    def _ctl_produce(
        self, events: list[bytes], buffer: str = "SYSTEM", stamp_offset: int | None = None
    ) -> int:
        ring = self.ring(buffer)
        n = 0
        for e in events:
            if stamp_offset is not None:
                e = _stamped(e, stamp_offset)
            n += bool(ring.put(e))
        return n

    def _ctl_stream(
        self,
        template: bytes,
        rate_hz: float,
        count: int,
        first_serial: int = 0,
        buffer: str = "SYSTEM",
        stamp_offset: int | None = None,
    ) -> None:
        """A frontend thread: ``count`` copies of ``template`` (serials
        counting up) at ``rate_hz``; ``stamp_offset``: where to write the
        time (ns, u64) each event enters the buffer (benchmarks)."""
        ring = self.ring(buffer)

        def run() -> None:
            t0 = time.monotonic()
            tmpl = bytearray(template)
            for i in range(count):
                tmpl[4:8] = (first_serial + i).to_bytes(4, "little")
                if stamp_offset is not None:
                    tmpl[stamp_offset : stamp_offset + 8] = time.time_ns().to_bytes(8, "little")
                ring.put(bytes(tmpl))
                delay = t0 + (i + 1) / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.streamed = True

        self.streamed = False
        threading.Thread(target=run, daemon=True).start()

    def _ctl_stream_done(self) -> bool:
        return bool(getattr(self, "streamed", True))

    def _ctl_shutdown_all(self) -> int:
        return self.shutdown_all()

    def _ctl_odb_get(self, path: str) -> Any:
        return self.odb_get(path)

    def _ctl_odb_set(self, path: str, value: Any) -> None:
        self.odb_set(path, value)

    def _ctl_clients(self) -> list:
        with self.lock:
            return [[c.name, c.pid, sorted(c.transitions)] for c in self.clients.values()]

    def _ctl_readers(self, buffer: str = "SYSTEM") -> list:
        ring = self.ring(buffer)
        with ring.cond:
            return [
                # next_index: how far the reader has read (events consumed)
                [r.client_id, r.sampling, r.missed, sorted(r.requests.values()), r.next_index]
                for r in ring.readers.values()
            ]

    def _ctl_messages(self) -> list:
        with self.lock:
            return list(self.messages)

    def _ctl_stats(self) -> dict:
        with self.lock:
            return {"connects": self.connects, "clients": len(self.clients), "shm": self.shm}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="the MIDAS stand-in's experiment process")
    p.add_argument("directory")
    p.add_argument("name")
    p.add_argument("--port", type=int, default=None, help="also listen on TCP (mserver)")
    a = p.parse_args(argv)
    server = Server(Path(a.directory), a.name, a.port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    server.serve_forever()


# -- the test-side handle ------------------------------------------------------------------
class Experiment:
    """Start, drive and stop a stand-in experiment process (tests, bench)."""

    def __init__(self, directory: Path, name: str, remote: bool = False) -> None:
        self.dir = Path(directory)
        self.name = name
        self.remote = remote
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self._ctl_lock = threading.Lock()
        self.midassys = self.dir / "midassys"
        (self.midassys / "lib").mkdir(parents=True, exist_ok=True)
        (self.midassys / "lib" / "libmidas-c-compat.so").touch()
        self.exptab = self.dir / "exptab"
        self.exptab.write_text(f"{name} {self.dir / 'expt'} {os.environ.get('USER', 'daq')}\n")
        (self.dir / "expt").mkdir(exist_ok=True)

    @classmethod
    def start(
        cls, directory: str | Path, name: str = "standin", remote: bool = False
    ) -> Experiment:
        exp = cls(Path(directory), name, remote)
        exp.restart()
        return exp

    @property
    def expt_dir(self) -> Path:
        return self.dir / "expt"

    def client_env(self) -> dict[str, str]:
        """Environment of a client process (the monitor's reader)."""
        env = {
            "MIDASSYS": str(self.midassys),
            "MIDAS_EXPTAB": str(self.exptab),
            "MIDAS_EXPT_NAME": self.name,
            "PYTHONPATH": os.pathsep.join(
                [standin_path(), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        if self.remote:
            env["MIDAS_SERVER_HOST"] = f"127.0.0.1:{self.port}"
        return env

    def restart(self) -> None:
        """(Re)start the experiment process; the ODB and the shared memory
        file persist from the previous one."""
        self.close_control()
        args = [
            sys.executable,
            "-m",
            "cygno_online.testing.midas_standin.experiment",
            str(self.expt_dir),
            self.name,
        ]
        if self.remote:
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"stand-in experiment did not start: {line!r}")
        if self.remote:
            self.port = int((self.expt_dir / ".standin.port").read_text())

    def _call(self, op: str, **args: Any) -> Any:
        with self._ctl_lock:
            if self._ctl is None:
                self._ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._ctl.connect(str(self.expt_dir / ".standin.sock"))
                wire.call(self._ctl, "hello", role="control")
            return wire.call(self._ctl, op, **args)

    def close_control(self) -> None:
        with self._ctl_lock:
            if self._ctl is not None:
                self._ctl.close()
                self._ctl = None

    # run control (odbedit)
    def start_run(self, run: int, description: str = "", **odb: Any) -> float:
        r = self._call("start_run", run=run, description=description, odb=odb)
        if r["errors"]:
            raise RuntimeError(f"start of run {run}: {r['errors']}")
        return r["seconds"]

    def stop_run(self) -> float:
        r = self._call("stop_run")
        if r["errors"]:
            raise RuntimeError(f"stop: {r['errors']}")
        return r["seconds"]

    def shutdown_all(self) -> int:
        return self._call("shutdown_all")

    # frontend
    def produce(self, events: list[bytes] | bytes, stamp_offset: int | None = None) -> int:
        if isinstance(events, (bytes, bytearray)):
            events = [bytes(events)]
        return self._call("produce", events=list(events), stamp_offset=stamp_offset)

    def stream(
        self,
        template: bytes,
        rate_hz: float,
        count: int,
        first_serial: int = 0,
        stamp_offset: int | None = None,
    ) -> None:
        self._call(
            "stream",
            template=template,
            rate_hz=rate_hz,
            count=count,
            first_serial=first_serial,
            stamp_offset=stamp_offset,
        )

    def stream_done(self) -> bool:
        return self._call("stream_done")

    # inspection
    def odb_get(self, path: str) -> Any:
        return self._call("odb_get", path=path)

    def odb_set(self, path: str, value: Any) -> None:
        self._call("odb_set", path=path, value=value)

    def clients(self) -> list:
        return self._call("clients")

    def readers(self) -> list:
        return self._call("readers")

    def messages(self) -> list:
        return self._call("messages")

    def stats(self) -> dict:
        return self._call("stats")

    # failures
    def shm_path(self) -> str:
        return (self.expt_dir / ".SYSTEM.SHM").read_text().strip()

    def remove_shm(self) -> None:
        """The SYSTEM buffer's shared memory vanishes (e.g. a cleanup or
        logind's RemoveIPC): the next buffer call of a local client aborts."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.shm_path())
        with contextlib.suppress(FileNotFoundError):
            (self.expt_dir / ".SYSTEM.SHM").unlink()

    def kill(self) -> None:
        """The experiment (mserver) process dies."""
        self.close_control()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(FileNotFoundError, OSError):
            os.unlink(self.shm_path())


if __name__ == "__main__":
    main()
