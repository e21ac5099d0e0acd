"""A small but complete fake store for TUI tests: jobs of every kind, curves, grids, samples, real images,
per-class metrics, confusion, comparisons, correlations and an engine heartbeat. Images are real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from xaug.store import artifact_root, now, open_store
from xaug.store.artifacts import record_artifacts
from xaug.store.metrics import record_class_metrics, record_confusion, record_metrics, record_results
from xaug.store.studies import record_study

STUDY = "demo"
CLASSES = ["healthy", "viral", "covid19"]
GENERATORS = ["ddpm", "gan"]
FIXED = "2026-01-01T00:00:00.000+00:00"
FIXED_END = "2026-01-01T00:12:34.000+00:00"


def _png(path: Path, seed: int, size: int = 32) -> None:
    """A deterministic greyscale blob image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
    img = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 5) ** 2))
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def add_job(db, key: str, kind: str, label: str, status: str, config: dict, *, study: str | None = STUDY,
            deps: tuple[str, ...] = (), created_at: str = FIXED, **extra) -> str:
    """Insert one job row (and its study link and dependencies)."""
    row = dict(key=key, kind=kind, label=label, status=status, config_json=json.dumps(config), created_at=created_at)
    row.update(extra)
    db["jobs"].insert(row)
    if study:
        db["study_jobs"].insert({"study": study, "job_key": key})
    for dep in deps:
        db["job_deps"].insert({"job_key": key, "dep_key": dep})
    return key


