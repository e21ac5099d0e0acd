"""Finding GPUs and reading their load without importing torch: nvidia-ml-py if present, else `nvidia-smi -L`."""

from __future__ import annotations

import re
import shutil
import subprocess


def detect_gpus() -> list[dict]:
    """GPUs of this machine as [{'gpu': index, 'name': ...}] in PCI bus order; [] on a machine without GPUs."""
    found = _nvml_gpus()
    if found is not None:
        return found
    return _nvidia_smi_gpus()


def _nvml_gpus() -> list[dict] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # driver missing: NVML is installed but no GPU can be used
        return []
    try:
        count = pynvml.nvmlDeviceGetCount()
        gpus = []
        for index in range(count):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            gpus.append({"gpu": index, "name": name.decode() if isinstance(name, bytes) else str(name)})
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi_gpus() -> list[dict]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        match = re.match(r"GPU (\d+): (.+?)(?: \(UUID.*)?$", line.strip())
        if match:
            gpus.append({"gpu": int(match.group(1)), "name": match.group(2)})
    return gpus


def detect_gpu_memory() -> dict[int, float]:
    """Total memory (MiB) of each GPU, by index: nvidia-ml-py if present, else `nvidia-smi --query-gpu`; {} when
    neither answers (the scheduler then never shares a GPU between jobs)."""
    stats = read_gpu_stats()
    if stats:
        return {row["gpu"]: row["memory_total_mb"] for row in stats}
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    memory = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\d+)\s*,\s*([\d.]+)\s*$", line)
        if match:
            memory[int(match.group(1))] = float(match.group(2))
    return memory


def read_gpu_stats() -> list[dict]:
    """Utilisation (%) and memory (MiB) of every GPU via nvidia-ml-py; [] when it is not installed or fails."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
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
