"""How fast `xaug-tui` shows a big queue: the first useful paint of 10,000 jobs, the time until every job is in the
table, a key press, and how long a change of 100 jobs takes to show. Run headless through Textual's Pilot.

`before` measures another source tree of xaug (e.g. `git archive main | tar -x -C /tmp/xaug-main`) the same way in
a subprocess, so both figures come from one run on one machine. The measurement uses only what every version of
the TUI has: `XaugApp(store, poll_s)`, the queue's `#jobs` table with `row_count` and `get_row(key)`.

Textual is imported inside the measuring functions only: the engine never imports it at import time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

SIZE = (160, 48)
POLL_S = 0.1
RUNNING, DONE = 0.01, 0.05
"""Of the jobs: this share running (at least one), this share done, the rest queued."""
LIMIT_S = 300.0


def build_queue(path: Path, n_jobs: int) -> list[str]:
    """A store with `n_jobs` evaluate jobs in one study (a share RUNNING running, DONE done); returns the running
    keys."""
    from xaug.store import open_store
    from xaug.store import jobs as q

    db = open_store(path)
    jobs = [SimpleNamespace(key=f"bench{i:059d}", kind="evaluate", label=f"evaluate bench fold {i % 5} seed {i}",
                            config={"i": i}, priority=i % 3, max_attempts=1, gpus_needed=0, gpu_memory_mb=None,
                            memory_group=None, deps=[])
            for i in range(n_jobs)]
    q.submit_study(db, "bench", None, "", {"name": "bench"}, jobs)
    running, done = [], int(n_jobs * DONE)
    for i in range(done + max(1, int(n_jobs * RUNNING))):
        job = q.claim_job(db, lambda _: [], host="bench", log_path_for=lambda _: "")
        if i < done:
            q.mark_job_done(db, job["key"])
        else:
            running.append(job["key"])
    db.conn.close()
    return running


def measure(n_jobs: int = 10_000, changed: int = 100, size: tuple[int, int] = SIZE) -> dict:
    """Build a store with `n_jobs` jobs and time the TUI on it: seconds to first paint, to all rows, for a key
    press, and from the commit of a progress change of `changed` running jobs until all of them show it (fewer
    when fewer run; the wait for the next store poll included)."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="xaug-tui-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        running = build_queue(path, n_jobs)
        return asyncio.run(_measure_app(path, n_jobs, running[:changed], size))


async def _measure_app(path: Path, n_jobs: int, changed: list[str], size: tuple[int, int]) -> dict:
    from xaug.store import open_store
    from xaug.store.jobs import update_job_progress
    from xaug.tui.app import XaugApp

    started = time.perf_counter()
    app = XaugApp(path, poll_s=POLL_S)
    async with app.run_test(size=size) as pilot:
        table = app.screen.query_one("#jobs")
        await _until(pilot, lambda: table.row_count > 0, started)
        await pilot.pause()  # one frame drawn with the rows
        first_paint = time.perf_counter() - started
        await _until(pilot, lambda: table.row_count >= n_jobs, started)
        all_rows = time.perf_counter() - started
        pressed = time.perf_counter()
        await pilot.press("down")
        key_s = time.perf_counter() - pressed
        writer = open_store(path, migrate=False)
        for key in changed:  # the event loop waits meanwhile, as if another process committed all at once
            update_job_progress(writer, key, 77, 100, "bench")
        changed_at = time.perf_counter()
        await _until(pilot, lambda: all("77%" in table.get_row(k)[4].plain for k in changed), changed_at)
        await pilot.pause()
        change_s = time.perf_counter() - changed_at
        writer.conn.close()
        parts = dict(getattr(app.screen, "last_refresh_s", {}))  # where the time of the last read went, if known
    return {"jobs": n_jobs, "changed": len(changed), "first_paint_s": first_paint, "all_rows_s": all_rows,
            "key_press_s": key_s, "change_shown_s": change_s, "poll_s": POLL_S,
            "read_s": parts.get("query"), "apply_s": parts.get("apply")}


async def _until(pilot, condition, started: float) -> None:
    while not condition():
        if time.perf_counter() - started > LIMIT_S:
            raise TimeoutError(f"the TUI did not get there within {LIMIT_S:.0f} s")
        await pilot.pause(0.005)


_IN_TREE = """
import json, os, runpy, sys
# Resolve xaug.* in the given tree, not in the installed (editable) one.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "")]
sys.path_importer_cache.clear()
sys.path.insert(0, {root!r})
import xaug.tui.app
assert os.path.realpath(xaug.tui.app.__file__).startswith({tree!r}), xaug.tui.app.__file__
print(json.dumps(runpy.run_path({bench!r})["measure"]({n_jobs}, {changed})))
"""


def measure_tree(tree: Path, n_jobs: int = 10_000, changed: int = 100) -> dict:
    """`measure` run against another source tree of xaug (engine/, store/, tui/ at its top) in a subprocess."""
    tree = Path(tree).resolve()
    if not (tree / "tui" / "app.py").is_file():
        raise FileNotFoundError(f"{tree} is not an xaug source tree (no tui/app.py)")
    with tempfile.TemporaryDirectory(prefix="xaug-tree-") as root:
        package = Path(root) / "xaug"
        package.mkdir()
        for part in ("engine", "store", "tui"):
            (package / part).symlink_to(tree / part)
        code = _IN_TREE.format(root=root, tree=str(tree), bench=__file__, n_jobs=n_jobs, changed=changed)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LIMIT_S * 2)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {tree} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
