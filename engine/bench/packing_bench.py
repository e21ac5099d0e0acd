"""Many small jobs on one big GPU: classifier runs per hour with k jobs side by side on one device against one.

k processes each run one short real `train_classifier` (validation and checkpoints included) at the same time on
one device, released together; the rate is k runs over the wall time from the first start to the last end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from xaug.engine.bench.classifier_bench import CLASSES, classifier_spec, random_images
from xaug.engine.bench.measure import row, sync


def one_run(config: dict) -> dict:
    """One real train_classifier run: its start and end (epoch seconds) and peak reserved GPU memory."""
    from xaug.engine.classifiers.train import TrainData, train_classifier
    from xaug.engine.queue.worker import peak_gpu_memory_mb

    spec = classifier_spec(config["model"], config["image_size"], epochs=config["epochs"])
    images, labels = random_images(config["n_images"], config["image_size"], seed=config["seed"])
    val = max(8, len(images) // 8)
    data = TrainData(images[val:], labels[val:], images[:val], labels[:val])
    with tempfile.TemporaryDirectory(prefix="xaug-run-") as work:
        start = time.time()
        train_classifier(spec, CLASSES, data, Path(work), seed=config["seed"], device=config["device"], amp=True)
        sync(config["device"])
        end = time.time()
    peak_mb = peak_gpu_memory_mb()  # what workers record and the packing policy reads
    peak = peak_mb / 1024 if peak_mb is not None else float("nan")
    return {"start": start, "end": end, "peak_reserved_gib": peak}


def _child(config: dict, barrier, results) -> None:
    """A job of `_side_by_side`: wait until all k are ready, run, report."""
    import torch

    if not config["device"].startswith("cuda"):
        torch.set_num_threads(1)  # k CPU jobs share the cores as the engine's CPU slots would
    barrier.wait()
    results.put(one_run(config))


def _side_by_side(config: dict, k: int, timeout_s: float) -> list[dict]:
    """Run k `one_run`s at once in processes of their own, released together; their results.

    The processes fork from the engine workers' fork server (one per process; `queue/forkserver.py`), which imported
    the job kinds' code once and never touched CUDA, so each starts in a moment and may use the GPU."""
    import multiprocessing

    from xaug.engine.queue.forkserver import PRELOAD

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # the engine's: whichever starts the server first, it preloads the same
    barrier, results = context.Barrier(k + 1), context.Queue()
    processes = [context.Process(target=_child, args=({**config, "seed": i}, barrier, results), daemon=True)
                 for i in range(k)]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=timeout_s)
        out = [results.get(timeout=timeout_s) for _ in processes]
    except Exception as exc:
        codes = [process.exitcode for process in processes]
        raise RuntimeError(f"a benchmark run did not finish in {timeout_s:.0f} s (exit codes {codes})") from exc
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return out


def runs_per_hour(model: str, image_size: int, device: str, k: int, n_images: int, epochs: int,
                  timeout_s: float = 300.0) -> list[dict]:
    """Classifier runs per hour on one device with k jobs side by side vs one alone, and the peak memory of one."""
    config = {"model": model, "image_size": image_size, "device": device, "n_images": n_images, "epochs": epochs}
    rates, peaks = {}, {}
    for jobs in (1, k):
        results = _side_by_side(config, jobs, timeout_s)
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        rates[jobs] = jobs * 3600.0 / wall
        peaks[jobs] = max(r["peak_reserved_gib"] for r in results)
    name = f"{model} {image_size}px runs ({n_images} images x {epochs} epochs)"
    rows = [row(f"{name}: {k} jobs per {'GPU' if device.startswith('cuda') else 'CPU'} vs 1", "runs/hour",
                rates[k], rates[1])]
    if device.startswith("cuda"):
        rows.append(row(f"{name}: one job's peak reserved", "GiB", peaks[k], peaks[1]))
    return rows
