"""Finding GPUs and reading their load without importing torch: nvidia-ml-py if present, else `nvidia-smi`.

One probe per question: `detect_gpus` (which GPUs, their names and memory: what the scheduler places jobs on and
sizes shared GPUs by) and `read_gpu_stats` (their load now, for the TUI and benchmarks). Both read NVML the same
way (`_nvml_rows`); without it, `detect_gpus` asks `nvidia-smi --query-gpu` once.
"""

from __future__ import annotations

import re
import shutil
import subprocess

_SMI_QUERY = "--query-gpu=index,name,memory.total"


def detect_gpus() -> list[dict]:
    """GPUs of this machine as [{'gpu': index, 'name': ..., 'memory_total_mb': MiB or None}] in PCI bus order;
    [] on a machine without GPUs."""
    rows = _nvml_rows()
    if rows is not None:
        return [{"gpu": r["gpu"], "name": r["name"], "memory_total_mb": r["memory_total_mb"]} for r in rows]
    return _nvidia_smi_gpus()


def read_gpu_stats() -> list[dict]:
    """Utilisation (%) and memory (MiB) of every GPU via nvidia-ml-py; [] when it is not installed or fails."""
    return _nvml_rows() or []


def _nvml_rows() -> list[dict] | None:
    """Every GPU's index, name, utilisation and memory through NVML; None when nvidia-ml-py is not installed, []
    when it cannot read the GPUs (no driver)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # driver missing: NVML is installed but no GPU can be used
        return []
    try:
        rows = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            rows.append({"gpu": index, "name": name.decode() if isinstance(name, bytes) else str(name),
                         "utilization": float(util.gpu), "memory_used_mb": mem.used / 2**20,
                         "memory_total_mb": mem.total / 2**20})
        return rows
    except Exception:
        return []
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi_gpus() -> list[dict]:
    """`nvidia-smi --query-gpu=index,name,memory.total` parsed; [] without nvidia-smi or when it fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, _SMI_QUERY, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        match = re.match(r"\s*(\d+)\s*,\s*(.+?)\s*,\s*([\d.]+|\[N/A\])\s*$", line)
        if match:
            memory = None if match.group(3) == "[N/A]" else float(match.group(3))
            gpus.append({"gpu": int(match.group(1)), "name": match.group(2), "memory_total_mb": memory})
    return gpus
