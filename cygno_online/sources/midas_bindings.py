"""What the live source needs from a MIDAS install, checked before connecting.

The real bindings (``$MIDASSYS/python/midas``) keep their constants and error
types in the top-level ``midas`` package; ``midas.client`` holds only
``MidasClient`` and does not re-export them (see /work/shared/docs/midas.md,
"The real bindings in detail"). An install that lacks a piece is not a network
problem: retrying a connection cannot fix it, so the check names everything
that is missing at once and the source reports the state ``incompatible``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

#: names the live source uses from the top-level ``midas`` package
PACKAGE_NAMES = (
    "GET_ALL",
    "GET_NONBLOCKING",
    "GET_RECENT",
    "TR_START",
    "TR_STOP",
    "MidasError",
    "status_codes",
)
#: status codes looked up by name in ``midas.status_codes``
STATUS_NAMES = ("BM_ASYNC_RETURN", "BM_TRUNCATED")
#: what ``midas.client.MidasClient`` must offer
CLIENT_NAMES = (
    "open_event_buffer",
    "register_event_request",
    "register_transition_callback",
    "communicate",
    "odb_get",
    "msg",
    "disconnect",
)
LIBRARY = "lib/libmidas-c-compat.so"


class IncompatibleBindings(RuntimeError):
    """The MIDAS install cannot be used: ``missing`` lists every reason."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        super().__init__("MIDAS bindings unusable: " + "; ".join(self.missing))


@dataclass
class Bindings:
    midas: ModuleType
    client: ModuleType
    status: dict[str, int] = field(default_factory=dict)


def check_bindings(environ: dict[str, str] | None = None) -> Bindings:
    """Import and check the bindings; raise :class:`IncompatibleBindings`
    naming every missing piece (environment, library, module, name)."""
    env = os.environ if environ is None else environ
    missing: list[str] = []
    midassys = env.get("MIDASSYS")
    if not midassys:
        missing.append("MIDASSYS is not set")
    elif not (Path(midassys) / LIBRARY).is_file():
        missing.append(f"{Path(midassys) / LIBRARY} does not exist")
    try:
        midas = importlib.import_module("midas")
    except ImportError as exc:
        missing.append(
            f"the Python package 'midas' is not importable ({exc}; PYTHONPATH=$MIDASSYS/python)"
        )
        raise IncompatibleBindings(missing) from exc
    try:
        client = importlib.import_module("midas.client")
    except ImportError as exc:
        missing.append(f"'midas.client' is not importable ({exc})")
        raise IncompatibleBindings(missing) from exc
    for name in PACKAGE_NAMES:
        if not hasattr(midas, name):
            missing.append(f"midas.{name} is missing")
    codes = getattr(midas, "status_codes", None)
    status: dict[str, int] = {}
    if isinstance(codes, dict):
        for name in STATUS_NAMES:
            if name in codes:
                status[name] = int(codes[name])
            else:
                missing.append(f"midas.status_codes[{name!r}] is missing")
    cls = getattr(client, "MidasClient", None)
    if cls is None:
        missing.append("midas.client.MidasClient is missing")
    else:
        for name in CLIENT_NAMES:
            if not hasattr(cls, name):
                missing.append(f"midas.client.MidasClient.{name} is missing")
    if missing:
        raise IncompatibleBindings(missing)
    return Bindings(midas, client, status)
