"""One generator trained by N processes (one per GPU) with Hugging Face accelerate (DDP).

Two halves:
- In the training driver (driver.py) and the models' steps (ddpm.py, sd_training.py): `accelerator_for` gives
  each process its Accelerator (DDP over NCCL on GPUs, gloo on the CPU); `shard` cuts every global batch into
  equal per-process slices; `agreed_stop` makes all processes stop at the same step; `mean_across` averages a
  logged loss over processes.
- Launching (`train_in_processes`, called by the train_generator job instead of `impl.train` when N > 1): the
  parent writes a request (params, images) into a launch folder and starts `python -m torch.distributed.run
  --standalone --nproc_per_node N -m xaug.engine.generators.distributed --launch-dir DIR`. accelerate's own
  `accelerate launch --multi_gpu` is a thin wrapper around the same torch.distributed.run, and `accelerate
  launch --cpu` starts only one process (more need mpirun), so xaug calls torch.distributed.run itself: one
  command for GPUs and for the CPU (gloo) tests. Each child (`main`) runs the generator's ordinary `train` with
  hooks that only rank 0 uses: it appends progress and grids to `events.jsonl`, which the parent replays into
  its own hooks, so only the parent (the job's worker) writes to the store: rank 0's losses, progress and grids
  are recorded once, the other ranks' never. To stop (the engine's SIGTERM to the worker, or a cancel), the
  parent creates the file `stop`; a child that gets SIGTERM itself (scancel signals every process of a Slurm
  job; torchrun passes its own on) stops too. Either way all ranks agree on the step, rank 0 checkpoints, and the
  run ends unfinished; the next run resumes from that checkpoint.

Determinism: every process draws the *global* batch (indices, noise, timesteps) from the same seeded generator
and keeps its slice, and DDP averages the gradients, so N processes with batch b each train exactly what one
process with batch N*b trains (up to the order of floating-point sums). A recipe's `batch_size` is therefore the
global batch, the same whatever the number of GPUs, and a job trained on 1 GPU may resume on 4.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from xaug.store.errors import DataError
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome

POLL_S = 0.2
"""How often the parent reads the children's events and checks whether it must stop."""
EVENTS = "events.jsonl"
STOP = "stop"
OUTCOME = "outcome.json"


class DistributedTrainingError(RuntimeError):
    """The processes of a multi-process training failed (a crash, out of memory: worth a retry, unlike an
    XaugError); names the exit status and where their output is."""


# --------------------------------------------------------------------------------------------------- in the loop


def is_main_process() -> bool:
    """Whether this process is rank 0 (or alone): the one that writes shared files. Works before an Accelerator."""
    return int(os.environ.get("RANK", "0")) == 0


def accelerator_for(device: str):
    """This process's Accelerator: DDP when launched by torch.distributed.run, a plain single process otherwise."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    cpu = not device.startswith("cuda")
    state = PartialState._shared_state
    # A single process may train on the CPU and then on a GPU (tests); accelerate's state is a per-process singleton.
    if state and state.get("_cpu") != cpu and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=cpu)


def per_process_batch(batch_size: int, num_processes: int) -> int:
    """The slice of a global batch each process trains on; DataError when it does not divide evenly."""
    if batch_size % num_processes:
        raise DataError(f"batch_size {batch_size} is not divisible by the {num_processes} training processes "
                        f"(resources.generator_gpus): the batch is split evenly over GPUs; choose a multiple of "
                        f"{num_processes}")
    return batch_size // num_processes


def shard(acc, global_size: int) -> slice:
    """This process's rows of a global batch of `global_size` (rank r keeps rows r*b .. r*b + b - 1)."""
    size = per_process_batch(global_size, acc.num_processes)
    return slice(acc.process_index * size, (acc.process_index + 1) * size)


def agreed_stop(acc, local_stop: bool) -> bool:
    """True on every process when any process was asked to stop (a collective: every rank must call it)."""
    if acc.num_processes == 1:
        return bool(local_stop)
    import torch

    flag = torch.tensor([1.0 if local_stop else 0.0], device=acc.device)
    return bool(acc.reduce(flag, reduction="sum").item() > 0)


def mean_across(acc, values: dict[str, float]) -> dict[str, float]:
    """Per-process means of equal-sized slices averaged over processes: the global batch's mean (a collective)."""
    if acc.num_processes == 1:
        return values
    import torch

    names = sorted(values)
    t = torch.tensor([float(values[k]) for k in names], dtype=torch.float64, device=acc.device)
    t = acc.reduce(t, reduction="mean")
    return dict(zip(names, (float(v) for v in t.tolist())))


# --------------------------------------------------------------------------------------------------- the parent


def process_count(device: str) -> int:
    """Processes a train_generator job launches: one per GPU the engine gave it (CUDA_VISIBLE_DEVICES), else 1."""
    if not device.startswith("cuda"):
        return 1
    return max(1, len([g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]))


def launch_dir(work_dir: Path) -> Path:
    """The folder of a multi-process run's request, events and stop flag (beside the checkpoint folder; removed
    when the run ends)."""
    work_dir = Path(work_dir)
    return work_dir.with_name(work_dir.name + ".launch")


def launch_command(folder: Path, processes: int, python: str = sys.executable) -> list[str]:
    """torch.distributed.run on this host, N processes, each running this module's `main`."""
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "xaug.engine.generators.distributed", "--launch-dir", str(folder)]


