"""What every tab panel shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.containers import Container

from cygno_online.publish.state import MonitorState
from cygno_online.tui.keymetrics import is_stale
from cygno_online.tui.source import Expectations, Limit


@dataclass(slots=True)
class ViewContext:
    """One poll's view of the world. Panels get it with ``state.lock`` held:
    they copy references to what they show and return quickly; drawing
    happens later on the UI loop."""

    state: MonitorState
    now: float
    connected: bool
    limits: list[Limit] = field(default_factory=list)
    #: camera / board the shifter selected (``c`` / ``n`` keys)
    camera: str | None = None
    #: references from the daemon's configuration (55Fe peak, pedestal k)
    expect: Expectations = field(default_factory=Expectations)

    def stale(self, sid: str, field: str | None = None) -> bool:
        return not self.connected or is_stale(self.state, sid, self.now, field)

    def display_stale(self, time_ns: int) -> bool:
        from cygno_online.tui.keymetrics import display_stale

        return not self.connected or display_stale(time_ns, self.now)


class Panel(Container):
    """A tab's content. ``update_view`` runs on the UI thread at the poll
    rate while the tab is visible (and once when it becomes visible)."""

    DEFAULT_CSS = "Panel { height: 1fr; }"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        #: last drawn signature per part: repaint only what changed
        self._seen: dict[str, tuple] = {}
        #: when each throttled part was last drawn (the app's clock)
        self._drawn_at: dict[str, float] = {}

    def _changed(self, key: str, sig: tuple) -> bool:
        """True (and remembered) when part ``key`` must be redrawn for ``sig``."""
        if self._seen.get(key) == sig:
            return False
        self._seen[key] = sig
        return True

    def _due(self, key: str, data: tuple, view: tuple, now: float, every_s: float) -> bool:
        """Like :meth:`_changed`, but a change of ``data`` alone redraws at
        most every ``every_s`` seconds (plots that change with every display
        message); a change of ``view`` (staleness, selection, size) at once.
        A deferred change is drawn at a later poll: the signature is only
        remembered when drawn."""
        sig = (data, view)
        old = self._seen.get(key)
        if old == sig:
            return False
        last = self._drawn_at.get(key)
        if old is not None and old[1] == view and last is not None and 0 <= now - last < every_s:
            return False
        self._seen[key] = sig
        self._drawn_at[key] = now
        return True

    def update_view(self, ctx: ViewContext) -> None:
        raise NotImplementedError

    def focus_target(self) -> object | None:
        """The widget that gets focus when the tab is shown."""
        return None
