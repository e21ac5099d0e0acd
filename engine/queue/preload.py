"""What the workers' fork server imports once, so that each job's worker starts with torch, timm, torchmetrics and
diffusers already loaded (about 10 s of CPU per job otherwise).

Only the fork server imports this module (multiprocessing `set_forkserver_preload`); the engine never does, so the
scheduler still never imports torch. Importing must not initialise CUDA: a CUDA context does not survive a fork,
and the driver reads CUDA_VISIBLE_DEVICES once, at its initialisation, which must happen in each worker after it
has set its own GPUs.
"""

from __future__ import annotations

import importlib
import os
import sys

# torch.cuda.is_available() (which some libraries call on import) asks NVML instead of initialising the driver.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def _preload() -> list[str]:
    """Import every job kind's module; one that fails is left for its worker to report. Returns the failures."""
    from xaug.engine.jobs import JOB_KINDS

    failed = []
    for module in dict.fromkeys(JOB_KINDS.values()):
        try:
            importlib.import_module(module)
        except Exception as exc:  # the job's own worker imports it again and records the real error
            failed.append(f"{module}: {exc}")
    return failed


PRELOAD_FAILURES = _preload()
CUDA_INITIALISED = "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
