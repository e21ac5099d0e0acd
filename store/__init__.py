"""xaug.store: the only code that writes SQL. Open with `open_store`, then call the record_*/load_* functions."""

from xaug.store.db import artifact_root, data_version, now, open_store

__all__ = ["artifact_root", "data_version", "now", "open_store"]
