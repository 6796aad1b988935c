"""A stand-in for the MIDAS Python bindings and for a MIDAS experiment.

* ``midas/`` (put :func:`path` on ``sys.path`` or ``PYTHONPATH`` to make it the
  top-level ``midas`` package): ``midas`` (constants, ``status_codes``,
  ``MidasError``, ``TransitionFailedError``, ``MidasLib``), ``midas.client``
  (``MidasClient``) and ``midas.event``, behaving point by point as
  /work/shared/docs/midas.md "The real bindings in detail" says; each point is
  pinned by tests/daemon/test_midas_standin.py.
* ``experiment.py``: the experiment process those bindings talk to (ODB,
  buffers, run control, ``shutdown all``, mserver over TCP) and
  :class:`~cygno_online.testing.midas_standin.experiment.Experiment`, the
  handle tests and ``bench live`` drive it with.
* ``frontend.py``: events as a LIME frontend sends them (32-bit and 16-bit
  banks, STRING banks, oversized events).

Never imported by the daemon itself (its reader process imports whatever
``midas`` is on its path: the real bindings in production).
"""

from __future__ import annotations

from pathlib import Path


def path() -> str:
    """The folder to put on ``sys.path`` so that ``import midas`` finds the stand-in."""
    return str(Path(__file__).resolve().parent)
