"""The queue with 10,000 jobs: the first screenful, then every job, a key press, and a progress change of 100
running jobs; the UI thread's share of a refresh stays tiny (only visible rows are ever drawn).

Prints the measured times (run with `-s` to see them); the bounds are loose so a busy CI core does not flake.
`xaug bench tui` measures the same on a bigger store, side by side with another version of the TUI."""

from __future__ import annotations

import time

import pytest
from tui_fake_store import add_many_jobs

from xaug.store import data_version, open_store
from xaug.tui.app import XaugApp
from xaug.tui.widgets.job_table import JobTable

pytestmark = pytest.mark.anyio
N_JOBS = 10_000


async def test_queue_with_10000_jobs(fake_store):
    writer = open_store(fake_store)
    add_many_jobs(writer, N_JOBS)  # every 100th running, the rest queued
    app = XaugApp(fake_store, poll_s=0.1)
    started = time.perf_counter()
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(JobTable)
        while table.row_count < 1:
            await pilot.pause(0.01)
        first_paint = time.perf_counter() - started
        assert table.get_row_at(0)[3].plain == "running"  # the screenful read first is the top of the queue
        while table.row_count < N_JOBS + 12 or not app.screen.last_refresh_s:
            await pilot.pause(0.02)
            assert time.perf_counter() - started < 60, "the first load never finished"
        every_job = time.perf_counter() - started
        first = dict(app.screen.last_refresh_s)

        # The engine reports progress on 100 running jobs: only the running rows are read again.
        targets = [f"bulk{i:060d}" for i in range(0, N_JOBS, 100)]
        with writer.conn:
            writer.conn.executemany("UPDATE jobs SET progress = 77 WHERE key = ?", [(k,) for k in targets])
        changed_at = time.perf_counter()
        while not all("77%" in table.get_row(k)[4].plain for k in targets):
            await pilot.pause(0.01)
            assert time.perf_counter() - changed_at < 30, "the change never showed up"
        visible_after = time.perf_counter() - changed_at
        incremental = dict(app.screen.last_refresh_s)

        poll_started = time.perf_counter()
        for _ in range(100):
            data_version(app.db)
        poll_cost = (time.perf_counter() - poll_started) / 100

        table.focus()
        table.move_cursor(row=5000)
        key_started = time.perf_counter()
        await pilot.press("down")
        key_after = time.perf_counter() - key_started
        assert table.cursor_row == 5001 and table.selected_key == table.order[5001]
    print(f"\n10,000-job queue: first screenful {first_paint:.2f} s, every job {every_job:.2f} s (read"
          f" {first['query']:.3f} s in a worker, shown in {first['apply'] * 1000:.1f} ms on the UI thread); after"
          f" 100 jobs changed: visible in {visible_after:.2f} s (poll 0.1 s; read {incremental['query'] * 1000:.0f} ms"
          f" in a worker, shown in {incremental['apply'] * 1000:.1f} ms); idle poll {poll_cost * 1e6:.0f} us;"
          f" key press {key_after * 1000:.0f} ms")
    assert first["apply"] < 0.05 and incremental["apply"] < 0.05  # never proportional to the number of jobs
    assert incremental["query"] < first["query"]  # progress only: the running rows, not all 10,000
    assert poll_cost < 0.01
