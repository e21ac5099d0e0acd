"""Layout guards: SVG snapshots of the queue, job detail, study and gallery screens on a clock-free fake store.

Regenerate after an intended layout change with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from xaug.tui.app import XaugApp
from xaug.tui.widgets.job_table import JobTable

SIZE = (140, 40)


async def _settle(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def test_queue_snapshot(snap_compare, still_store):
    assert snap_compare(XaugApp(still_store, poll_s=60), terminal_size=SIZE, run_before=_settle)


def test_classifier_detail_snapshot(snap_compare, still_store):
    async def open_evaluate(pilot):
        await _settle(pilot)
        table = pilot.app.screen.query_one(JobTable)
        table.move_cursor(row=table.get_row_index("e" * 64))
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(XaugApp(still_store, poll_s=60), terminal_size=SIZE, run_before=open_evaluate)


def test_study_snapshot(snap_compare, still_store):
    async def open_study(pilot):
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)

    assert snap_compare(XaugApp(still_store, poll_s=60), terminal_size=SIZE, run_before=open_study)


def test_gallery_snapshot(snap_compare, still_store):
    async def open_gallery(pilot):
        await _settle(pilot)
        await pilot.press("f4")
        await _settle(pilot)

    assert snap_compare(XaugApp(still_store, poll_s=60), terminal_size=SIZE, run_before=open_gallery)


def test_study_snapshot_at_120_columns(snap_compare, still_store):
    """The quality-vs-utility scatter and its table fit half of a 120-column terminal."""
    async def open_study(pilot):
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)

    assert snap_compare(XaugApp(still_store, poll_s=60), terminal_size=(120, 40), run_before=open_study)
