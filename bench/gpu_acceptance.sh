#!/usr/bin/env bash
# The GPU acceptance as one prepared device command, run from the project root on a GPU machine
# that has torch, transformers, accelerate, peft and safetensors but no diffusers and no network:
#   on the workstation, once:  ../shared/gpu/carry-wheels.sh  <the extra packages docs/benchmarks.md names>
#   on the GPU machine:        bash bench/gpu_acceptance.sh            (or: make gpu-acceptance)
# It installs the carried wheels (.gpu-wheels/) and headshot itself without dependencies, records
# the library versions, runs bench/gpu_acceptance.py (arguments are passed on) and, when $OUT is
# set (the device runner's folder that comes back), copies the log and docs/benchmarks.md there.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if [ -d .gpu-wheels ] && ls .gpu-wheels/*.whl >/dev/null 2>&1; then
  "$py" -m pip install --no-deps --no-index -q .gpu-wheels/*.whl
fi
"$py" -m pip install --no-deps --no-build-isolation -q -e . 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$py" -m pip list 2>/dev/null | grep -iE '^(torch|transformers|peft|accelerate|diffusers|safetensors) ' || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
log=${OUT:-/tmp}/gpu_acceptance.log
status=0
timeout 590 "$py" bench/gpu_acceptance.py "$@" 2>&1 | tee "$log" || status=$?
if [ -n "${OUT:-}" ]; then cp docs/benchmarks.md "$OUT/benchmarks.md"; fi
exit "$status"
