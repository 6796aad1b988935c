"""Runs tab: the daemon's recent summaries, one run's full summary on Enter
with the comparison against the previous run of its kind and the reference."""

from __future__ import annotations

from fakedata import NOW_NS, make_source, summary_doc
from helpers import run_app, screen_text

from cygno_online.publish.messages import Message
from cygno_online.publish.state import RECENT_SUMMARIES, MonitorState
from cygno_online.tui.screens.runs import RunSummaryScreen, comparison, previous_of, summary_rows


def test_runs_tab_lists_newest_first_with_verdict_and_flags():
    async def body(app, pilot):
        await pilot.press("7")
        await pilot.pause()
        return screen_text(app)

    text = run_app(make_source(), body, size=(120, 30))["value"]
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if "42900" in line)
    assert "flagged" in lines[i] and "6100" in lines[i] and "fe55_peak_shifted" in lines[i]
    assert "42899" in lines[i + 1] and "good" in lines[i + 1] and "7050" in lines[i + 1]
    assert "42898" in lines[i + 2] and "ped" in lines[i + 2]
    assert "last 3 summaries, 1 flagged" in text


def test_enter_opens_the_full_summary_compared_with_the_previous_data_run():
    async def body(app, pilot):
        await pilot.press("7")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        opened = isinstance(app.screen, RunSummaryScreen)
        text = screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        return opened, text, isinstance(app.screen, RunSummaryScreen)

    opened, text, still = run_app(make_source(), body, size=(120, 50))["value"]
    assert opened and not still
    assert "Run 42900 summary" in text and "quality: flagged" in text
    assert "55Fe peak moved by -15.3%" in text
    # compared with 42899 (the previous data run), not the pedestal run 42898
    assert "Compared with the previous data run, 42899" in text
    assert "previous: run 42899" in text
    row = next(line for line in text.splitlines() if "55Fe peak" in line and "ADU" in line)
    assert "6100 ADU" in row and "7050 ADU" in row and "-13.5%" in row and "7200 -15%" in row


def test_summary_list_is_bounded_compact_and_in_the_snapshot():
    st = MonitorState()
    for i in range(RECENT_SUMMARIES + 5):
        doc = summary_doc(100 + i, NOW_NS, sections={"camera": {"big": list(range(100))}})
        st.apply(Message("summary", doc, seq=i + 1))
    assert len(st.summaries) == RECENT_SUMMARIES
    assert st.summaries[-1]["run"] == 100 + RECENT_SUMMARIES + 4
    assert "sections" not in st.summaries[-1] and "sections" in st.summary
    # a summary of the same run and part replaces the earlier one
    st.apply(Message("summary", summary_doc(124, NOW_NS, quality="flagged"), seq=99))
    assert [d["run"] for d in st.summaries].count(124) == 1
    late = MonitorState()
    msg = st.to_message()
    late.load(msg.body, msg.arrays)
    assert list(late.summaries) == list(st.summaries)


def test_rows_and_comparison_are_plain_functions():
    docs = [summary_doc(1, NOW_NS, pedestal=True), summary_doc(2, NOW_NS), summary_doc(3, NOW_NS)]
    rows = summary_rows(docs)
    assert [r["run"] for r in rows] == ["3", "2", "1"] and rows[2]["kind"] == "ped"
    assert previous_of(docs, docs[2]) is docs[1]
    assert previous_of(docs, docs[1]) is None  # the only earlier run is a pedestal run
    table = comparison(docs[2], None, {}, other_title="previous: none")
    assert table.columns[2].header == "previous: none"
