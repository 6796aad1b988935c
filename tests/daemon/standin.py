"""The MIDAS stand-in for tests: an experiment process, and client processes
that import the stand-in bindings (each a fresh process, as libmidas's
process-wide state requires)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from cygno_online.testing.midas_standin.experiment import Experiment

PRELUDE = """
import ctypes, os, signal, sys, time
import midas, midas.client
def say(*a):
    print(*a, flush=True)
"""


class Child:
    """A client process running ``code`` (stdout lines for synchronisation)."""

    def __init__(self, exp: Experiment, code: str, env: dict[str, str] | None = None) -> None:
        full = {**os.environ, **exp.client_env(), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
            env=full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, text: str) -> str:
        line = self.proc.stdout.readline()
        if text not in line:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
            raise AssertionError(f"expected {text!r}, got {line!r}; then {out!r}, stderr {err!r}")
        return line

    def send(self, line: str = "go") -> None:
        """Release a child waiting in ``sys.stdin.readline()``."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 20) -> tuple[int, str, str]:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
            self.proc.stdin = None
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def run_client(exp: Experiment, code: str, **kw) -> tuple[int, str, str]:
    return Child(exp, code, **kw).finish()
