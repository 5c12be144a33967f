# Sourced by scripts/run and scripts/check: name a missing prerequisite in one line, and put uv
# on PATH without touching the system Python.
#
# uv comes from PATH, else from ./.venv-tools, else it is installed there from PyPI into a
# private virtual environment (Debian and Ubuntu refuse `pip install` into the system Python:
# externally-managed-environment).

UV_REQUIREMENT="uv>=0.13,<0.14"

say() { printf 'veil: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Python >= 3.11 with the venv module: what installing uv privately takes.
need_python() {
    have python3 || fail "Python 3.11 or newer is needed (Debian/Ubuntu: sudo apt-get install python3 python3-venv)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fail "Python 3.11 or newer is needed; python3 is $(python3 -V 2>&1)"
    python3 -c 'import ensurepip, venv' 2>/dev/null \
        || fail "Python's venv module is missing (Debian/Ubuntu: sudo apt-get install python3-venv)"
}

# A C and a C++ compiler and CMake: what building llama.cpp once takes (the launcher checks
# again, in the same words, before it fetches anything).
need_build_tools() {
    local how="(Debian/Ubuntu: sudo apt-get install build-essential cmake)"
    have cc || have gcc || have clang || fail "a C compiler is needed to build llama.cpp once $how"
    have c++ || have g++ || have clang++ || fail "a C++ compiler is needed to build llama.cpp once $how"
    have cmake || fail "CMake is needed to build llama.cpp once $how"
}

# The first run's heads-up, said once before anything is installed: the launcher compiles
# llama.cpp only after the dependencies and the demo model are in, and until then a newcomer
# waiting for the playground saw nothing say why it takes so long. The minutes are the
# launcher's own estimate (launcher/llama.py: 22 CPU minutes over CMAKE_BUILD_PARALLEL_LEVEL
# jobs, else one a usable core; 2 at least); it says them again, with progress each minute,
# once compiling begins.
announce_build() {
    local jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-}"
    if [[ ! "$jobs" =~ ^[0-9]+$ ]] || ((10#$jobs < 1)); then
        jobs=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    fi
    jobs=$((10#$jobs))
    local minutes=$(((44 + jobs) / (2 * jobs)))
    ((minutes >= 2)) || minutes=2
    say "first run: llama.cpp's llama-server, the model server that runs the local model on this" \
        "CPU, is compiled from source once (~$minutes minutes with $jobs jobs), after the" \
        "dependencies are installed; Veil starts when it is built, and later runs start at once"
}

# Whether uv is at hand already (on PATH or in ./.venv-tools).
have_uv() { have uv || [ -x .venv-tools/bin/uv ]; }

ensure_uv() {
    if have uv; then
        return
    fi
    if [ ! -x .venv-tools/bin/uv ]; then
        need_python
        say "installing uv from PyPI into ./.venv-tools (a private virtual environment)"
        python3 -m venv .venv-tools
        printf '*\n' >.venv-tools/.gitignore
        .venv-tools/bin/python -m pip install --quiet --disable-pip-version-check "$UV_REQUIREMENT"
    fi
    PATH="$PWD/.venv-tools/bin:$PATH"
    export PATH
}
