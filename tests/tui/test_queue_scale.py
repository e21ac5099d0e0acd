"""The queue with 10,000 jobs: first load, then an incremental refresh after the engine updates 100 jobs.

Prints the measured times (run with `-s` to see them); the bounds are loose so a busy CI core does not flake.
"""

from __future__ import annotations

import time

import pytest
from tui_fake_store import add_many_jobs

from xaug.store import data_version, open_store
from xaug.tui.app import XaugApp
from xaug.tui.widgets.job_table import JobTable

pytestmark = pytest.mark.anyio
N_JOBS = 10_000


async def test_queue_refresh_with_10000_jobs(fake_store):
    writer = open_store(fake_store)
    add_many_jobs(writer, N_JOBS)
    app = XaugApp(fake_store, poll_s=0.1)
    started = time.perf_counter()
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(JobTable)
        while table.row_count < 1:
            await pilot.pause(0.01)
        # While the 10,000 rows are still being added, a key press is handled promptly.
        key_started = time.perf_counter()
        await pilot.press("down")
        key_during_load = time.perf_counter() - key_started
        while table.row_count < N_JOBS + 12 or not app.screen.last_refresh_s:
            await pilot.pause(0.02)
            assert time.perf_counter() - started < 120, "the first load never finished"
        first_load = time.perf_counter() - started
        first = dict(app.screen.last_refresh_s)

        # The engine reports progress on 100 jobs: only those cells change.
        with writer.conn:
            writer.conn.executemany("UPDATE jobs SET progress = 77 WHERE key = ?",
                                    [(f"bulk{i:060d}",) for i in range(0, N_JOBS, 100)])
        changed_at = time.perf_counter()
        target = f"bulk{0:060d}"
        while "77%" not in table.get_row(target)[4].plain:
            await pilot.pause(0.02)
            assert time.perf_counter() - changed_at < 30, "the change never showed up"
        visible_after = time.perf_counter() - changed_at
        incremental = dict(app.screen.last_refresh_s)

        poll_started = time.perf_counter()
        for _ in range(100):
            data_version(app.db)
        poll_cost = (time.perf_counter() - poll_started) / 100

        key_started = time.perf_counter()
        await pilot.press("down")
        key_after = time.perf_counter() - key_started
        assert table.cursor_row == 2
    print(f"\n10,000-job queue: first load {first_load:.2f} s (query {first['query']:.3f} s in a worker, table"
          f" filled in chunks over {first['apply']:.2f} s; a key press during the load took"
          f" {key_during_load * 1000:.0f} ms); after 100 jobs changed: visible in {visible_after:.2f} s (poll 0.1 s;"
          f" query {incremental['query']:.3f} s in a worker, UI-thread diff {incremental['apply']:.3f} s);"
          f" idle poll {poll_cost * 1e6:.0f} us; key press {key_after * 1000:.0f} ms")
    assert incremental["apply"] < 1.0
    assert poll_cost < 0.01
