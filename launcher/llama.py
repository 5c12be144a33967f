"""llama.cpp's own ``llama-server`` for the run command: found in its cache, or compiled once.

The source is the llama.cpp tree (MIT) that PyPI's ``llama-cpp-python`` sdist vendors, pinned
here by version and SHA-256: the file is fetched from PyPI's file host, checked, and only its
``vendor/llama.cpp`` folder is unpacked. CMake builds the one target ``llama-server`` (static
libraries, the CPU backend tuned for this machine but without Intel AMX, no web UI, no TLS,
nothing downloaded at build time) into ``VEIL_LLAMA_CPP_DIR`` (default
``VEIL_DATA_DIR/llama.cpp``) as ``<version>/llama-server``. A build cut short (Ctrl-C, a full
disk) keeps its work folder, so the next run goes on where it stopped; a finished one keeps only
the binary.

Why this server: it kept answering through 20 Russian and Kazakh questions in a row (the slow
test; llama-cpp-python's server froze on a stray byte), it stops every answer at the request's
``max_tokens``, which the gateway always sends, clamped to its cap (``--n-predict`` is only the
default for a request that names none), and it answers ``/health``, which the launcher waits on
and the gateway's own ``/health`` asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import re
import shutil
import signal
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from launcher.console import LaunchError, LogFile, make_folder, say

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

SOURCE_VERSION = "0.3.36"  # of llama-cpp-python, whose sdist carries llama.cpp's source
SOURCE_URL = (
    "https://files.pythonhosted.org/packages/ec/e9/"
    "e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
    f"llama_cpp_python-{SOURCE_VERSION}.tar.gz"
)
SOURCE_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = "vendor/llama.cpp/"
BINARY = "llama-server"
# Seen on 2 busy cores: 10.6 minutes (12.5 CPU minutes), nearly all of it compiling.
CORE_MINUTES = 22
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary, kept after the build folder goes
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the build downloads the web UI from a hub
    "-DLLAMA_OPENSSL=OFF",  # it serves loopback only; no TLS library needed
)
# Intel AMX is left out of the CPU backend: where a virtual machine or sandbox reports AMX but
# does not let a process use it, llama.cpp's AMX kernels die of SIGILL on the first question
# (seen here on a Xeon behind a sandbox). For small models on a CPU it gains nothing.
NO_AMX = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
_PERCENT = re.compile(r"^\[\s*(\d{1,3})%\]")
PROGRESS_EVERY_S = 60.0
BUILD_STOP_S = 10.0  # from SIGTERM to SIGKILL for a build stopped short


@dataclass(frozen=True)
class Toolchain:
    """The programs a build runs."""

    cmake: str
    c_compiler: str
    cxx_compiler: str


def find_toolchain(path: str | None = None) -> Toolchain:
    """CMake and a C and a C++ compiler from ``PATH``; the first missing one is named."""

    def first(*names: str) -> str | None:
        return next((found for n in names if (found := shutil.which(n, path=path))), None)

    how = "(Debian/Ubuntu: sudo apt-get install build-essential cmake)"
    c_compiler = first("cc", "gcc", "clang")
    if c_compiler is None:
        raise LaunchError(f"a C compiler is needed to build llama.cpp once {how}")
    cxx_compiler = first("c++", "g++", "clang++")
    if cxx_compiler is None:
        raise LaunchError(f"a C++ compiler is needed to build llama.cpp once {how}")
    cmake = first("cmake")
    if cmake is None:
        raise LaunchError(f"CMake is needed to build llama.cpp once {how}")
    return Toolchain(cmake, c_compiler, cxx_compiler)


def cache_dir(env: Mapping[str, str]) -> Path:
    """Where builds are kept: ``VEIL_LLAMA_CPP_DIR``, else ``VEIL_DATA_DIR/llama.cpp``."""
    chosen = env.get("VEIL_LLAMA_CPP_DIR")
    return Path(chosen) if chosen else Path(env.get("VEIL_DATA_DIR", "data")) / "llama.cpp"


def binary_path(env: Mapping[str, str]) -> Path:
    """Where this version's ``llama-server`` is (or will be, once built)."""
    return cache_dir(env) / SOURCE_VERSION / BINARY


