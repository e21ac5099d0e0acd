"""Queue screen: rows, every key action (asserting on the store), filters, logs and live updates."""

from __future__ import annotations

import sqlite3

import pytest
from tui_fake_store import add_job, settle

from xaug.store import now, open_store
from xaug.tui.app import XaugApp
from xaug.tui.screens.log import LogScreen
from xaug.tui.screens.queue import QueueScreen, parse_filter
from xaug.tui.widgets.engine_bar import EngineBar
from xaug.tui.widgets.job_table import JobTable, progress_bar


pytestmark = pytest.mark.anyio


def _status(path, key):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT status, cancel_requested, attempts, priority FROM jobs WHERE key = ?",
                            (key,)).fetchone()


async def _select(pilot, key):
    table = pilot.app.screen.query_one(JobTable)
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


def test_progress_bar_and_filter_parsing():
    assert progress_bar(50, 100, width=10).plain == "█████░░░░░  50%"
    assert progress_bar(0, 0, width=4).plain == "░░░░   0%"
    assert parse_filter("study:demo status:failed", ["demo"]) == ("demo", "failed")
    assert parse_filter("running", ["demo"]) == (None, "running")
    try:
        parse_filter("status:nope", ["demo"])
    except ValueError as exc:
        assert "queued" in str(exc)
    else:
        raise AssertionError("bad status accepted")


async def test_queue_shows_jobs_engine_and_gpu(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        table = app.screen.query_one(JobTable)
        assert table.row_count == 12
        running = table.get_row("g1" + "0" * 62)
        assert running[3].plain == "running"
        assert "30%" in running[4].plain
        assert running[5].plain == "12m34s"  # ETA from eta_s
        bar = str(app.screen.query_one(EngineBar).render())
        assert "ENGINE UP" in bar and "GPU0 87%" in bar and "20.0/80G" in bar


async def test_cancel_retry_priority_pause(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        queued, running, failed = "a" * 64, "g1" + "0" * 62, "f" * 64
        await _select(pilot, queued)
        await pilot.press("c")
        await settle(pilot)
        assert _status(fake_store, queued)[0] == "cancelled"
        await _select(pilot, running)
        await pilot.press("c")
        await settle(pilot)
        assert _status(fake_store, running)[:2] == ("running", 1)
        await settle(pilot)
        assert "cancelling" in app.screen.query_one(JobTable).get_row(running)[3].plain
        await _select(pilot, failed)
        await pilot.press("r")
        await settle(pilot)
        assert _status(fake_store, failed)[0::2] == ("queued", 0)
        await pilot.press("plus", "plus", "minus")
        await settle(pilot)
        assert _status(fake_store, failed)[3] == 1
        await settle(pilot)
        assert app.screen.query_one(JobTable).get_row(failed)[8].plain == "1"
        await pilot.press("p")
        await settle(pilot)
        with sqlite3.connect(fake_store) as conn:
            assert conn.execute("SELECT value FROM queue_state WHERE key = 'paused'").fetchone()[0] == "1"
        await settle(pilot)
        assert "PAUSED" in str(app.screen.query_one(EngineBar).render())
        await pilot.press("p")
        await settle(pilot)
        with sqlite3.connect(fake_store) as conn:
            assert conn.execute("SELECT value FROM queue_state WHERE key = 'paused'").fetchone()[0] == "0"


async def test_filters(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobTable)
        await pilot.press("slash")
        await pilot.press(*"status:failed", "enter")
        await settle(pilot)
        assert table.row_count == 1 and table.get_row_at(0)[3].plain == "failed"
        await pilot.press("slash", "ctrl+u")  # clear the prefilled text
        await pilot.press(*"study:nosuch", "enter")
        await settle(pilot)
        assert table.row_count == 1  # rejected filter keeps the old one
        await pilot.press("slash", "ctrl+u", "enter")
        await settle(pilot)
        assert table.row_count == 12
        await pilot.press("f")  # queued
        await settle(pilot)
        assert app.screen.filter_status == "queued" and table.row_count == 1
        await pilot.press("f")  # running
        await settle(pilot)
        assert {table.get_row_at(i)[3].plain for i in range(table.row_count)} == {"running"}


async def test_open_log(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await _select(pilot, "g1" + "0" * 62)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, LogScreen)
        log = app.screen.query_one("#log")
        assert log.line_count >= 7 and "step 300: g_loss" in "\n".join(log.lines)
        (fake_store.parent / "demo-artifacts" / "logs" / "gan.log").open("a").write("step 350: g_loss 0.400\n")
        await pilot.pause(1.2)
        assert "step 350: g_loss 0.400" in "\n".join(log.lines)
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen)


async def test_live_update_when_rows_change(fake_store):
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobTable)
        other = open_store(fake_store)  # another connection, like the engine
        add_job(other, "n" * 64, "sample", "sample newgen f0 s0", "queued", {})
        with other.conn:
            other.conn.execute("UPDATE jobs SET progress = 900 WHERE key = ?", ("g1" + "0" * 62,))
        await pilot.pause(0.4)
        await settle(pilot)
        assert table.row_count == 13
        assert table.get_row("n" * 64)[2].plain == "sample newgen f0 s0"
        assert "90%" in table.get_row("g1" + "0" * 62)[4].plain
        with other.conn:
            other.conn.execute("DELETE FROM study_jobs WHERE job_key = ?", ("n" * 64,))
            other.conn.execute("DELETE FROM jobs WHERE key = ?", ("n" * 64,))
        await pilot.pause(0.4)
        await settle(pilot)
        assert table.row_count == 12


