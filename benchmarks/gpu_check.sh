#!/usr/bin/env bash
# One command for a fresh GPU machine (repo copied, no venv): install, run the CUDA tests on the GPU,
# benchmark against torch.nn.RNN on CUDA (cuDNN) and our CPU kernels, write Markdown to $OUT.
#
#   bash benchmarks/gpu_check.sh     # finishes within BUDGET_S (default 520 s); skips without a GPU
#   BENCH_ARGS=--quick bash benchmarks/gpu_check.sh   # benchmark: forward only, no CPU column
#   GPU_TESTS=tests/kernels/cuda/test_gpu.py bash benchmarks/gpu_check.sh   # only the real-GPU tests
#
# Wheels in .whl/ are installed first, without a package index (docs/gpu.md: which wheels a
# machine without a package index needs, and how to fetch them).
#
# Steps, each time-boxed against one deadline:
#   1. where numba and numba-cuda are importable already (a machine without a package index),
#      use them with the repo on PYTHONPATH; else a venv .gpu-venv (with system site-packages, so
#      a preinstalled torch is reused) and pip install -e ".[cuda]" plus numba-cuda's cu12/cu13
#      extra matching the driver, pytest.
#   2. torch with CUDA, only if not importable yet and time allows (else no cuDNN columns).
#   3. probe: persistent (grid-synchronised), rows and register-resident kernels against per-step
#      ones on small problems; if the persistent ones fail or hang, steps 4-5 leave them out (a hang
#      would eat the budget).
#   4. pytest tests/kernels/cuda and the contract test on the GPU (includes the `gpu`-marked
#      tests) -> gpu_tests.xml.
#   5. benchmarks/gpu_bench.py -> gpu_bench.md (rewritten after every shape): register-resident
#      plans against the rows / persistent / per-step choice and cuDNN (TF32 on and off), forward
#      and training step, CUDA-event GPU times, host µs per call, per-step slopes at T = 100-4000.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/out}"
mkdir -p "$OUT_DIR"
# The log is written to /tmp and copied to $OUT_DIR on exit; every step has its own time box below
# the deadline, so the script ends (and copies) before any outer timeout. A hung Python step is sent
# SIGABRT, and PYTHONFAULTHANDLER prints where it hung.
LOG=/tmp/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
trap 'cp "$LOG" "$OUT_DIR/" 2>/dev/null' EXIT
export PYTHONFAULTHANDLER=1
T0=$(date +%s)
DEADLINE=$(( T0 + ${BUDGET_S:-520} ))
left() { echo $(( DEADLINE - $(date +%s) )); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 1 ? l : 1 )); }
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
boxed() { local secs=$1; shift; timeout -s ABRT -k 5 "$(cap "$secs")" "$@"; }  # boxed SECS CMD...

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  stamp "no NVIDIA GPU (nvidia-smi missing or failing): nothing to check"
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
EXTRA="cu${CUDA_MAJOR:-12}"
[ "$EXTRA" = "cu12" ] || [ "$EXTRA" = "cu13" ] || EXTRA="cu12"

if compgen -G ".whl/*.whl" >/dev/null; then
  # Wheels carried with the call go first on the path (see docs/gpu.md).
  stamp "0. install the carried wheels: $(ls .whl | tr '\n' ' ')"
  boxed 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if boxed 60 python3 -c "import numba, numba.cuda, numpy" 2>/dev/null; then
  # No install: the machine's numba and numba-cuda, the repo on the path.
  stamp "1. numba and numba-cuda already installed: no install, PYTHONPATH=$PWD"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  mkdir -p /tmp/gpu-check-bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" \
    >/tmp/gpu-check-bin/python && chmod +x /tmp/gpu-check-bin/python
  export PATH="/tmp/gpu-check-bin:$PATH"  # `python` is the machine's python3, also under `timeout`
  OFFLINE=1
else
  stamp "1. install numba-cuda[$EXTRA]"
  if [ -z "${VIRTUAL_ENV:-}" ]; then
    python3 -m venv --system-site-packages .gpu-venv && . .gpu-venv/bin/activate \
      || stamp "venv failed; installing into the current python"
  fi
  timeout "$(cap 150)" python -m pip install --quiet -e ".[cuda]" "numba-cuda[$EXTRA]" pytest \
    || { stamp "install failed"; exit 1; }
fi
boxed 60 python -c "import numba, numpy; print('numba', numba.__version__, 'numpy', numpy.__version__)" \
  || stamp "printing versions failed or hung"

if boxed 60 python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  stamp "2. torch with CUDA already present"
elif [ -z "${OFFLINE:-}" ] && [ "$(left)" -gt 330 ]; then
  stamp "2. pip install torch (at most $(cap $(( $(left) - 300 ))) s)"
  timeout "$(cap $(( $(left) - 300 )))" python -m pip install --quiet torch \
    || stamp "no torch: the benchmark has no cuDNN columns and the torch parity tests skip"
else
  stamp "2. no torch with CUDA, and no package index or no time to install it: no cuDNN columns"
fi
boxed 60 python - <<'PY'
from numba import cuda
print("numba.cuda sees a GPU:", cuda.is_available())
try:
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available())
except ImportError:
    print("torch: not installed")
PY

stamp "3. probe of the persistent kernels (at most $(cap 90) s)"
NO_PERSISTENT=()
DESELECT=()
if ! boxed 90 python benchmarks/gpu_bench.py --probe; then
  stamp "probe failed or hung: no persistent kernels in the tests and the benchmark"
  NO_PERSISTENT=(--no-persistent)
  DESELECT=(-k "not persistent")
fi

stamp "4. the CUDA tests on the GPU (at most $(cap 190) s)"
GPU_TESTS=${GPU_TESTS:-tests/kernels/cuda tests/kernels/test_contract.py}
# shellcheck disable=SC2086  # GPU_TESTS: the test paths, split on spaces
boxed 190 python -m pytest $GPU_TESTS -q -rs -p no:cacheprovider -o addopts="" "${DESELECT[@]}" \
  --junitxml="$OUT_DIR/gpu_tests.xml" 2>&1 | tail -40
echo "pytest exit status: ${PIPESTATUS[0]}"

BENCH=$(( $(left) - 10 ))
stamp "5. benchmark (at most $BENCH s)"
if [ "$BENCH" -gt 20 ]; then
  # shellcheck disable=SC2086  # BENCH_ARGS: extra words for gpu_bench.py, e.g. --quick
  boxed "$BENCH" python benchmarks/gpu_bench.py --budget-s $(( BENCH - 40 > 10 ? BENCH - 40 : 10 )) \
    "${NO_PERSISTENT[@]}" ${BENCH_ARGS:-} --out "$OUT_DIR/gpu_bench.md"
fi
stamp "done; reports in $OUT_DIR"