def build_store(db_path: Path, *, live: bool = True):
    """Create the fake store at `db_path`; `live=False` leaves out clocks (engine heartbeat, running elapsed)."""
    db = open_store(db_path)
    root = artifact_root(db_path)
    recipe = {"name": STUDY, "reader_study": {"images_per_class": 2, "real_fraction": 0.25}}
    record_study(db, STUDY, None, "name: demo\n", recipe)

    prep = add_job(db, "p" * 64, "prepare_data", "prepare_data", "done", {"dataset": {"classes": CLASSES}},
                   started_at=FIXED, ended_at=FIXED_END, progress=1, progress_total=1)
    folder = root / "jobs" / "prepare_data" / prep[:16]
    folder.mkdir(parents=True)
    labels = [i % len(CLASSES) for i in range(24)]
    rng = np.random.default_rng(0)
    np.save(folder / "images.npy", rng.integers(0, 255, size=(24, 32, 32), dtype=np.uint8))
    (folder / "index.json").write_text(json.dumps({"classes": CLASSES, "labels": labels,
                                                   "image_ids": [f"img{i}" for i in range(24)]}))

    running = {"started_at": now() if live else None, "progress": 300, "progress_total": 1000, "eta_s": 754.0,
               "gpus": "0", "message": "step 300/1000"}
    for i, gen in enumerate(GENERATORS):
        cfg = {"generator": {"name": gen, "model": gen}, "fold": 0, "seed": 0, "classes": CLASSES}
        tg = add_job(db, f"g{i}" + "0" * 62, "train_generator", f"train_generator {gen} f0 s0",
                     "running" if gen == "gan" else "done", cfg, deps=(prep,), log_path=f"logs/{gen}.log",
                     **(running if gen == "gan" else {"started_at": FIXED, "ended_at": FIXED_END,
                                                      "progress": 1000, "progress_total": 1000}))
        for step in range(0, 301, 50):
            record_metrics(db, tg, step, {"g_loss": 2.0 / (1 + step / 100) + 0.1 * i, "d_loss": 0.7 - step / 1000})
        grids = []
        for step in (100, 200, 300):
            rel = f"jobs/train_generator/{tg[:16]}/grid_{step:06d}.png"
            _png(root / rel, seed=step + i, size=48)
            grids.append(dict(job_key=tg, kind="grid", path=rel, step=step))
        record_artifacts(db, grids)
        log = root / "logs" / f"{gen}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"step {s}: g_loss {2.0 / (1 + s / 100):.3f}\n" for s in range(0, 301, 50)))

        sj = add_job(db, f"s{i}" + "0" * 62, "sample", f"sample {gen} f0 s0", "done", cfg, deps=(tg,),
                     started_at=FIXED, ended_at=FIXED_END, progress=1, progress_total=1)
        samples = []
        for c, class_name in enumerate(CLASSES):
            for k in range(3):
                rel = f"jobs/sample/{sj[:16]}/samples/{class_name}/{k:05d}.png"
                _png(root / rel, seed=1000 * i + 10 * c + k)
                samples.append(dict(job_key=sj, kind="sample", path=rel, class_name=class_name, seed=0))
        record_artifacts(db, samples)
        qj = add_job(db, f"q{i}" + "0" * 62, "image_quality", f"image_quality {gen} f0", "done", cfg,
                     deps=(sj, prep), started_at=FIXED, ended_at=FIXED_END)
        db["quality"].insert(dict(job_key=qj, class_name="", metric="fid", features="inception",
                                  value=40.0 + 25 * i, std=None, n_real=50, n_fake=50))

    cls_cfg = {"classifier": {"model": "resnet18", "name": "resnet18"}, "fold": 0, "seed": 0, "arm": "baseline",
               "generator": None, "amount": 0, "classes": CLASSES}
    tc = add_job(db, "c" * 64, "train_classifier", "train_classifier resnet18 baseline f0 s0", "done", cls_cfg,
                 deps=(prep,), started_at=FIXED, ended_at=FIXED_END, progress=10, progress_total=10)
    for step in range(10):
        record_metrics(db, tc, step, {"train_loss": 1.5 * 0.8 ** step, "val_loss": 1.6 * 0.85 ** step})
    ev = add_job(db, "e" * 64, "evaluate", "evaluate resnet18 baseline f0 s0", "done", cls_cfg, deps=(tc, prep),
                 started_at=FIXED, ended_at=FIXED_END, progress=1, progress_total=1)
    record_results(db, ev, {"accuracy": 0.78, "balanced_accuracy": 0.55, "macro_f1": 0.5})
    record_class_metrics(db, ev, [
        dict(class_name="healthy", precision=0.85, recall=0.95, f1=0.897, auroc=0.9, support=40),
        dict(class_name="viral", precision=0.2, recall=0.1, f1=0.133, auroc=0.6, support=10),
        dict(class_name="covid19", precision=0.6, recall=0.5, f1=0.545, auroc=None, support=12)])
    record_confusion(db, ev, CLASSES, [[38, 1, 1], [6, 1, 3], [4, 2, 6]])

    add_job(db, "f" * 64, "train_classifier", "train_classifier resnet18 synthetic gan +100 f0 s0", "failed",
            {**cls_cfg, "arm": "synthetic", "generator": "gan", "amount": 100}, attempts=3, error="CUDA out of memory",
            started_at=FIXED, ended_at=FIXED_END)
    add_job(db, "a" * 64, "analyse", "analyse demo", "queued", {"study": STUDY})
    add_job(db, "x" * 64, "evaluate", "evaluate resnet18 duplicate +100 f0 s0", "cancelled", cls_cfg)

    rows = []
    for gi, gen in enumerate(GENERATORS):
        for amount in (100, 500):
            for mi, metric in enumerate(("accuracy", "balanced_accuracy", "macro_f1")):
                mean = (0.01 if gen == "ddpm" else -0.015) * (1 + mi) * (amount / 100) ** 0.5
                rows.append(dict(study=STUDY, generator=gen, classifier="resnet18", amount=amount, reference="baseline",
                                 metric=metric, class_name="", n=5, mean=mean, sd=0.01, ci_low=mean - 0.01,
                                 ci_high=mean + 0.01, statistic=2.0, p_value=0.01 if amount == 500 else 0.3,
                                 p_adjusted=0.04 if amount == 500 else 0.6, test="corrected_t", correction="holm"))
                rows.append(dict(rows[-1], reference="duplicate", mean=mean / 2, p_value=0.5, p_adjusted=0.9))
            for ci, class_name in enumerate(CLASSES):
                rows.append(dict(study=STUDY, generator=gen, classifier="resnet18", amount=amount,
                                 reference="baseline", metric="f1", class_name=class_name, n=5,
                                 mean=0.02 * ci - 0.01 * gi, sd=0.02, ci_low=None, ci_high=None, statistic=None,
                                 p_value=None, p_adjusted=None, test="corrected_t", correction="holm"))
    db["comparisons"].insert_all(rows)
    # The stored analysis the analyse job writes: one summary row and the headline (means over amounts here).
    db["analyses"].insert(dict(study=STUDY, n_units=5, repeats=1, test="corrected_t", correction="holm", alpha=0.05,
                               unit="n = 5 units; unit = fold (seeds averaged within a fold)", test_train_ratio=0.25,
                               amounts="100,500", note=""))
    headline = {}
    for r in rows:
        key = (r["generator"], r["reference"], r["metric"], r["class_name"])
        headline.setdefault(key, []).append(r["mean"])
    db["headline"].insert_all(
        dict(study=STUDY, generator=g, reference=ref, metric=m, class_name=c, n=5, mean=sum(v) / len(v), sd=0.01,
             ci_low=None, ci_high=None, statistic=None, p_value=None, p_adjusted=None, test="corrected_t",
             correction="holm", amounts="100,500")
        for (g, ref, m, c), v in headline.items())
    db["correlations"].insert(dict(study=STUDY, quality_metric="fid", utility_metric="accuracy", method="spearman",
                                   n=2, r=-1.0, ci_low=None, ci_high=None, p_value=None))
    db["gpu_stats"].insert(dict(gpu=0, name="Fake GPU", utilization=87.0, memory_used_mb=20480,
                                memory_total_mb=81920, updated_at=FIXED))
    if live:
        db["engine"].insert(dict(id=1, pid=4242, host="gpu-box", started_at=now(), heartbeat_at=now()))
    return db


def add_many_jobs(db, n: int, *, study: str = STUDY) -> None:
    """Bulk-insert `n` queued evaluate jobs (for the 10,000-job responsiveness measurement)."""
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT INTO jobs (key, kind, label, config_json, status, created_at, progress, progress_total)"
            " VALUES (?, 'evaluate', ?, '{}', ?, ?, ?, 100)",
            [(f"bulk{i:060d}", f"evaluate bulk {i}", "running" if i % 100 == 0 else "queued", stamp, i % 100)
             for i in range(n)])
        db.conn.executemany("INSERT INTO study_jobs (study, job_key) VALUES (?, ?)",
                            [(study, f"bulk{i:060d}") for i in range(n)])


async def settle(pilot, rounds: int = 3) -> None:
    """Let the app's thread workers finish and their messages be handled."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
