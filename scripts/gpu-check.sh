#!/usr/bin/env bash
# The real-GPU check: five minutes at most on a machine with an NVIDIA GPU, its driver, and PyTorch.
#
#   scripts/gpu-check.sh              # from a checkout; installs gputab (from wheels/ when present, offline)
#   scripts/gpu-check.sh --no-install # the environment already has gputab and its test dependencies
#
# Runs the `gpu`-marked tests (real NVML; a real tagged PyTorch job doing matrix products: its VRAM, SM share and
# dollars; GPM and clock event reasons where supported; MIG cases skipped with a reason where no MIG is set up; the
# poll path: with the recorder's deadline a healthy driver answers every poll in time, no GPU is (unobserved)),
# then bench/real_gpu.py (nvmlInit time, poll latency per GPU, gputab vs nvitop's library), whose rows it appends
# to bench/RESULTS.md. Prepare wheels for a machine without internet with scripts/prepare-wheels.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if [[ "${1:-}" != "--no-install" ]]; then
    if [[ -d wheels ]]; then
        "$PY" -m pip install --quiet --no-index --find-links wheels -e ".[test,bench]"
    else
        "$PY" -m pip install --quiet -e ".[test,bench]"
    fi
fi
"$PY" -c "import torch" 2>/dev/null || echo "gpu-check: PyTorch is not installed: the PyTorch job test will be skipped" >&2

status=0
# The tests: one budget for all of them (the PyTorch job runs 40 s at most).
timeout 200 "$PY" -m pytest -m gpu -rs -s -q -p no:cacheprovider tests/ || status=$?
# The bench rows: about a minute.
timeout 90 "$PY" bench/real_gpu.py --write || status=$?
exit "$status"
