"""A stand-in for the MIDAS Python bindings (``midas``, ``midas.client``,
``midas.event``), following /work/shared/docs/midas.md: same names, arguments,
return types, sampling and signal semantics, over an in-process fake
experiment (``midas.experiment``) that tests drive.

Put this folder on ``sys.path`` (see :func:`path`) to make it the top-level
``midas`` package. It is never imported by the daemon itself.
"""

from __future__ import annotations

from pathlib import Path


def path() -> str:
    """The folder to put on ``sys.path`` so that ``import midas`` finds the stand-in."""
    return str(Path(__file__).resolve().parent)