def build_jobs(env: Mapping[str, str]) -> int:
    """Compile jobs at once: ``CMAKE_BUILD_PARALLEL_LEVEL``, else one per usable core."""
    chosen = env.get("CMAKE_BUILD_PARALLEL_LEVEL", "")
    if chosen.isascii() and chosen.isdigit() and int(chosen) > 0:  # "²" is a digit to isdigit
        return int(chosen)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def estimate_minutes(jobs: int) -> int:
    """Roughly how long a build takes with ``jobs`` compile jobs."""
    return max(2, round(CORE_MINUTES / jobs))


async def fetch_source(url: str, sha256: str, target: Path) -> None:
    """Download ``url`` to ``target``, keeping it only when its SHA-256 is ``sha256``."""
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
                trust_env=True,  # HTTPS_PROXY and the like, as pip and uv take them
            ) as http,
            http.get(url) as response,
        ):
            if response.status != 200:  # noqa: PLR2004 -- HTTP OK
                raise LaunchError(f"could not download llama.cpp's source: HTTP {response.status}")
            with partial.open("wb") as out:
                async for block in response.content.iter_chunked(1 << 20):
                    digest.update(block)
                    out.write(block)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise LaunchError(f"could not download llama.cpp's source from {url}: {exc}") from exc
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise LaunchError(
            f"the file at {url} is not the source it should be (SHA-256 {digest.hexdigest()},"
            f" expected {sha256}); nothing was built"
        )
    partial.replace(target)


def has_sha256(path: Path, sha256: str) -> bool:
    """Whether the file at ``path`` exists and its SHA-256 is ``sha256``."""
    if not path.is_file():
        return False
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256


def unpack_vendored(archive: Path, into: Path) -> Path:
    """Unpack only the sdist's ``vendor/llama.cpp`` folder; return where it is."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        tops = {member.name.split("/", 1)[0] for member in members}
        if len(tops) != 1:
            raise LaunchError(f"{archive} is not one sdist folder")
        prefix = f"{tops.pop()}/{VENDORED}"
        wanted = [member for member in members if member.name.startswith(prefix)]
        if not any(member.name == f"{prefix}CMakeLists.txt" for member in wanted):
            raise LaunchError(f"{archive} holds no {VENDORED}CMakeLists.txt")
        tar.extractall(into, members=wanted, filter="data")
    return into / prefix


async def compiler_flags(tools: Toolchain) -> list[str]:
    """CMake options that leave Intel AMX out, where the compilers know the flags (x86-64)."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return []
    for compiler, language in ((tools.c_compiler, "c"), (tools.cxx_compiler, "c++")):
        probe = await asyncio.create_subprocess_exec(
            compiler,
            *NO_AMX,
            "-x",
            language,
            "-c",
            "-o",
            os.devnull,
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await probe.communicate(b"int veil_probe;\n")
        if probe.returncode != 0:
            return []  # a compiler that does not know AMX never uses it
    flags = " ".join(NO_AMX)
    return [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]


async def run_logged(command: Sequence[str], log: LogFile, *, progress: str | None = None) -> None:
    """Run ``command`` with its output in ``log``; a failure shows its last lines.

    With ``progress``, the build's percentage is said every ``PROGRESS_EVERY_S`` seconds.
    It runs in a process group of its own, which a stop ends whole (``stop_group``): CMake
    starts make or Ninja, which start the compilers, and killing CMake alone left them
    compiling, and the launcher, waiting for the end of their output, stopped only once the
    whole build had run (a terminal's Ctrl-C reached them; a SIGTERM did not). A launcher that
    cannot stop it (SIGKILL, a crash) left the group compiling: it starts through
    ``launcher.tether --group``, which ends the group once this process's end of a pipe closes.
    """
    watched, held = os.pipe()  # ``held`` stays here, in no child: it closes as this process ends
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "launcher.tether",
            "--group",
            str(os.getpid()),
            str(watched),
            "--",
            *command,
            pass_fds=(watched,),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            process_group=0,
        )
    except BaseException:
        os.close(held)
        raise
    finally:
        os.close(watched)
    assert process.stdout is not None  # noqa: S101 -- started with a pipe
    lines: list[str] = []
    started = shown = time.monotonic()
    try:
        async for raw in process.stdout:
            log.write(raw)
            line = raw.decode("utf-8", "replace").rstrip()
            lines = [*lines[-19:], line]
            percent = _PERCENT.match(line)
            if progress and percent and time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                minutes = (shown - started) / 60
                say(f"  … {progress} {percent.group(1)}% ({minutes:.0f} min)")
        code = await process.wait()
    finally:
        if process.returncode is None:
            await stop_group(process)
        os.close(held)  # the build has ended: its watcher leaves, signalling nothing
    if code != 0:
        tail = "\n".join(lines[-15:])
        message = f"building llama.cpp failed (exit {code}):\n{tail}"
        raise LaunchError(f"{message}\n(all of it: {log.path})")