def train_in_processes(model: str, params, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
                       device: str, seed: int, processes: int) -> TrainOutcome:
    """Like `impl.train`, but on `processes` DDP processes; progress and grids reach `hooks` from rank 0.

    While the children run, `hooks.should_stop()` is polled: when it turns true the children are told to stop
    (they checkpoint at their next step) and the outcome is unfinished.
    """
    folder = launch_dir(work_dir)
    shutil.rmtree(folder, ignore_errors=True)  # a previous run's stop flag or outcome must not count
    folder.mkdir(parents=True)
    np.savez(folder / "data.npz", images=np.asarray(data.images), labels=np.asarray(data.labels))
    request = {"model": model, "params": params.model_dump(mode="json"), "per_class": per_class,
               "classes": list(data.classes), "work_dir": str(Path(work_dir).resolve()), "device": device,
               "seed": int(seed)}
    (folder / "request.json").write_text(json.dumps(request, indent=1))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    child = subprocess.Popen(launch_command(folder, processes), env=env, stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent)
    events = _EventReader(folder / EVENTS)
    try:
        while child.poll() is None:
            events.replay(hooks)
            if not (folder / STOP).exists() and hooks.should_stop():
                (folder / STOP).touch()
            time.sleep(POLL_S)
        events.replay(hooks)
        if (folder / OUTCOME).exists() and child.returncode == 0:
            outcome = json.loads((folder / OUTCOME).read_text())
        elif (folder / STOP).exists():
            # Stopped from outside too (scancel signals every process of the job, torchrun included, which then
            # ends its children): rank 0 checkpointed if it could; the job resumes from its last checkpoint.
            outcome = {"checkpoint": str(work_dir), "finished": False, "step": events.last_step}
        else:
            raise DistributedTrainingError(f"{processes} training processes of {model} ended with exit status "
                                           f"{child.returncode}; their output is in this job's log")
    finally:
        if child.poll() is None:  # the parent itself failed or was interrupted
            child.send_signal(signal.SIGTERM)  # torchrun passes it on; the children checkpoint and stop
            child.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return TrainOutcome(checkpoint=Path(outcome["checkpoint"]), finished=bool(outcome["finished"]),
                        step=int(outcome["step"]))


def _die_with_parent() -> None:
    """In torchrun: get SIGTERM when the job's worker dies, so that the training processes do not outlive it."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _EventReader:
    """Reads complete lines appended by rank 0 to the events file and replays them into hooks."""

    def __init__(self, path: Path):
        self.path, self.offset, self.last_step = path, 0, 0

    def replay(self, hooks: TrainHooks) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        for line in chunk[:end].splitlines():
            event = json.loads(line)
            if event["kind"] == "progress":
                self.last_step = event["step"]
                hooks.progress(event["step"], event["total"], event["losses"])
            elif event["kind"] == "grid":
                with np.load(event["path"]) as grid:
                    hooks.grid(event["step"], grid["images"], list(event["classes"]))


# --------------------------------------------------------------------------------------------------- the children


class _RankHooks:
    """The children's hooks: rank 0 appends events for the parent; every rank stops on the stop file or SIGTERM."""

    def __init__(self, folder: Path, is_main: bool):
        self.folder, self.is_main, self.signalled = folder, is_main, False
        self._grids = 0

    def _append(self, event: dict) -> None:
        with open(self.folder / EVENTS, "a") as f:
            f.write(json.dumps(event) + "\n")

    def progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        if self.is_main:
            self._append({"kind": "progress", "step": step, "total": total, "losses": losses})

    def grid(self, step: int, images: np.ndarray, class_names: list[str]) -> None:
        if self.is_main:
            self._grids += 1
            path = self.folder / f"grid_{self._grids:05d}.npz"
            np.savez(path, images=images)
            self._append({"kind": "grid", "step": step, "path": str(path), "classes": list(class_names)})

    def should_stop(self) -> bool:
        return self.signalled or (self.folder / STOP).exists()


cli = typer.Typer(add_completion=False)


@cli.command(help="One process of a multi-process generator training.")
def _rank(launch_dir: Annotated[Path, typer.Option(help="The folder train_in_processes prepared.")]) -> int:
    return _train_rank(launch_dir)


def main(argv: list[str] | None = None) -> int:
    """A child of torch.distributed.run: --launch-dir DIR, then train the requested generator as one rank of the
    DDP group; its exit status."""
    from xaug.engine.cli.runner import exit_code

    return exit_code(cli, "python -m xaug.engine.generators.distributed", argv)


def _train_rank(folder: Path) -> int:
    """Train as this rank from the request in `folder`; rank 0 writes the outcome there."""
    hooks = _RankHooks(folder, is_main=is_main_process())
    signal.signal(signal.SIGTERM, lambda *_: setattr(hooks, "signalled", True))
    from xaug.engine.generators.registry import get_generator

    request = json.loads((folder / "request.json").read_text())
    entry = get_generator(request["model"])
    params = entry.config_class.model_validate(request["params"])
    with np.load(folder / "data.npz") as arrays:
        data = TrainImages(arrays["images"], arrays["labels"], list(request["classes"]))
    outcome = entry.factory().train(params, request["per_class"], data, Path(request["work_dir"]), hooks,
                                    request["device"], request["seed"])
    if hooks.is_main:
        (folder / OUTCOME).write_text(json.dumps({"checkpoint": str(outcome.checkpoint),
                                                  "finished": outcome.finished, "step": outcome.step}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
