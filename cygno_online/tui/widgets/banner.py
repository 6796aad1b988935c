"""The connection banner: invisible while live, otherwise one loud line
(two when the daemon was never reached: what to check) that fits 80 columns.

"since" is the time of the last message from the daemon (data or heartbeat),
not the time the viewer noticed the silence."""

from __future__ import annotations

import datetime as dt

from textual.widgets import Static

from cygno_online.tui.keymetrics import fmt_age

#: what to check when the daemon was never reached (short: fits 80 columns)
NEVER_CHECKS = (
    "check: daemon running (systemctl status cygno-online)? --connect host:port? "
    "SSH tunnel of 3 ports? --server-key?"
)


def _short_endpoint(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1]


def banner_text(
    link: str | None,
    since: float | None,
    now: float,
    endpoint: str = "",
    width: int = 80,
    started: float | None = None,
) -> str:
    """The banner for ``link`` ``lost`` / ``never`` (``None``: old callers,
    meaning lost); at most ``width - 2`` characters per line."""
    room = max(20, width - 2)
    where = _short_endpoint(endpoint)
    if link == "never":
        trying = f" (trying for {fmt_age(now - started)})" if started else ""
        first = f"NEVER CONNECTED to {where or 'the daemon'}{trying}: no message yet"
        if len(first) > room:
            first = f"NEVER CONNECTED{trying}: no message from the daemon yet"
        checks = NEVER_CHECKS
        if len(checks) > room:
            checks = "check: daemon running? --connect host:port? SSH tunnel? --server-key?"
        return f"{first[:room]}\n{checks[:room]}"
    if since is None:
        text = "LOST: no message from the daemon; reconnecting; values are stale"
        return text[:room]
    when = dt.datetime.fromtimestamp(since).strftime("%H:%M:%S")
    text = f"LOST since {when} ({fmt_age(now - since)} ago): no message from the daemon"
    for extra in (f" at {where}; values stale, reconnecting", "; values stale", ""):
        if len(text + extra) <= room:
            return text + extra
    return text[:room]


class Banner(Static):
    DEFAULT_CSS = """
    Banner { display: none; height: auto; background: $error; color: $text; text-style: bold; padding: 0 1; }
    Banner.-visible { display: block; }
    Banner.-never { background: $warning-darken-2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._text = ""

    def show(
        self,
        link: str | bool,
        since: float | None,
        now: float,
        endpoint: str = "",
        width: int = 80,
        started: float | None = None,
    ) -> None:
        if isinstance(link, bool):  # old signature: connected flag
            link = "live" if link else "lost"
        self.set_class(link != "live", "-visible")
        self.set_class(link == "never", "-never")
        text = "" if link == "live" else banner_text(link, since, now, endpoint, width, started)
        if text != self._text:
            self._text = text
            self.update(text)

    @property
    def text(self) -> str:
        return self._text
