#!/usr/bin/env bash
# One entry point for all set-up: `bash run.sh demo` runs the main job end to end,
# `bash run.sh test` runs the whole test suite. Each creates .venv and installs the pinned
# dependencies (requirements.lock, with hashes) the first time, and again when the lock changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.skvault-installed"
    local want
    want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --require-hashes -r requirements.lock
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-deps --no-build-isolation -e .
        echo "$want" > "$stamp"
    fi
}

case "${1:-}" in
    demo)
        setup
        shift
        exec "$VENV/bin/python" examples/quickstart.py "$@"
        ;;
    test)
        setup
        shift
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    bench)
        setup
        shift
        exec "$VENV/bin/python" benchmarks/bench_core.py "$@"
        ;;
    bench-legacy)
        setup
        shift
        exec "$VENV/bin/python" benchmarks/bench_legacy.py "$@"
        ;;
    *)
        echo "usage: bash run.sh demo | test [pytest args] | bench | bench-legacy" >&2
        exit 2
        ;;
esac