async def test_submit_bad_recipe_notifies(fake_store, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclassifiers: []\nbogus: 1\n")
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.press(*str(bad), "enter")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("bad.yaml" in m for m in messages), messages


async def test_submit_recipe_from_the_queue(fake_store):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.press(*str(recipe), "enter")
        await settle(pilot)
        with sqlite3.connect(fake_store) as conn:
            planned = conn.execute("SELECT count(*) FROM study_jobs WHERE study != 'demo'").fetchone()[0]
        assert planned > 0
        assert any(n.message.startswith("submitted study") for n in app._notifications)
        assert app.screen.query_one(JobTable).row_count == 12 + planned


async def test_engine_shown_down_when_heartbeat_goes_stale(fake_store, monkeypatch):
    from xaug.store import liveness

    with sqlite3.connect(fake_store) as conn:
        conn.execute("UPDATE engine SET heartbeat_at = ?", ("2020-01-01T00:00:00.000+00:00",))
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(EngineBar)
        assert "ENGINE DOWN" in str(bar.render())
        # the engine comes back: its heartbeat commit is seen; then it dies and no commit tells us, the clock does
        with sqlite3.connect(fake_store) as conn:
            conn.execute("UPDATE engine SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')")
        await pilot.pause(0.3)
        await settle(pilot)
        assert "ENGINE UP" in str(bar.render())
        monkeypatch.setattr(liveness, "STALE_S", 0.5)  # the store's one rule (the fake engine runs on another host)
        await pilot.pause(1.3)
        assert "ENGINE DOWN" in str(bar.render())


def test_main_without_a_store_exits_2_with_one_line(tmp_path, capsys):
    from xaug.tui.app import main

    with pytest.raises(SystemExit) as exc:
        main(["--store", str(tmp_path / "none.db")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no store at" in err and "--store" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["--bogus"])
    assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err


def _order(table) -> list[str]:
    return [table.get_row_at(i)[3].plain.split(" ")[0] for i in range(table.row_count)]


async def test_queue_order_running_queued_failed_done_and_selection_follows_its_job(fake_store):
    other = open_store(fake_store)
    later, sooner = "2026-01-02T00:00:00.000+00:00", "2026-01-01T06:00:00.000+00:00"
    add_job(other, "h" * 64, "evaluate", "evaluate high priority", "queued", {}, priority=5)
    add_job(other, "k" * 64, "evaluate", "evaluate done last", "done", {}, ended_at=later)
    add_job(other, "m" * 64, "evaluate", "evaluate done earlier", "done", {}, ended_at=sooner)
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobTable)
        assert _order(table) == ["running", "queued", "queued", "failed", "cancelled"] + ["done"] * 10
        keys = table.order
        assert keys[1:3] == ["h" * 64, "a" * 64]  # priority 5 before 0
        assert keys[5] == "k" * 64 and keys.index("k" * 64) < keys.index("m" * 64)  # most recent done first
        # select a queued job, then the engine starts it: it moves to the top and the selection goes with it
        await _select(pilot, "a" * 64)
        with other.conn:
            other.conn.execute("UPDATE jobs SET status = 'running', started_at = ? WHERE key = ?", (later, "a" * 64))
        await pilot.pause(0.3)
        await settle(pilot)
        assert table.selected_key == "a" * 64 and table.cursor_row < 2
        await pilot.press("down")
        assert table.selected_key == table.order[table.cursor_row] != "a" * 64


async def test_group_and_filter_by_study(fake_store):
    from xaug.store.studies import record_study

    other = open_store(fake_store)
    record_study(other, "zeta", None, "name: zeta\n", {"name": "zeta"})
    add_job(other, "z" * 64, "evaluate", "evaluate of zeta", "running", {}, study="zeta", started_at=now())
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobTable)
        assert table.order.index("z" * 64) < 2  # running: near the top, among demo's jobs
        await pilot.press("g")
        await settle(pilot)
        assert table.order[-1] == "z" * 64 and "grouped by study" in str(app.screen.query_one("#queue-filter").render())
        await pilot.press("s")  # the first study in the cycle is the most recently updated one: zeta
        await settle(pilot)
        assert table.order == ["z" * 64]
        await pilot.press("s")
        await settle(pilot)
        assert table.row_count == 12 and "z" * 64 not in table.order


async def test_a_read_only_store_notifies_instead_of_crashing(fake_store, monkeypatch):
    from xaug.store import open_store as real_open
    from xaug.tui import app as app_module

    app = XaugApp(fake_store, poll_s=0.1)
    # every write connection is read-only from now on, as on a store mounted read-only (chmod does not stop root)
    monkeypatch.setattr(app_module, "open_store", lambda path, **_: real_open(path, read_only=True))
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await _select(pilot, "a" * 64)
        await pilot.press("c")
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and errors[-1].title == "cancel failed" and "read-only" in errors[-1].message
        assert _status(fake_store, "a" * 64)[0] == "queued"


async def test_a_busy_store_notifies_and_the_ui_keeps_running(fake_store, monkeypatch):
    from xaug.store import db as store_db

    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 200)
    app = XaugApp(fake_store, poll_s=0.1)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        locker = sqlite3.connect(fake_store)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            await _select(pilot, "a" * 64)
            await pilot.press("c")
            await pilot.press("down")  # the UI answers while the write waits
            assert app.screen.query_one(JobTable).selected_key != "a" * 64
            await settle(pilot)
        finally:
            locker.rollback()
            locker.close()
        assert any(n.severity == "error" and "locked" in n.message for n in app._notifications)
