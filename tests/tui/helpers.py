"""Test helpers: screen text of a running app."""

from __future__ import annotations

from textual.app import App


def screen_lines(app: App) -> list[str]:
    """The current screen as plain text lines (what a shifter reads)."""
    strips = app.screen._compositor.render_strips()
    return ["".join(seg.text for seg in strip) for strip in strips]


def screen_text(app: App) -> str:
    return "\n".join(screen_lines(app))


GREY = (128, 128, 128)


def styles_of(app: App, needle: str) -> list:
    """Rich styles of the on-screen segments whose text contains ``needle``."""
    out = []
    for strip in app.screen._compositor.render_strips():
        for seg in strip:
            if needle in seg.text and seg.style is not None:
                out.append(seg.style)
    return out


def is_grey(style) -> bool:
    c = style.color
    return c is not None and c.triplet is not None and tuple(c.triplet) == GREY


def run_app(source, body, *, size=(80, 24), clock=None, **kw):
    """``clock``: None for the tests' fixed NOW, ``time.time`` for live data."""
    """Run ``body(app, pilot)`` (a coroutine function) inside a headless app."""
    import asyncio

    from fakedata import NOW

    from cygno_online.tui.app import MonitorApp

    result = {}

    async def main():
        app = MonitorApp(
            source,
            clock=(lambda: NOW) if clock is None else clock,
            user="tester",
            image_interval_s=kw.pop("image_interval_s", 0.0),
            **kw,
        )
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            result["value"] = await body(app, pilot)
        result["app"] = app

    asyncio.run(main())
    return result
