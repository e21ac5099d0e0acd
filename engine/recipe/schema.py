"""The typed recipe: every section of a study, frozen, with unknown keys rejected.

Each field's docstring is its description in the exported JSON schema (`xaug recipe schema`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

CLASS_NAMES_PAPER = ("healthy", "bacterial", "viral", "fungal", "covid19")
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
"""Names that become path segments (study, generator, classifier and class names): letters, digits, '_', '.' and
'-', starting with a letter or digit, at most 100 characters; never '..', a '/' or an absolute path."""
SafeName = Annotated[str, Field(pattern=SAFE_NAME)]


class Strict(BaseModel):
    """Base for recipe sections: frozen, unknown keys rejected, docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PhantomConfig(Strict):
    """The built-in procedural chest X-ray phantom."""

    scale: float = Field(0.25, gt=0, le=10)
    """Fraction of the paper's class counts (673/100/74/125/110) to generate; 1.0 gives 1,082 images."""
    seed: int = 0
    """Seed from which every phantom image is generated deterministically."""
    native_size: int = Field(128, ge=32, le=1024)
    """Side in pixels at which phantoms are drawn before resizing."""
    images_per_patient: tuple[int, int] = (1, 3)
    """Minimum and maximum number of images per simulated patient."""
    difficulty: float = Field(1.0, gt=0, le=3)
    """Scales noise and overlap between findings; higher is harder."""


class FindingsColumn(Strict):
    """One column listing every finding of an image, separated (NIH ChestX-ray14's `Finding Labels`: `A|B`)."""

    column: str
    """Column with the findings, e.g. 'Finding Labels'."""
    separator: str = Field("|", min_length=1)
    """What separates two findings in a cell."""


class FindingColumns(Strict):
    """One column per finding holding 1 (present), 0 (absent), -1 (uncertain) or blank (not mentioned), as in
    CheXpert and MIMIC-CXR; 1.0/0.0/-1.0 are read the same."""

    columns: list[str] = Field(min_length=2)
    """The finding columns to read, e.g. [No Finding, Pneumonia, Edema]; the other columns are ignored."""
    uncertain: Literal["skip", "positive", "negative"] = "skip"
    """-1 (uncertain): `skip` the image (only certain labels train and test), count it as `positive` (U-Ones) or
    as `negative` (U-Zeros)."""
    blank: Literal["negative", "skip"] = "negative"
    """Blank (the report did not mention the finding): `negative`, CheXpert's own reading, or `skip` the image."""


