#!/usr/bin/env bash
# CUDA check on a GPU machine: the CUDA conformance tests (tests/cuda) and a quick benchmark on the device.
#
# Run from the repository root, with no venv and no network: it uses `python3` (torch, pytest and numpy
# installed) and the package from the source tree (PYTHONPATH=src). Outputs go to $OUT (default runs/gpu_check):
#   gpu_tests.log          pytest output of tests/cuda
#   bench_cuda.log         benchmark output; benchmarks_cuda.md (report), benchmarks_cuda.png (only with matplotlib)
#   env.txt                GPU, driver, torch and CUDA versions (this step fails, code 3, if torch sees no CUDA device:
#                          the tests would then all be skipped)
# Every step runs even if an earlier one failed; the exit codes are printed at the end, and the script exits
# non-zero if any step failed (124 = the step hit its time limit).
#
# Environment overrides (defaults in brackets):
#   OUT [runs/gpu_check]        output folder
#   TEST_TIMEOUT [240]          seconds for the test step; BENCH_TIMEOUT [300] for the benchmark step
#   BENCH_SIZES [32x16,8x64,64x128,4x512]   BATCHxN list of the spectral section (--sizes)
#   BENCH_NCUT_NODES [10000,154401,1000000] node counts of the ncut section (--ncut-nodes)
#   BENCH_QUICK [1]             1: the benchmark's --quick mode (small o2p and ncut settings, 7 repeats); 0: its full
#                               defaults (pass e.g. BENCH_EXTRA_ARGS="--budget 3" to bound each configuration)
#   BENCH_EXTRA_ARGS []         more options for benchmarks/bench_spectral.py (word-split)
# Peer libraries (spd_learn, torchspd, geoopt, ncut_pytorch) are optional: the benchmark reports a missing one as
# "not installed" and goes on. The ncut section runs on the device too, one child process per configuration; the
# threads section is CPU-only (skipped here).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-runs/gpu_check}"
TEST_TIMEOUT="${TEST_TIMEOUT:-240}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-300}"
BENCH_SIZES="${BENCH_SIZES:-32x16,8x64,64x128,4x512}"
BENCH_NCUT_NODES="${BENCH_NCUT_NODES:-10000,154401,1000000}"
BENCH_EXTRA_ARGS="${BENCH_EXTRA_ARGS:-}"
BENCH_QUICK="${BENCH_QUICK:-1}"
quick=()
if [ "$BENCH_QUICK" = 1 ]; then
    quick=(--quick)
fi
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

names=()
codes=()

# step NAME LOG SECONDS COMMAND...: run COMMAND under a time limit (when `timeout` exists), output teed to LOG.
step() {
    local name=$1 log=$2 limit=$3 rc=0
    shift 3
    echo
    echo "== $name ($(date -u +%H:%M:%S) UTC, limit ${limit} s)"
    if command -v timeout > /dev/null; then
        timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$log" || rc=$?
    else
        "$@" 2>&1 | tee "$log" || rc=$?
    fi
    echo "== $name: exit code $rc"
    names+=("$name")
    codes+=("$rc")
}

step "environment" "$OUT/env.txt" 120 bash -c '
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi failed"
    python3 -c "
import sys, torch
print(\"python\", sys.version.split()[0])
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", torch.backends.cudnn.version())
print(\"cuda available:\", torch.cuda.is_available(), \"devices:\", torch.cuda.device_count())
if torch.cuda.is_available():
    print(\"device 0:\", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
print(\"tf32 matmul allowed:\", torch.backends.cuda.matmul.allow_tf32)
import matbackprop
print(\"matbackprop\", matbackprop.__version__, \"from\", matbackprop.__file__)
sys.exit(0 if torch.cuda.is_available() else 3)  # without CUDA the tests below would all be skipped
"'

step "tests/cuda" "$OUT/gpu_tests.log" "$TEST_TIMEOUT" \
    python3 -m pytest tests/cuda -q -p no:cacheprovider -rs --durations=15

# shellcheck disable=SC2086  # BENCH_EXTRA_ARGS is a list of options, split on purpose
step "benchmark (cuda)" "$OUT/bench_cuda.log" "$BENCH_TIMEOUT" \
    python3 benchmarks/bench_spectral.py --device cuda "${quick[@]}" \
    --sections spectral,o2p,ncut --sizes "$BENCH_SIZES" --ncut-nodes "$BENCH_NCUT_NODES" --ncut-compare-nodes 10000 \
    --markdown "$OUT/benchmarks_cuda.md" --plot "$OUT/benchmarks_cuda.png" $BENCH_EXTRA_ARGS

echo
echo "== summary (exit codes; 124 = time limit)"
failed=0
for i in "${!names[@]}"; do
    printf '  %-28s %s\n' "${names[$i]}" "${codes[$i]}"
    if [ "${codes[$i]}" != 0 ]; then
        failed=1
    fi
done
echo "outputs in $OUT"
exit "$failed"
