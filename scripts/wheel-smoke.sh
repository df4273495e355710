#!/usr/bin/env bash
# The wheel as a user gets it: build the sdist and the wheel, check them, install the wheel alone in a fresh venv
# (no source tree on the path) and use it: --version, a demo snapshot as JSON, and every view and screen of the live
# view and the fleet view in a pseudo-terminal (scripts/wheel_smoke_pty.py). A stylesheet (.tcss) or data file left
# out of the wheel crashes its screen there, so the smoke fails and names the step.
#
#   scripts/wheel-smoke.sh [--wheel-only] [SOURCE_DIR]
#
# SOURCE_DIR defaults to this checkout; PYTHON picks the interpreter (python3). By default the wheel is built from
# the sdist, as pip does from PyPI, so a file the sdist lacks fails too; --wheel-only builds the wheel straight from
# the source (quicker; tests/test_wheel_smoke.py uses it).
#
# The interpreter needs `build` and `twine` (the test extra has both). pip reaches PyPI for the wheel's
# dependencies (its cache makes a second run quick). Exit status 0 when everything passed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build_args=()
if [ "${1:-}" = "--wheel-only" ]; then
  build_args=(--wheel)
  shift
fi
src="$(cd "${1:-$here/..}" && pwd)"
PY="${PYTHON:-python3}"
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac # it runs from elsewhere later
work="$(mktemp -d "${TMPDIR:-/tmp}/gputab-wheel-XXXXXX")"
trap 'rm -rf "$work"' EXIT
say() { echo "wheel-smoke: $* ($SECONDS s)"; }
quiet_pip() { grep -v "^WARNING: Location .* is ignored" >&2 || true; } # a pip.conf naming absent indexes

say "building ${build_args[*]:-the sdist and the wheel} of $src"
"$PY" -m build "${build_args[@]}" --outdir "$work/dist" "$src" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
"$PY" -m twine check --strict "$work"/dist/*
wheel="$(ls "$work"/dist/*.whl)"

# What a user must receive: the license text in both, the stylesheets and the price table in the wheel.
"$PY" - "$work/dist" <<'EOF'
import sys, tarfile, zipfile
from pathlib import Path
dist = Path(sys.argv[1])
names = zipfile.ZipFile(next(dist.glob("*.whl"))).namelist()
missing = [w for w in ("dist-info/licenses/LICENSE", "gputab/data/prices.toml", "gputab/tui/live_screen.tcss")
           if not any(n.endswith(w) for n in names)]
for sdist in dist.glob("*.tar.gz"):
    if not any(n.endswith("/LICENSE") for n in tarfile.open(sdist).getnames()):
        missing.append("LICENSE in the sdist")
if missing:
    sys.exit(f"wheel-smoke: missing from the distributions: {', '.join(missing)}")
print(f"wheel-smoke: {len(names)} files in the wheel, LICENSE in each distribution")
EOF

say "installing the wheel alone into a fresh venv"
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" 2> >(quiet_pip)
gputab="$work/venv/bin/gputab"

# Away from the source tree, with nothing of it on the path and every gputab path in the scratch directory.
cd "$work"
unset PYTHONPATH
export GPUTAB_DATA_DIR="$work/data" GPUTAB_CONFIG="$work/config.toml" GPUTAB_SPOOL="$work/spool"
where="$("$work/venv/bin/python" -c 'import gputab; print(gputab.__file__)')"
case "$where" in
"$work/venv/"*) ;;
*) say "gputab was imported from $where, not from the venv"; exit 1 ;;
esac

"$gputab" --version
"$gputab" --demo snapshot --json >"$work/snapshot.json"
"$work/venv/bin/python" - "$work/snapshot.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["schema_version"] and doc["gpus"], "the demo snapshot has no GPUs"
print(f"wheel-smoke: demo snapshot as JSON: {len(doc['gpus'])} GPUs, {len(doc['processes'])} processes")
EOF
"$PY" "$here/wheel_smoke_pty.py" "$gputab"
say "passed"
