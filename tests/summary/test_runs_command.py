"""``summary FILES --registry URL`` fills the run registry; ``runs`` reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cygno_online.cli import main
from cygno_online.commands.runs import parse_since


@pytest.fixture(scope="module")
def registry(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite://{tmp_path_factory.mktemp('reg')}/runs.sqlite"
    files = [str(shared_data / "midas" / n) for n in ("run00010.mid.lz4", "run00011.mid.gz")]
    assert main(["summary", *files, "--registry", url, "--json"]) == 0
    return url


def test_summary_fills_the_registry_and_runs_lists_it(registry: str, capsys):
    capsys.readouterr()
    assert main(["runs", "--registry", registry, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run"] for r in rows] == [10, 11]
    for r in rows:
        assert r["events_seen"] > 0 and r["verdict"] in ("good", "warning", "bad")
        assert r["exposure_s"] == pytest.approx(0.3)
    assert main(["runs", "--registry", registry]) == 0
    text = capsys.readouterr().out
    assert "verdict" in text.splitlines()[0] and len(text.splitlines()) == 3


def test_runs_show_and_compare(registry: str, capsys):
    capsys.readouterr()
    assert main(["runs", "show", "11", "--registry", registry]) == 0
    out = capsys.readouterr().out
    assert "run_type" in out and "events_seen" in out
    assert main(["runs", "compare", "10", "11", "--registry", registry, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    seen = next(q for q in doc["quantities"] if q["quantity"] == "events_seen")
    assert seen["diff"] == seen["b"] - seen["a"]
    assert main(["runs", "show", "99", "--registry", registry]) == 1
    assert "run 99 is not in" in capsys.readouterr().err


def test_runs_since_and_bad_arguments(registry: str, capsys):
    capsys.readouterr()
    assert main(["runs", "--registry", registry, "--since", "2100-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []
    assert main(["runs", "--registry", registry, "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    assert main(["runs", "--registry", "mysql://u:pw@h/db"]) == 2
    assert "no password in the URL" in capsys.readouterr().err


def test_parse_since():
    assert parse_since("2h", now_s=10_000.0) == int((10_000 - 7200) * 1e9)
    assert parse_since("2026-11-30T00:00:00") == 1795996800 * 10**9
