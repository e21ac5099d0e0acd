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
