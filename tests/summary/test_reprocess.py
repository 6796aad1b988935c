"""``cygno-online reprocess`` on a real Dask scheduler and two real workers on
loopback (subprocesses), one of them killed mid-file; the progress counts
with a fake clock."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cygno_online.analysis.reprocess import FileResult, Progress, reprocess
from cygno_online.commands.summary import default_config, summarize
from cygno_online.testing.waiting import wait_for

distributed = pytest.importorskip("distributed")

#: measured processing times, the time the summary was made and the temporary
#: pedestal folder differ from one
#: run of the same summary to the next; everything else must be identical
VOLATILE = {"process_ms", "pedestal_store", "generated_ns"}


def stable(doc):
    if isinstance(doc, dict):
        return {k: stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [stable(v) for v in doc]
    return doc


class Cluster:
    """``python -m distributed.cli.dask_scheduler`` and two ``dask_worker``
    processes without nanny (a killed worker stays dead)."""

    def __init__(self, tmp: Path) -> None:
        self.file = tmp / "scheduler.json"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.log = open(tmp / "cluster.log", "w")  # noqa: SIM115
        common = {"stdout": self.log, "stderr": subprocess.STDOUT, "env": env}
        self.scheduler = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.file),
            ],
            **common,
        )
        wait_for(self.file.exists, timeout=60, what="scheduler file")
        self.workers = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(self.file),
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    name,
                    "--host",
                    "127.0.0.1",
                ],
                **common,
            )
            for name in ("wA", "wB")
        }

    def close(self) -> None:
        for p in [*self.workers.values(), self.scheduler]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*self.workers.values(), self.scheduler]:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@pytest.mark.slow
def test_worker_killed_mid_file_bad_file_reported_results_identical(shared_data, tmp_path):
    midas = shared_data / "midas"
    files = []
    for name, target in (
        ("a.mid.gz", "run00011.mid.gz"),
        ("b.mid.lz4", "run00010.mid.lz4"),
        ("c.mid.gz", "run00011.mid.gz"),
    ):
        (tmp_path / name).symlink_to(midas / target)
        files.append(str(tmp_path / name))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not a MIDAS file\n" * 100)
    files.insert(1, str(bad))
    cfg = default_config()
    spec = {"cfg": cfg, "config_path": None, "pedestal": None}

    cluster = Cluster(tmp_path)
    client = distributed.Client(scheduler_file=str(cluster.file), timeout="60s")
    try:
        wait_for(
            lambda: len(client.scheduler_info()["workers"]) == 2, timeout=60, what="two workers"
        )
        names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
        killed: dict[str, object] = {}
        lock = threading.Lock()

        def on_progress(msg):
            # The first file a worker has started (one event done, more to
            # come): kill that worker there and then.
            with lock:
                if not killed and msg["events"] >= 1:
                    killed.update(msg)
                    cluster.workers[names[msg["worker"]]].kill()

        stream = io.StringIO()
        progress = Progress(files, stream)
        results = reprocess(files, spec, client, progress=progress, on_progress=on_progress)
    finally:
        client.close()
        cluster.close()

    assert killed, "no worker was killed"
    assert [r.file for r in results] == [str(Path(f).absolute()) for f in files]
    by_name = {Path(r.file).name: r for r in results}
    # the bad file is reported with its error, the others went on
    assert by_name["bad.mid"].status == "error"
    assert "no run in this file" in by_name["bad.mid"].error
    ok = [r for r in results if r.status == "ok"]
    assert len(ok) == 3
    # the file of the killed worker was finished by the other one
    lost = results[killed["index"]]
    assert lost.status == "ok" and lost.worker != killed["worker"]
    # identical to `cygno-online summary FILE`, file by file
    reference = {name: summarize([str(tmp_path / name)], cfg) for name in ("a.mid.gz", "b.mid.lz4")}
    reference["c.mid.gz"] = [
        {**d, "source": str(tmp_path / "c.mid.gz")} for d in reference["a.mid.gz"]
    ]
    for name, expected in reference.items():
        assert stable(by_name[name].summaries) == stable(expected)
    # nothing counted twice: the lost attempt's events are gone
    expected_events = sum(d["counters"]["events_seen"] for docs in reference.values() for d in docs)
    assert sum(r.events for r in results) == expected_events
    assert progress.events() == expected_events and progress.running == {}
    assert progress.done == 4 and progress.failed == 1
    assert "files 4/4 (1 failed)" in stream.getvalue()


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_counts_each_file_once_across_attempts(tmp_path):
    files = []
    for i, size in enumerate((1000, 1000, 2000)):
        f = tmp_path / f"f{i}.mid"
        f.write_bytes(b"x" * size)
        files.append(str(f))
    clock = FakeClock()
    out = io.StringIO()
    p = Progress(files, out, clock=clock)
    assert p.eta_s() is None
    p.worker_message({"index": 0, "attempt": "a1", "worker": "w1", "events": 5})
    p.worker_message({"index": 1, "attempt": "b1", "worker": "w2", "events": 3})
    assert p.events() == 8
    # w1 dies: its count goes; the retry elsewhere starts again from zero
    p.forget_workers({"w2"})
    assert p.events() == 3
    p.worker_message({"index": 0, "attempt": "a2", "worker": "w2", "events": 2})
    assert p.events() == 5
    clock.t += 10
    p.finished(FileResult(0, files[0], "ok", events=12))
    # a late message of a finished file changes nothing
    p.worker_message({"index": 0, "attempt": "a2", "worker": "w2", "events": 11})
    assert p.events() == 12 + 3
    # 1000 bytes in 10 s, 3000 left
    assert p.eta_s() == pytest.approx(30.0)
    p.finished(FileResult(1, files[1], "ok", events=4))
    p.finished(FileResult(2, files[2], "error", error="boom"))
    assert p.events() == 16 and p.done == 3 and p.failed == 1
    assert p.eta_s() == 0
    last = out.getvalue().strip().splitlines()[-1]
    assert "files 3/3 (1 failed)" in last and "events 16" in last and "left 0:00:00" in last


def test_reprocess_command_without_distributed_says_what_to_install(monkeypatch, capsys):
    import builtins

    from cygno_online.cli import main

    real_import = builtins.__import__

    def fake_import(name, *a, **kw):
        if name == "distributed":
            raise ModuleNotFoundError("No module named 'distributed'", name="distributed")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert main(["reprocess", "x.mid"]) == 2
    assert "cygno-online[cluster]" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_reprocess_small(shared_data):
    """The bench runs end to end on a local cluster (figures reported, never asserted)."""
    import argparse

    from cygno_online.bench import reprocess as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--files",
            str(shared_data / "midas" / "run00011.mid.gz"),
            "--copies",
            "2",
            "--workers",
            "1",
            "--repeat",
            "1",
        ]
    )
    report = bench.run(args)
    one = report.rows[-1]
    assert [r.runs for r in report.rows] == [2, 2, 2, 2]
    assert one.speedup is not None and one.speedup > 0 and "failed" not in one.extra


@pytest.mark.slow
def test_reprocess_command_local_cluster_out_json_registry(shared_data, tmp_path, capsys):
    """`cygno-online reprocess` on a local cluster: the same --out/--json as
    `summary`, registry rows, a missing file reported and exit status 1."""
    import json

    from cygno_online.cli import main

    good = str(shared_data / "midas" / "run00011.mid.gz")
    missing = str(tmp_path / "run99999.mid.gz")
    url = f"sqlite://{tmp_path}/runs.sqlite"
    out = tmp_path / "out"
    rc = main(
        [
            "reprocess",
            good,
            missing,
            "--workers",
            "1",
            "--out",
            str(out),
            "--json",
            "--registry",
            url,
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    doc = json.loads(captured.out)
    assert [f["status"] for f in doc["files"]] == ["ok", "error"]
    assert "FileNotFoundError" in doc["files"][1]["error"]
    assert "run99999.mid.gz" in captured.err and "1 FAILED" in captured.err
    assert main(["summary", good, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["summaries"]
    assert stable(doc["summaries"]) == stable(expected)
    assert [p.name for p in out.iterdir() if p.suffix == ".json"] == ["run00011-summary.json"]
    assert main(["runs", "--registry", url, "--json"]) == 0
    assert [r["run"] for r in json.loads(capsys.readouterr().out)["runs"]] == [11]
