"""Test-wide settings: offline hubs, few threads, and a fresh temporary store."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# File hashes of test datasets go to a temporary cache, not the user's ~/.cache/xaug.
os.environ.setdefault("XAUG_CACHE_DIR", tempfile.mkdtemp(prefix="xaug-test-cache-"))

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Every test model is tiny: one intra-op thread is faster than two, which spin when the cores are shared."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def store_db(tmp_path):
    """A fresh, migrated store in a temporary folder."""
    from xaug.store import open_store

    return open_store(tmp_path / "xaug.db")


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """A factory that installs a throwaway package the way pip would, for xaug to find through its entry points.

    `install_plugin(name, entry_points, modules)` copies the `modules` (files) and writes a `<name>.dist-info` with
    `entry_points.txt` ({group: {entry name: value}}) into a fresh folder, puts it first on sys.path and on
    PYTHONPATH (so exec'd, forked and Slurm workers find it too) and returns the folder. At teardown the folder
    is deleted, so that a fork server which saw it on its sys.path finds nothing there for later tests.
    """
    import shutil

    from xaug.engine.plugins import forget_plugins

    folders = []

    def install(name: str, entry_points: dict[str, dict[str, str]], modules=()):
        folder = tmp_path / f"plugin-{name}"
        info = folder / f"{name}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
            for group, points in entry_points.items()))
        for module in modules:
            shutil.copy(module, folder)
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))
        folders.append(folder)
        forget_plugins()
        return folder

    yield install
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    forget_plugins()


@pytest.fixture
def store_fault(monkeypatch):
    """`store_fault(pragma)` makes every store the CLI opens act out a fault through an SQLite pragma (formatted
    with the store's page count): `PRAGMA max_page_count = {pages}` is a full disk, `PRAGMA query_only = 1` a
    read-only file. Root writes through file modes and has space to spare, so SQLite plays the part."""
    import xaug.store.db

    real = xaug.store.db._connect  # open_store's one connection attempt, looked up at each call: every importer of
    # open_store (bound at import or not) gets the fault, and the real one is back after the test

    def act(pragma: str) -> None:
        def faulty(*args, **kwargs):
            db = real(*args, **kwargs)
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(pragma.format(pages=pages))
            return db

        monkeypatch.setattr(xaug.store.db, "_connect", faulty)

    return act
