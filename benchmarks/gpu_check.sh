#!/usr/bin/env bash
# One command for a fresh GPU machine (repo copied, no venv): install, run the real-GPU tests,
# benchmark against torch.nn.RNN on CUDA (cuDNN) and our CPU kernels, write Markdown to $OUT.
#
#   bash benchmarks/gpu_check.sh          # about 8 minutes at most; safe (skips) without a GPU
#
# Steps, each time-boxed so the whole run fits the budget:
#   1. venv (.gpu-venv, sees system site-packages so a preinstalled torch is reused);
#      `pip install -e ".[cuda]" pytest` plus numba-cuda's cu12/cu13 extra matching the driver.
#   2. torch with CUDA if not importable yet (`pip install torch`, 200 s at most; else no torch columns).
#   3. the CUDA tests on the real GPU: `pytest tests/cuda` (includes the `gpu`-marked ones).
#   4. benchmarks/gpu_bench.py (Markdown table, 200 s budget).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/out}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  stamp "no NVIDIA GPU (nvidia-smi missing or failing): nothing to check"
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
EXTRA="cu${CUDA_MAJOR:-12}"
[ "$EXTRA" = "cu12" ] || [ "$EXTRA" = "cu13" ] || EXTRA="cu12"

stamp "1. install (numba-cuda[$EXTRA])"
if [ -z "${VIRTUAL_ENV:-}" ]; then
  python3 -m venv --system-site-packages .gpu-venv && . .gpu-venv/bin/activate \
    || stamp "venv failed; installing into the current python"
fi
python -m pip install --quiet --upgrade pip || true
timeout 240 python -m pip install --quiet -e ".[cuda]" "numba-cuda[$EXTRA]" pytest hypothesis \
  || { stamp "install failed"; exit 1; }

if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  stamp "2. torch with CUDA already present"
else
  stamp "2. installing torch (200 s at most)"
  timeout 200 python -m pip install --quiet torch || stamp "no torch: benchmark without cuDNN columns"
fi
python - <<'PY'
from numba import cuda
print("numba.cuda sees a GPU:", cuda.is_available())
try:
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available())
except ImportError:
    print("torch: not installed")
PY

stamp "3. CUDA tests on the GPU"
timeout 240 python -m pytest tests/cuda -q -rs -p no:cacheprovider -o addopts="" \
  --junitxml="$OUT_DIR/gpu_tests.xml" 2>&1 | tail -40
echo "pytest exit status: ${PIPESTATUS[0]}"

stamp "4. benchmark"
timeout 260 python benchmarks/gpu_bench.py --budget-s 200 --out "$OUT_DIR/gpu_bench.md"
stamp "done; report in $OUT_DIR"
