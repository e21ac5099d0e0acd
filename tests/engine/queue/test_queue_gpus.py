"""GPU discovery without torch: nvidia-ml-py when importable, else one `nvidia-smi --query-gpu`, else none."""

from __future__ import annotations

import sys
import types

from xaug.engine.queue import gpus


def _fake_pynvml(count: int = 2):
    mod = types.ModuleType("pynvml")
    mod.nvmlInit = lambda: None
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = lambda: count
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: f"Fake GPU {h}".encode()
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=10.0 * (h + 1))
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2**30, total=8 * 2**30)
    return mod


def test_nvml_gives_gpus_and_their_load(monkeypatch, qdb):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    assert gpus.detect_gpus() == [{"gpu": 0, "name": "Fake GPU 0", "memory_total_mb": 8192.0},
                                  {"gpu": 1, "name": "Fake GPU 1", "memory_total_mb": 8192.0}]
    stats = gpus.read_gpu_stats()
    assert [s["utilization"] for s in stats] == [10.0, 20.0] and stats[0]["memory_total_mb"] == 8192
    from xaug.store.jobs import load_gpu_stats, record_gpu_stats

    record_gpu_stats(qdb, stats)
    assert [r["memory_used_mb"] for r in load_gpu_stats(qdb)] == [1024, 1024]


def test_nvidia_smi_query_is_parsed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=index,name,memory.total ] || exit 1\n"
                   "echo '0, NVIDIA H200, 143771'\necho '1, NVIDIA H100 80GB HBM3, 81559'\necho '2, Odd GPU, [N/A]'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.detect_gpus() == [{"gpu": 0, "name": "NVIDIA H200", "memory_total_mb": 143771.0},
                                  {"gpu": 1, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559.0},
                                  {"gpu": 2, "name": "Odd GPU", "memory_total_mb": None}]
    assert gpus.read_gpu_stats() == []


def test_no_gpu_at_all(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.detect_gpus() == []


def test_nvml_installed_without_a_driver_finds_none(monkeypatch):
    broken = _fake_pynvml()

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert gpus.detect_gpus() == [] and gpus.read_gpu_stats() == []
