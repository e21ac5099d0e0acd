#!/usr/bin/env bash
# The GPU checks of issue 14, prepared to run in one go on a machine with a CUDA GPU (and no internet):
#   1. `xaug bench gpu`  - the full-size table (SD-1.5, GAN, DDPM, resnet50, convnext_small; 1 vs k jobs per GPU)
#   2. `pytest -m "gpu and not slow"` - quick tests of the GPU-only code paths (tests/engine/bench/test_gpu_paths.py);
#      the slow GPU tests (a full bench run, all three SD methods at 512 px) repeat step 1 at greater length
# Each step runs under its own timeout; a step that fails or times out is recorded and the next one still runs.
# Everything lands in $OUT (default ./gpu-check/): summary.txt first, then bench-gpu.{txt,json}, pytest-gpu.txt,
# nvidia-smi.txt and env.txt; bench-gpu.json is rewritten after every section, so a run cut short keeps what it
# measured. Wall time stays under BENCH_MINUTES + 1 + PYTEST_S/60 minutes (default 9.25, under a 10-minute call).
# For a rerun of part of it: SECTIONS="classifier packing" scripts/gpu_check.sh (sd classifier packing ddpm gan).
#
#   scripts/gpu_check.sh                         # from the repository root
#   OUT=/tmp/out BENCH_MINUTES=5 scripts/gpu_check.sh
#   PYTHON=/path/to/venv/bin/python scripts/gpu_check.sh
set -u

cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
BENCH_MINUTES=${BENCH_MINUTES:-6}   # the bench skips (and names) sections whose budget no longer fits
PYTEST_S=${PYTEST_S:-120}
SECTIONS=${SECTIONS:-sd classifier packing ddpm gan}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1

summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

note "gpu_check started $(date -u +%FT%TZ) on $(hostname); python: $PYTHON"
if ! "$PYTHON" -c "import xaug.engine.cli" 2>/dev/null; then
  # A bare checkout: install it in place, without dependencies or a build environment (the machine is offline).
  "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.txt" 2>&1
  note "xaug was not importable: pip install -e . exited $? (install.txt)"
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed (see nvidia-smi.txt)"
"$PYTHON" - > "$OUT/env.txt" 2>&1 <<'PY'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu 0:", p.name, f"{p.total_memory / 2**30:.1f} GiB", "bf16:", torch.cuda.is_bf16_supported())
for name in ("diffusers", "transformers", "timm", "pynvml"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "present"))
    except ImportError:
        print(name, "missing")
PY
note "$(head -3 "$OUT/env.txt" | tr '\n' ' ')"

bench_s=$(awk -v m="$BENCH_MINUTES" 'BEGIN { printf "%d", m * 60 + 60 }')  # the bench's own budget plus a minute
start=$(date +%s)
timeout --kill-after=15 "$bench_s" "$PYTHON" -c "from xaug.engine.cli import main; main()" \
  bench gpu --max-minutes "$BENCH_MINUTES" --json "$OUT/bench-gpu.json" $(printf -- '--section %s ' $SECTIONS) \
  > "$OUT/bench-gpu.txt" 2>&1
code=$?
note "xaug bench gpu: exit $code after $(( $(date +%s) - start )) s (124: timed out) -> bench-gpu.txt, bench-gpu.json"

start=$(date +%s)
timeout --kill-after=15 "$PYTEST_S" "$PYTHON" -m pytest -q -m "gpu and not slow" -p no:cacheprovider \
  --timeout "$PYTEST_S" tests > "$OUT/pytest-gpu.txt" 2>&1
code=$?
note "pytest -m 'gpu and not slow': exit $code after $(( $(date +%s) - start )) s (5: none selected) -> pytest-gpu.txt"
note "$(tail -1 "$OUT/pytest-gpu.txt")"
note "gpu_check ended $(date -u +%FT%TZ)"
