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
