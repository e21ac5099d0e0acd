"""Training a Stable Diffusion method (fine-tune, DreamBooth, LoRA): one unit's setup, its optimizer step (gradient
accumulation, Min-SNR loss, DreamBooth's prior term, DDP slices) and state; the driver (driver.py) runs the steps.

Layout of a generator's `work_dir`:
    model/manifest.json            method, base model, units (one per class or one "all"), prompts, sampling
    model/<unit>/unet/             trained UNet (save_pretrained, safetensors)       fine-tune, DreamBooth
    model/<unit>/text_encoder/     trained text encoder (fine-tune with train_text_encoder)
    model/<unit>/lora/             LoRA adapters in diffusers format (pipe.load_lora_weights)  LoRA
    model/<unit>/unit.json         the unit is finished (model/<unit>/ is published whole: temp folder, rename)
    resume/<unit>/step-N/          resumable checkpoints (engine/checkpoint.py): trainable weights, state.safetensors
                                   (optimizer, RNG), state.json (step, scaler); `latest` names the newest
    class_images/<unit>/           DreamBooth prior-preservation images from the base model (PNG)
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from xaug.engine import checkpoint as ckpt
from xaug.engine.generators import distributed as dist
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.store.artifacts import artifact_path
from xaug.engine.generators.driver import Unit, train_steps, train_units, checked_units
from xaug.engine.generators.sd_data import build_data, sample_latents, tokenize
from xaug.engine.generators.sd_method import SdMethod
from xaug.engine.generators.sd_model import Parts, load_parts, resolve_base_model
from xaug.engine.generators.sd_params import SdParams
from xaug.engine.generators.sd_sampling import MANIFEST, grid_images

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def make_optimizer(trainable: list, params: SdParams, device: str):
    """8-bit AdamW on CUDA when bitsandbytes is installed and wanted, else torch AdamW; and its description."""
    import torch

    if params.use_8bit_adam and device.startswith("cuda"):
        try:
            import bitsandbytes as bnb

            return (bnb.optim.AdamW8bit(trainable, lr=params.lr, weight_decay=params.adam_weight_decay),
                    "AdamW8bit (bitsandbytes)")
        except ImportError:
            log.warning("use_8bit_adam: bitsandbytes is not installed; using torch AdamW (pip install bitsandbytes "
                        "to save optimizer memory)")
            return (torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.adam_weight_decay),
                    "AdamW (bitsandbytes not installed)")
    why = "" if not params.use_8bit_adam else " (8-bit Adam needs CUDA)"
    return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.adam_weight_decay), f"AdamW{why}"


def write_manifest(method: SdMethod, params: SdParams, units: list[Unit], prompts: dict[str, str],
                   work_dir: Path) -> Path:
    """Describe the trained model so that `sample` needs only the checkpoint folder."""
    model = work_dir / "model"
    model.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT_VERSION,
        "method": method.name,
        "base_model": params.base_model,
        "resolution": params.resolution,
        "units": {u.name: u.classes for u in units},
        "prompts": prompts,
        "sampling": {"scheduler": params.scheduler, "inference_steps": params.steps_to_sample(),
                     "guidance_scale": params.guidance_scale, "negative_prompt": params.negative_prompt,
                     "batch_size": params.sample_batch_size,
                     "mixed_precision": params.mixed_precision if params.amp else "no",
                     **method.sampling_settings(params)},
    }
    ckpt.write_json(model / MANIFEST, manifest)
    return model


def train_sd(method: SdMethod, params: SdParams, per_class: bool, data: TrainImages, work_dir: Path,
             hooks: TrainHooks, device: str, seed: int) -> TrainOutcome:
    """Train (or resume) every unit of a Stable Diffusion method; stops early, checkpointed, on should_stop()."""
    work_dir = Path(work_dir)
    resolve_base_model(params.base_model)  # fail before anything heavy
    units = checked_units(data, per_class)
    prompts: dict[str, str] = {}
    for u in units:
        prompts.update(method.training_prompts(params, u))
    if dist.is_main_process():  # under DDP rank 0 writes the shared files
        write_manifest(method, params, units, prompts, work_dir)

    def train_unit(unit: Unit, index: int, offset: int, total: int) -> int:
        if (artifact_path(work_dir, "model", unit.name) / "unit.json").is_file():
            return params.steps  # finished in an earlier run
        run = SdRun(method, params, unit, data, work_dir, device, seed + 1000 * index)
        resume = artifact_path(work_dir, "resume", unit.name)  # unit names are class names: data
        return train_steps(run, params, resume, hooks, offset, total, finish=run.publish)

    return train_units(units, params.steps, work_dir / "model", hooks, device, train_unit)


class SdRun:
    """One unit being trained: the base model's parts, its data, the optimizer and the training RNG; the step and
    sample functions the driver calls.

    `gen` draws the data order, VAE posterior samples, noise and timesteps (saved with each checkpoint); it is
    seeded alike in every DDP process, which each keep their slice of every global batch. `unet` and
    `text_encoder` are what the forward pass runs (DDP-wrapped under several processes; `parts` holds the bare
    modules).
    """

    def __init__(self, method: SdMethod, params: SdParams, unit: Unit, data: TrainImages, work_dir: Path,
                 device: str, seed: int):
        import torch

        torch.manual_seed(seed)
        self.method, self.params, self.unit, self.work_dir, self.device, self.seed = (method, params, unit, work_dir,
                                                                                       device, seed)
        self.acc = acc = dist.accelerator_for(device)
        trains_te = method.trains_text_encoder(params)
        self.parts = parts = load_parts(params, device, trains_te)
        with acc.main_process_first():  # rank 0 generates DreamBooth's class images; the others then read them
            prior = method.prior_set(parts, unit, params, work_dir, device, seed)
        self.prompts = method.training_prompts(params, unit)
        self.main, self.prior_data = build_data(parts, unit, self.prompts, data, params, device, prior)
        self.prior_weight = prior.weight if prior else 0.0
        input_ids = tokenize(parts.tokenizer, self.main.prompts + ([prior.prompt] if prior is not None else []))
        self.input_ids = input_ids.to(device)
        if params.gradient_checkpointing:
            parts.unet.enable_gradient_checkpointing()
            if trains_te:
                parts.text_encoder.gradient_checkpointing_enable()
        trainable = method.setup_trainable(parts, params)
        if trains_te:
            parts.text_encoder.requires_grad_(True)
            parts.text_encoder.train()
            trainable = trainable + list(parts.text_encoder.parameters())
        self.trainable = [p for p in trainable if p.requires_grad]
        optimizer, _ = make_optimizer(self.trainable, params, device)
        self.precision = params.precision(device)
        self.scaler = self.precision.grad_scaler()
        self.embeds = None
        """Precomputed prompt embeddings when the text encoder is frozen (None when it trains)."""
        if not trains_te:
            with torch.no_grad():
                self.embeds = parts.text_encoder(self.input_ids)[0]
        if trains_te:
            self.unet, self.text_encoder, self.optimizer = acc.prepare(parts.unet, parts.text_encoder, optimizer)
        else:
            (self.unet, self.optimizer), self.text_encoder = acc.prepare(parts.unet, optimizer), parts.text_encoder
        self.gen = torch.Generator().manual_seed(seed)
        self.step = 0
        parts.unet.train()

    def train_step(self) -> dict[str, float]:
        """One optimizer step at the learning rate of the current step."""
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(self.params, self.step)
        losses = _optimizer_step(self, self.params, self.device)
        self.step += 1
        return losses

    def sample_grid(self):
        """grid_per_class images per class from the weights being trained."""
        return grid_images(self.parts, self.params, self.prompts, self.unit.classes, self.precision.dtype, self.seed)

    def state(self) -> tuple[dict, dict]:
        """Optimizer moments, RNG states (the training generator's and torch's) and the loss scaler; the method's
        trainable weights are written by `export` in its own format."""
        opt_tensors, opt_scalars = ckpt.optimizer_to_state(self.optimizer)
        tensors = {**ckpt.prefixed("opt", opt_tensors), **ckpt.prefixed("rng", ckpt.rng_to_tensors()),
                   "train_rng": self.gen.get_state()}
        return tensors, {"optimizer": opt_scalars, "scaler": self.scaler.state_dict(), "format": FORMAT_VERSION}

    def export(self, folder: Path) -> None:
        """The method's trainable weights, resumable (fp32)."""
        self.method.save_weights(self.parts, folder, final=False, params=self.params)

    def load(self, saved: ckpt.Checkpoint) -> None:
        """Restore a checkpoint written by `state` and `export`."""
        self.method.load_weights(self.parts, saved.path, self.params)
        tensors = saved.tensors()
        ckpt.optimizer_from_state(self.optimizer, ckpt.unprefixed("opt", tensors), saved.scalars["optimizer"])
        self.gen.set_state(tensors["train_rng"])
        ckpt.rng_from_tensors(ckpt.unprefixed("rng", tensors))
        if saved.scalars.get("scaler"):
            self.scaler.load_state_dict(saved.scalars["scaler"])
        self.step = saved.step

    def publish(self) -> None:
        """Publish the unit's final weights atomically (unit.json inside marks it finished), then drop its resume
        state."""
        def fill(folder: Path) -> None:
            self.method.save_weights(self.parts, folder, final=True, params=self.params)
            (folder / "unit.json").write_text(json.dumps({"classes": self.unit.classes, "steps": self.params.steps}))

        ckpt.publish_folder(artifact_path(self.work_dir, "model", self.unit.name), fill)
        shutil.rmtree(artifact_path(self.work_dir, "resume", self.unit.name), ignore_errors=True)


