#!/usr/bin/env bash
# Wheels of gputab and every dependency (runtime, tests, bench) for a GPU machine without internet.
#
#   scripts/prepare-wheels.sh [PYTHON_VERSION] [PLATFORM]    # defaults: 3.11, manylinux2014_x86_64
#
# Run it where pip can reach PyPI; copy the repository with its wheels/ folder to the GPU machine and run
# scripts/gpu-check.sh there (it installs from wheels/ with --no-index). PyTorch is not included: GPU machines
# bring their own CUDA build of it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${1:-3.11}"
PLATFORM="${2:-manylinux2014_x86_64}"
PY="${PYTHON:-python3}"
mkdir -p wheels
# gputab itself (pure Python), built here.
"$PY" -m pip wheel --no-deps --wheel-dir wheels .
# Its dependencies and the check's own (pytest, hypothesis, nvitop...), as binary wheels for the target.
"$PY" -c 'import tomllib, sys
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(p["dependencies"]) + [r for extra in ("test", "bench") for r in p.get("optional-dependencies", {}).get(extra, [])]
print("\n".join(reqs))' > wheels/requirements.txt
"$PY" -m pip download --dest wheels --only-binary=:all: --python-version "$PYVER" --platform "$PLATFORM" \
    --platform manylinux_2_17_x86_64 --platform linux_x86_64 --platform any -r wheels/requirements.txt \
    setuptools wheel
echo "wheels for Python $PYVER on $PLATFORM in $(pwd)/wheels ($(ls wheels/*.whl | wc -l) files)"