async def stop_group(process: asyncio.subprocess.Process) -> None:
    """End ``process`` and every process of its group: SIGTERM, then SIGKILL after a while.

    SIGTERM first: make deletes the object file it was writing, which a SIGKILL would leave
    cut short for the next build (which resumes this one) to link. ``wait`` returns once the
    group's last holder of the output pipe has gone.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), BUILD_STOP_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def build(  # noqa: PLR0913 -- the build's inputs, each named
    archive: Path, work: Path, target: Path, *, tools: Toolchain, jobs: int, log: LogFile
) -> None:
    """Build ``llama-server`` from the sdist ``archive`` in ``work`` and install it as ``target``.

    ``work`` is kept when the build stops short (the next run resumes it) and removed once the
    binary is in place.
    """
    unpacked = work / "source"
    marker = work / "source.ok"
    if not marker.exists():
        shutil.rmtree(unpacked, ignore_errors=True)
        source = await asyncio.to_thread(unpack_vendored, archive, unpacked)
        marker.write_text(str(source.relative_to(work)) + "\n", encoding="utf-8")
    source = work / marker.read_text(encoding="utf-8").strip()
    build_dir = work / "build"
    configure = [
        tools.cmake,
        "-S",
        str(source),
        "-B",
        str(build_dir),
        f"-DCMAKE_C_COMPILER={tools.c_compiler}",
        f"-DCMAKE_CXX_COMPILER={tools.cxx_compiler}",
        *CMAKE_OPTIONS,
        *await compiler_flags(tools),
    ]
    await run_logged(configure, log)
    compile_ = [tools.cmake, "--build", str(build_dir), "--target", BINARY, "--parallel", str(jobs)]
    await run_logged(compile_, log, progress="compiling")
    built = build_dir / "bin" / BINARY
    if not built.is_file():
        raise LaunchError(f"the build finished without {built} (see {log.path})")
    staged = target.with_name(target.name + ".new")
    shutil.copyfile(built, staged)
    staged.chmod(0o755)
    staged.replace(target)
    await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


async def ensure_llama_server(env: Mapping[str, str], logs: Path) -> Path:
    """``llama-server``, compiled first when this version is not in the cache yet.

    Checks the toolchain before anything is fetched, and says "compiling" only when it does.
    The sdist is fetched unless ``<version>/work`` holds it already, checked either way (a
    machine that cannot reach PyPI's file host may put it there by hand).
    """
    target = binary_path(env)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    tools = find_toolchain(env.get("PATH"))
    jobs = build_jobs(env)
    folder = target.parent
    work = folder / "work"
    make_folder(work, "VEIL_LLAMA_CPP_DIR")
    archive = work / SOURCE_URL.rsplit("/", 1)[1]
    log = LogFile(logs / "llama-build.log")
    say(
        f"compiling llama.cpp (once, ~{estimate_minutes(jobs)} minutes with {jobs} jobs) into"
        f" {folder}; its output: {log.path}"
    )
    started = time.monotonic()
    try:
        unpacked = (work / "source.ok").exists()
        if not unpacked and not await asyncio.to_thread(has_sha256, archive, SOURCE_SHA256):
            say(f"  fetching its source from PyPI (llama-cpp-python {SOURCE_VERSION} sdist)")
            await fetch_source(SOURCE_URL, SOURCE_SHA256, archive)
        await build(archive, work, target, tools=tools, jobs=jobs, log=log)
    finally:
        log.close()
    say(f"  llama.cpp is built ({(time.monotonic() - started) / 60:.0f} min): {target}")
    return target


def server_arguments(  # noqa: PLR0913 -- the server's command line, one value each
    *,
    model: Path,
    alias: str,
    port: int,
    context: int,
    max_answer_tokens: int,
    threads: int | None = None,
) -> list[str]:
    """``llama-server``'s command line: loopback only, the window and the answer cap given."""
    arguments = [
        "--model",
        str(model),
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(context),
        "--n-predict",
        str(max_answer_tokens),
        "--no-webui",
        "--no-slots",  # its /slots (on by default) tells anyone on the host what each slot runs
    ]
    if threads is not None:
        arguments += ["--threads", str(threads)]
    return arguments
