"""What the workers' fork server imports once, so that each job's worker starts with torch, timm, torchmetrics and
diffusers already loaded (about 10 s of CPU per job otherwise).

Only the fork server imports this module (multiprocessing `set_forkserver_preload`); the engine never does, so the
scheduler still never imports torch. Importing must not initialise CUDA: a CUDA context does not survive a fork,
and the driver reads CUDA_VISIBLE_DEVICES once, at its initialisation, which must happen in each worker after it
has set its own GPUs.
"""

from __future__ import annotations

import os

# torch.cuda.is_available() (which some libraries call on import) asks NVML instead of initialising the driver.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def _preload() -> None:
    """Import every job kind's module; one that fails is left for its own worker to import again and report."""
    from xaug.engine.plugins import JOB_KINDS, plugin_entry_points

    for point in plugin_entry_points(JOB_KINDS).values():
        try:
            point.load()
        except Exception:  # noqa: BLE001 - the job's worker imports it again and records the real error
            pass


_preload()