def _lr_at(params: SdParams, step: int) -> float:
    if params.lr_warmup_steps and step < params.lr_warmup_steps:
        return params.lr * (step + 1) / params.lr_warmup_steps
    return params.lr


def _optimizer_step(run: SdRun, params: SdParams, device: str) -> dict[str, float]:
    """One optimizer step over gradient_accumulation micro-batches; the step's mean losses."""
    import torch

    parts, main, prior_data = run.parts, run.main, run.prior_data
    batch = params.batch_size
    mine = dist.shard(run.acc, batch)  # this process's rows of each global micro-batch
    totals = {"loss": 0.0}
    for micro in range(params.gradient_accumulation):
        index = torch.randint(len(main), (batch,), generator=run.gen)
        latents = sample_latents(parts, main, index, run.gen, device, mine)
        prompt_idx = main.prompt_index[index][mine]
        rows, n_main = torch.arange(batch)[mine], latents.shape[0]
        if prior_data is not None:
            pidx = torch.randint(len(prior_data), (batch,), generator=run.gen)
            latents = torch.cat([latents, sample_latents(parts, prior_data, pidx, run.gen, device, mine)])
            prompt_idx = torch.cat([prompt_idx, prior_data.prompt_index[pidx][mine]])
            rows = torch.cat([rows, batch + rows])  # the prior half follows the instance half in the global batch
        with run.precision.autocast():
            if run.embeds is None:
                cond = run.text_encoder(run.input_ids[prompt_idx.to(device)])[0]
            else:
                cond = run.embeds[prompt_idx.to(device)]
            per_sample = _diffusion_loss(parts, params, run.unet, latents, cond, run.gen, device, rows,
                                         batch * (2 if prior_data is not None else 1))
        loss = per_sample[:n_main].mean()
        if prior_data is not None:
            prior_loss = per_sample[n_main:].mean()
            share = float(prior_loss.detach()) / params.gradient_accumulation
            totals["prior_loss"] = totals.get("prior_loss", 0.0) + share
            loss = loss + run.prior_weight * prior_loss
        totals["loss"] += float(loss.detach()) / params.gradient_accumulation
        scaled = loss / params.gradient_accumulation
        with _gradient_sync(run, micro == params.gradient_accumulation - 1):
            run.acc.backward(run.scaler.scale(scaled))  # the scaler passes losses through unless fp16
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.trainable, params.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return dist.mean_across(run.acc, totals)