class CsvConfig(Strict):
    """A metadata CSV with one row per image: its columns, which rows count, and how labels become classes.

    Labels come from one of three layouts: `label_column` (one class label per row, the default), `findings_column`
    (one column listing several findings, NIH style) or `finding_columns` (one column per finding, CheXpert style).
    """

    path_column: str = "path"
    """Column with the image path, relative to `image_root` (or absolute)."""
    label_column: str = "label"
    """Column with the class label (the default layout; unused with findings_column or finding_columns)."""
    patient_column: str = "patient_id"
    """Column with the patient identifier (stored only as a salted pseudonym)."""
    label_map: dict[str, SafeName] = {}
    """Maps label values (or findings) found in the CSV to class names, e.g. {'PNEUMONIA_VIRAL': viral}."""
    image_root: str | None = None
    """Folder that the image paths are relative to, itself relative to the CSV file's folder (or absolute),
    e.g. `images`; default: the CSV file's folder. Prefer a relative one: it is part of prepare_data's key, so an
    absolute one changes the key when the dataset moves (the files' content is in the key either way)."""
    where: dict[str, list[str]] = {}
    """Keep only rows whose column holds one of the values, e.g. {view: [PA], modality: [X-ray]}; the other rows
    are skipped and counted (reported by `xaug data inspect` and recorded in the store's skipped_images)."""
    where_not: dict[str, list[str]] = {}
    """Skip rows whose column holds one of the values, e.g. {view: [L, LL]}; skipped rows are counted."""
    on_missing_label: Literal["error", "skip"] = "error"
    """A row without a label (an empty label cell, no findings, no positive finding column): stop with an error
    naming the file and row, or skip the row and count it."""
    on_other_label: Literal["error", "skip"] = "error"
    """A label that is not one of the study's classes (dataset.classes, else the label_map's values when it is
    set): stop with an error naming the file and row, or skip the row and count it (e.g. to keep 2 of NIH's 14
    findings)."""
    on_mixed_patient: Literal["error", "skip"] = "error"
    """A patient whose kept images have different classes (follow-up images in NIH or CheXpert): stop with an error
    naming two of the files, or skip every image of that patient and count them. Patient-level folds need one
    class per patient, and xaug never re-labels an image to get it."""
    findings_column: FindingsColumn | None = None
    """Multi-label layout: one column lists every finding of an image (see multiple_findings)."""
    finding_columns: FindingColumns | None = None
    """One-column-per-finding layout with 1/0/-1/blank values (see multiple_findings)."""
    multiple_findings: Literal["skip", "priority"] = "skip"
    """An image with more than one finding (the two multi-finding layouts): `skip` it (single-finding images only)
    or give it the first finding of `priority` that it has."""
    priority: list[str] = []
    """Findings in order of precedence for multiple_findings: priority, as written in the CSV (before label_map),
    e.g. [Pneumonia, Effusion, No Finding]. With it, findings not listed are ignored."""

    @field_validator("where", "where_not", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        """CSV cells are text: a number written in YAML (`Follow-up #: [0]`) is compared as the text it reads."""
        if not isinstance(value, dict):
            return value
        return {column: [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values]
                if isinstance(values, list) else values for column, values in value.items()}

    @model_validator(mode="after")
    def _one_layout(self) -> "CsvConfig":
        if self.findings_column is not None and self.finding_columns is not None:
            raise ValueError("set findings_column (one column listing findings) or finding_columns (one column per"
                             " finding), not both")
        if self.multiple_findings == "priority" and not self.priority:
            raise ValueError("multiple_findings: priority needs the priority list (findings, most important first)")
        return self


class SubsampleConfig(Strict):
    """A patient-level subset of the dataset, drawn once (seeded) to simulate a limited-data setting on a large
    public dataset; folds are made on the subset only."""

    per_class: dict[str, int] | None = None
    """Target images per class, e.g. the paper's {healthy: 673, bacterial: 100, viral: 74, fungal: 125,
    covid19: 110}. Whole patients are drawn in a seeded random order, each taken when it does not overshoot the
    target; a class with fewer images than its target is an error. Classes not listed are kept whole."""
    fraction: float | None = Field(None, gt=0, lt=1)
    """Instead of per_class: this fraction of each class's images (rounded), drawn the same way."""
    seed: int = 0
    """Seed of the draw (independent of splits.seed, so folds can be re-drawn on the same subset)."""

    @model_validator(mode="after")
    def _one_target(self) -> "SubsampleConfig":
        if (self.per_class is None) == (self.fraction is None):
            raise ValueError("set exactly one of per_class (images per class) or fraction")
        for name, count in (self.per_class or {}).items():
            if count < 1:
                raise ValueError(f"per_class[{name}] is {count}: a target must be at least 1 image")
        return self


class DatasetConfig(Strict):
    """Where the images come from and how they are prepared."""

    source: Literal["phantom", "folder", "csv"] = "phantom"
    """phantom (built in), folder (one sub-folder of PNG/JPEG/DICOM per class) or csv (a metadata table)."""
    path: str | None = None
    """Folder (source: folder) or CSV file (source: csv), relative to the recipe file."""
    classes: list[SafeName] | None = None
    """Class names in order (letters, digits, '_', '.', '-'); defaults to the phantom's five or the sorted class
    folders / mapped labels."""
    image_size: int = Field(224, ge=16, le=2048)
    """Side in pixels that images are resized to (and cached at)."""
    patient_pattern: str | None = None
    """Regular expression with one group that extracts the patient id from a file name (folder source); without it
    DICOM files use their PatientID, and other files need `one_patient_per_image: true`."""
    one_patient_per_image: bool = False
    """Folder source without patient_pattern: declare that every image without a patient id (PNG/JPEG, or DICOM
    without PatientID) is a different patient. Only say so when it is true: if one patient has several images,
    they can land in both the training and the test split, and every number of the study is then optimistic
    (leakage). Without this, such files are an error."""
    on_unreadable: Literal["error", "skip"] = "error"
    """What to do with an image that cannot be decoded: stop with an error, or skip it and record it."""
    phantom: PhantomConfig = PhantomConfig()
    """Settings of the built-in phantom (source: phantom)."""
    csv: CsvConfig = CsvConfig()
    """Columns of the metadata table (source: csv)."""
    subsample: SubsampleConfig | None = None
    """Draw a patient-level subset (target counts per class, or a fraction) before making the folds."""
    external_test: bool = False
    """With subsample: the images not drawn become an extra held-out test set. Every trained classifier is also
    evaluated on it (results recorded with test set 'external'); model selection never sees it. Its images are
    decoded too, so preparing takes longer."""
    external_test_per_class: int | None = Field(None, ge=1)
    """With external_test: at most this many images per class in the external test set, drawn by whole patients
    (seeded by subsample.seed), which bounds its size and decoding time on a large dataset; default every image
    the subsample did not draw."""


class SplitsConfig(Strict):
    """Patient-level stratified k-fold splits, with a validation split inside each training fold."""

    folds: int = Field(5, ge=2, le=20)
    """Number of folds k: each patient is in the test split of exactly one fold."""
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    """Fraction of each fold's training patients held out for model selection (never the test split)."""
    seed: int = 0
    """Seed of the split assignment."""
    run_folds: list[int] | None = None
    """Run only these folds (0-based); all folds when omitted."""
    repeats: int = Field(1, ge=1, le=20)
    """Repeated k-fold: how many times the patients are split into `folds` folds, each time a fresh partition
    (split seed derived from `seed`; the first repeat uses `seed` itself), with generators trained per repeat.
    The study's replication units are folds x repeats (classifier seeds are averaged inside a fold)."""


class GeneratorSpec(Strict):
    """One generative model of the study."""

    name: str = Field(pattern=SAFE_NAME)
    """Your name for this generator, unique in the recipe; used in tables."""
    model: str
    """Registered generator: gan, ddpm, sd_finetune, dreambooth, lora, pretrained_pipeline (a local diffusers
    pipeline you already have, sampled without training), or one an installed plugin package declares."""
    per_class: bool = False
    """Train one model per class instead of one class-conditional model."""
    amounts: list[int] | None = None
    """Synthetic images per class to add for this generator; overrides the study's amounts."""
    params: dict[str, Any] = {}
    """Settings of the generator, validated by its own schema (see the generator's documentation)."""


class ClassifierSpec(Strict):
    """One downstream classifier (a timm model)."""

    name: str | None = Field(None, pattern=SAFE_NAME)
    """Your name for this classifier; defaults to the timm model name."""
    model: str
    """timm model name, e.g. resnet50, efficientnet_b0, convnext_tiny."""
    pretrained: bool = False
    """Start from ImageNet weights (from `weights`, or the Hugging Face cache); fails clearly if not available."""
    weights: str | None = None
    """Local file (.safetensors/.pth) or folder with pretrained weights, relative to the recipe file."""
    in_chans: Literal[1, 3] = 1
    """Input channels: 1 (grey-scale) or 3 (grey replicated, as ImageNet weights expect)."""
    image_size: int | None = Field(None, ge=16, le=2048)
    """Input size; defaults to the dataset's image_size."""
    epochs: int = Field(20, ge=1)
    """Training length in epochs of the fold's real training split (n_real images). Every arm of this classifier
    (baseline, each synthetic amount, duplicate control) trains exactly epochs x ceil(n_real / batch_size)
    optimiser steps with the same cosine schedule, whatever it adds: an arm with more images sees each image
    fewer times, never more updates (equal budgets; recorded as `optimizer_steps` in `results`)."""
    batch_size: int = Field(8, ge=1)
    """Batch size (the paper: 8)."""
    synthetic_fraction: float | None = Field(None, gt=0, lt=1)
    """How an arm that adds images fills its batches. Unset: uniformly from the pool of real + added images, so a
    batch holds added images in proportion to their count. A number such as 0.5: that fraction of every batch is
    added images (synthetic or duplicated real), the rest real ones, whatever the amount. The step budget is the
    same either way; the baseline draws real images only."""
    val_every_steps: int | None = Field(None, ge=1)
    """Validate, and keep the checkpoint with the lowest validation loss, every this many optimiser steps and at
    the last step; default one epoch of the real training split. Counted in steps, so all arms are selected at the
    same points of their (equal) training."""
    lr: float = Field(1e-4, gt=0)
    """Adam learning rate (the paper: 1e-4), with a cosine schedule over the step budget."""
    weight_decay: float = Field(0.0, ge=0)
    """Weight decay (AdamW when > 0)."""
    augment: Literal["none", "standard", "paper"] = "standard"
    """Training augmentation preset (kornia, drawn per image): `none`; `standard`, mild (affine up to 7 degrees,
    5% shift and 7% scale, brightness/contrast 15%; no flips: anatomy is sided); `paper`, the reference study's
    (shift-scale-rotate up to 50% scale, CLAHE or gamma, blur or sharpen, and dropout 0.5 before the classifier
    head unless model_kwargs sets drop_rate). Older recipes' true/false mean standard/none."""
    class_balanced: bool = False
    """Weight the loss by inverse class frequency (training and validation), for small imbalanced datasets."""
    model_kwargs: dict[str, Any] = {}
    """Extra keyword arguments for timm.create_model (e.g. drop_rate), for tiny test models."""

    @property
    def id(self) -> str:
        """The name used in tables and job labels."""
        return self.name or self.model

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_from_bool(cls, value: Any) -> Any:
        """Recipes and queued jobs written before the presets said `augment: true/false`."""
        return {True: "standard", False: "none"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _fraction_needs_two_per_batch(self) -> "ClassifierSpec":
        """A fixed real:added ratio needs room for at least one image of each in a batch."""
        if self.synthetic_fraction is not None and self.batch_size < 2:
            raise ValueError("synthetic_fraction needs batch_size >= 2 (one real and one added image per batch)")
        return self


class QualityConfig(Strict):
    """Image-quality and memorisation metrics of the synthetic images."""

    n_per_class: int = Field(200, ge=2)
    """Synthetic and real images per class used for FID/KID (fixed, and recorded with every value); real images are
    drawn from the fold's training split and, separately, from its validation split (held-out reference)."""
    image_size: int | None = Field(None, ge=16)
    """Side in pixels at which real and synthetic images are compared (both resized the same way before any
    metric); default: the smaller of the real images' side (dataset.image_size) and the samples' side."""
    min_images: int = Field(50, ge=2)
    """A class with fewer real or synthetic images than this gets its values marked not meaningful (still recorded,
    with a note) and left out of the overall macro-average."""
    features: Literal["inception", "classifier", "pixels"] = "inception"
    """Feature space: Inception-v3 (needs local weights), the fold's real-only classifier, or raw pixels."""
    inception_weights: str | None = None
    """Path to torch-fidelity's Inception weights file (pt_inception-2015-12-05-*.pth)."""
    kid_subset_size: int = Field(50, ge=2)
    """Subset size for KID (must not exceed the number of images)."""
    memorisation: bool = True
    """Check each synthetic image's nearest neighbour among the training images for near-copies."""
    memorisation_quantile: float = Field(1.0, gt=0, lt=50)
    """A synthetic image nearer to a training image than this percentile of held-out images' distances is a
    probable near-copy."""
    memorisation_min_heldout: int = Field(100, ge=10)
    """Held-out (validation) images needed for that percentile: a class with fewer uses all classes' held-out
    images together; with fewer than this in all, no near-copy rate is recorded (a note says why)."""
    ms_ssim: bool = True
    """Compute MS-SSIM diversity among synthetic images (the paper's second metric), next to that among real pairs
    of each reference at the same resolution."""

    @model_validator(mode="after")
    def _percentile_has_support(self):
        # Below 100/q values the q-th percentile is the smallest distance itself: not an estimate of a percentile.
        if self.memorisation_min_heldout * self.memorisation_quantile < 100:
            raise ValueError(
                f"memorisation_min_heldout {self.memorisation_min_heldout} is too small for the "
                f"percentile {self.memorisation_quantile:g}: use at least {math.ceil(100 / self.memorisation_quantile)}")
        return self


class ReaderStudyConfig(Strict):
    """The blinded reader study in the TUI."""

    images_per_class: int = Field(25, ge=1)
    """Images per class and generator shown to each rater (the paper: 25)."""
    real_fraction: float = Field(0.25, ge=0, lt=1)
    """Fraction of real images mixed in, so that raters can be checked against real ones."""


class AnalysisConfig(Strict):
    """The statistics of the study."""

    test: Literal["wilcoxon", "corrected_t"] = "corrected_t"
    """Paired test over replication units (folds x repeats, seeds averaged within a fold): Wilcoxon signed-rank or
    the Nadeau-Bengio corrected resampled t-test (variance x (1/n + n_test/n_train), the k-fold ratio)."""
    correction: Literal["holm", "bonferroni", "fdr_bh", "none"] = "holm"
    """Multiple-comparison correction over all arms of the study (the headline: over its generators)."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance level and 1 - confidence of the intervals, used by the report, `xaug results` and the TUI."""


JobKind = Literal["prepare_data", "train_generator", "sample", "image_quality", "train_classifier", "evaluate",
                  "analyse"]
GpuJobKind = Literal["train_generator", "sample", "image_quality", "train_classifier", "evaluate"]
"""The job kinds that may run on a GPU."""
_TIME_LIMIT = re.compile(r"^(?P<minutes>\d+)$|^(?:(?P<d>\d+)-)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)$")


def _check_time_limit(value: str) -> str:
    if not _TIME_LIMIT.match(value):
        raise ValueError(f"'{value}' is not a Slurm time limit: use minutes (90), HH:MM:SS (04:00:00) or "
                         "D-HH:MM:SS (1-12:00:00)")
    return value


TimeLimit = Annotated[str, AfterValidator(_check_time_limit)]
"""A Slurm wall-clock limit: minutes, HH:MM:SS or D-HH:MM:SS."""


def time_limit_minutes(value: str) -> int:
    """A Slurm time limit ('90', '04:00:00', '1-12:00:00') in whole minutes (at least 1)."""
    parts = _TIME_LIMIT.match(value)
    if parts["minutes"] is not None:
        return max(1, int(parts["minutes"]))
    days, hours, minutes, seconds = (int(parts[g] or 0) for g in ("d", "h", "m", "s"))
    return max(1, days * 1440 + hours * 60 + minutes + (seconds + 59) // 60)


class SlurmJobResources(Strict):
    """What Slurm allocates to one job of a kind; unset fields fall back to the section's defaults."""

    gpus: int | None = Field(None, ge=0)
    """GPUs on one node (--gpus-per-node); default: the kind's GPUs from generator_gpus / classifier_gpus."""
    cpus: int | None = Field(None, ge=1)
    """CPUs of the job (--cpus-per-task); default: cpus_per_job."""
    mem: str | None = Field(None, pattern=r"^\d+[KMGT]?$")
    """Memory of the job (--mem), e.g. 32G; default: mem."""
    time_limit: TimeLimit | None = None
    """Wall-clock limit of the job (--time) as minutes, HH:MM:SS or D-HH:MM:SS; default: time_limit."""


class SlurmConfig(Strict):
    """How the Slurm executor submits jobs (resources.executor: slurm). The engine still decides what runs; each
    job becomes an sbatch job (jobs of one kind submitted together become one job array)."""

    partition: str | None = None
    """Partition to submit to (--partition); the cluster's default partition when omitted."""
    account: str | None = None
    """Account to charge (--account)."""
    qos: str | None = None
    """Quality of service (--qos)."""
    time_limit: TimeLimit = "04:00:00"
    """Wall-clock limit of a job (--time) as minutes, HH:MM:SS or D-HH:MM:SS; a job near its limit checkpoints
    and is submitted again, resuming where it stopped."""
    cpus_per_job: int = Field(4, ge=1)
    """CPUs of each job (--cpus-per-task) unless its kind says otherwise."""
    mem: str | None = Field(None, pattern=r"^\d+[KMGT]?$")
    """Memory of each job (--mem), e.g. 32G; the partition's default when omitted."""
    kinds: dict[JobKind, SlurmJobResources] = {}
    """Per job kind (train_generator, sample, train_classifier, ...): GPUs, CPUs, memory and time limit."""
    max_jobs: int = Field(64, ge=1)
    """Jobs submitted to Slurm at once (pending or running); more wait in xaug's queue."""
    array_parallelism: int = Field(256, ge=1)
    """How many tasks of one job array may run at the same time (--array=...%N)."""
    local_kinds: list[JobKind] = ["analyse"]
    """Kinds that run on the engine's host instead: analyse reads the whole study from the store."""
    extra_sbatch: dict[str, str | int | bool] = {}
    """More sbatch options by long name without dashes, e.g. {constraint: a100, mail-type: END}."""

    @field_validator("local_kinds")
    @classmethod
    def _check_local(cls, value: list[str]) -> list[str]:
        if "analyse" not in value:
            raise ValueError("analyse must stay in local_kinds: it reads the whole study from the store, which only "
                             "the engine's host opens")
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _check_extra(cls, value: dict) -> dict:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
                raise ValueError(f"'{name}' is not an sbatch long option name (e.g. constraint, mail-type)")
            if name in _SBATCH_OWNED:
                raise ValueError(f"'{name}' is set by xaug itself; use the field of this section instead")
        return value


_SBATCH_OWNED = {"array", "output", "error", "job-name", "requeue", "no-requeue", "signal", "wrap", "partition",
                 "account", "qos", "time", "cpus-per-task", "gpus-per-node", "mem"}


class ResourcesConfig(Strict):
    """Where and how jobs run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto uses a GPU when one is free, else the CPU."""
    amp: bool = True
    """Mixed precision on GPU (bf16 where supported, else fp16)."""
    generator_gpus: int = Field(1, ge=0, le=64)
    """GPUs per train_generator job, all on one machine (one node under Slurm). With N > 1, DDPM and the Stable
    Diffusion family train one model on N processes with accelerate (DDP): a generator's batch_size is the global
    batch, split evenly over the N GPUs (so it must be divisible by N), and the result does not depend on N.
    The GAN trains on one GPU (it is given one). The scheduler waits for N GPUs to be free together, without
    starving smaller jobs (engine/queue/policy.py)."""
    classifier_gpus: int = Field(1, ge=0)
    """GPUs per classifier training job."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes per job."""
    gpu_memory_gb: dict[GpuJobKind, Annotated[float, Field(gt=0)] | Literal["measured"]] = {}
    """GPU memory per job of a kind (e.g. `{train_classifier: 6, evaluate: 3}`), so the local scheduler may run
    several jobs on one GPU while their memory adds up to no more than the GPU's (a 224-px classifier at batch 8
    uses a small part of an 80 GB GPU). A number is the whole worker process's use in GB on each of its GPUs (CUDA
    context included); `measured` uses the peak measured on earlier done jobs of the same kind and model spec (each
    job of a new spec runs alone until one has finished). Kinds not listed take their GPUs whole. The local executor
    only: under Slurm, Slurm places jobs."""
    max_attempts: int = Field(3, ge=1)
    """How often a failing job is tried before it is marked failed."""
    executor: Literal["local", "slurm"] = "local"
    """local runs jobs on this machine's GPUs or CPU slots; slurm submits them to a Slurm cluster (see slurm)."""
    slurm: SlurmConfig = SlurmConfig()
    """Partition, account, time limits and per-kind resources of the Slurm executor."""


class Recipe(Strict):
    """A study: dataset, splits, generators, classifiers, synthetic amounts, seeds, metrics, resources."""

    name: str = Field(pattern=SAFE_NAME)
    """Study name, used to look results up (`xaug results NAME`)."""
    description: str = ""
    """Free text shown in the TUI and reports."""
    dataset: DatasetConfig = DatasetConfig()
    """The images."""
    splits: SplitsConfig = SplitsConfig()
    """Patient-level folds."""
    generators: list[GeneratorSpec] = []
    """Generative models; empty for a real-only study."""
    classifiers: list[ClassifierSpec] = Field(min_length=1)
    """Downstream classifiers."""
    amounts: list[int] = [0]
    """Synthetic images added per class; 0 is the real-only baseline and is always run."""
    duplicate_control: bool = True
    """Also train a count-matched control per amount: duplicated real images, under the classifier's augmentation."""
    seeds: list[int] = [0]
    """Classifier training seeds; every arm runs on every fold x seed. Seeds are averaged within a fold: they reduce
    noise but are not replication units (use splits.repeats for more units)."""
    quality: QualityConfig = QualityConfig()
    """Image-quality metrics."""
    reader_study: ReaderStudyConfig = ReaderStudyConfig()
    """Blinded reader study."""
    analysis: AnalysisConfig = AnalysisConfig()
    """Statistics."""
    resources: ResourcesConfig = ResourcesConfig()
    """Devices and retries."""

    def amounts_for(self, generator: GeneratorSpec) -> list[int]:
        """The positive synthetic amounts per class used with one generator."""
        return sorted({a for a in (generator.amounts or self.amounts) if a > 0})
