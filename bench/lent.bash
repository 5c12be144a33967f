#!/usr/bin/env bash
# Issue 14's benchmark on a lent machine with many cores, which cannot reach any network.
#
# Here, with the package registry in reach, fetch the pinned runtime packages as wheels for
# the lent machine's Python (3.12 unless told; bench/wheels/ is not committed):
#
#     bash bench/lent.bash wheels [3.12]
#
# There, from the working tree with bench/wheels carried beside it: install them into a
# fresh virtual environment (no network: the wheels only) and run the sealed channel's
# benchmark as docs/benchmarks.md's "On 16 cores" did, with as many gateway processes as
# the cores allow. What it prints also goes to $OUT/lent.txt when $OUT is set.
# VEIL_LENT_WHEELS names another folder of wheels than bench/wheels.
#
#     bash bench/lent.bash run            # about 6 minutes on 16 cores
#     bash bench/lent.bash run --quick    # a minute: small answers, one round
set -euo pipefail
cd "$(dirname "$0")/.."

wheels() {
    local version=${1:-3.12}
    local into=bench/wheels/$version
    mkdir -p "$into"
    uv export --frozen --no-dev --no-hashes --no-emit-project -q >"$into/requirements.txt"
    python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --python-version "$version" --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 \
        --platform linux_x86_64 --platform any \
        -d "$into" -r "$into/requirements.txt" 2>&1 | grep -v "^WARNING: Location" || true
    local wanted got
    wanted=$(grep -c '==' "$into/requirements.txt")
    got=$(find "$into" -name '*.whl' | wc -l)
    echo "bench/wheels/$version: $got wheels for $wanted pinned packages ($(du -sh "$into" | cut -f1))"
    [ "$got" -ge "$wanted" ] || { echo "some wheels are missing" >&2; exit 1; }
}

run() {
    local python version wheelhouse venv
    python=$(command -v python3)
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    wheelhouse=${VEIL_LENT_WHEELS:-bench/wheels}/$version
    if [ ! -f "$wheelhouse/requirements.txt" ]; then
        echo "no wheels for Python $version in $wheelhouse: run 'bash bench/lent.bash wheels" \
            "$version' where the registry is in reach, and carry bench/wheels" >&2
        exit 2
    fi
    venv=${TMPDIR:-/tmp}/veil-lent
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"  # no ensurepip needed: pip runs from its wheel
    "$venv/bin/python" "$(echo "$wheelhouse"/pip-*.whl)/pip" install -q --isolated --no-index \
        --disable-pip-version-check --find-links "$wheelhouse" -r "$wheelhouse/requirements.txt"

    local cores processes tokens rounds
    cores=$(nproc)
    processes=$((cores / 2 > 8 ? 8 : cores / 2))
    processes=$((processes < 2 ? 2 : processes))
    tokens=300 rounds=3
    if [ "${1:-}" = --quick ]; then
        tokens=30 rounds=1
    fi
    local bench=("$venv/bin/python" bench/sealed.py --tokens "$tokens" --ticks 0.25)
    {
        echo "== $(date -u '+%F %T') UTC; $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $("$venv/bin/python" -V); load $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "== a lone request, then bursts of 50 and 200, one gateway and $processes gateway processes"
        "${bench[@]}" --levels 1,50,200 --rounds "$rounds" --processes "$processes"
        echo "== a steady flow of 50"
        "${bench[@]}" --levels 50 --rounds "$rounds" --spread --processes "$processes"
        echo "== load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    } 2>&1 | tee "${OUT:-${TMPDIR:-/tmp}}/lent.txt"
}

case "${1:-}" in
wheels) wheels "${@:2}" ;;
run) run "${@:2}" ;;
*)
    echo "usage: bash bench/lent.bash wheels [PYTHON_VERSION] | run [--quick]" >&2
    exit 2
    ;;
esac