def _gradient_sync(run: SdRun, sync: bool):
    """No DDP all-reduce on the micro-batches before the last one of a step (gradients accumulate locally)."""
    import contextlib

    stack = contextlib.ExitStack()
    if not sync:
        for module in {id(m): m for m in (run.unet, run.text_encoder) if m is not None}.values():
            stack.enter_context(run.acc.no_sync(module))
    return stack


def _diffusion_loss(parts: Parts, params: SdParams, unet, latents, cond, gen, device, rows, global_size: int):
    """Per-sample noise-prediction MSE, Min-SNR weighted when snr_gamma is set, for the `rows` of a global batch
    of `global_size` (noise and timesteps are drawn for all of it: the same stream in every process)."""
    import torch
    import torch.nn.functional as F

    sched = parts.noise_scheduler
    noise = torch.randn((global_size,) + tuple(latents.shape[1:]), generator=gen)[rows].to(device)
    t = torch.randint(0, sched.config.num_train_timesteps, (global_size,), generator=gen)[rows].to(device)
    noisy = sched.add_noise(latents, noise, t)
    if sched.config.prediction_type == "v_prediction":
        target = sched.get_velocity(latents, noise, t)
    else:
        target = noise
    pred = unet(noisy, t, cond, return_dict=False)[0]
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
    if params.snr_gamma is not None:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(sched, t)
        weight = torch.clamp(snr, max=params.snr_gamma)
        weight = weight / (snr + 1) if sched.config.prediction_type == "v_prediction" else weight / snr
        per_sample = per_sample * weight
    return per_sample


