"""Building ``llama-server`` once: the source checked, only llama.cpp unpacked, CMake run for real.

A tiny sdist made here stands in for llama-cpp-python's (a CMake project whose ``llama-server``
target is a small C++ program), so the real CMake and compiler run in seconds; the download is
served by a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tarfile
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from launcher.console import LaunchError, LogFile
from launcher.llama import (
    CMAKE_OPTIONS,
    SOURCE_SHA256,
    SOURCE_URL,
    SOURCE_VERSION,
    binary_path,
    build,
    build_jobs,
    estimate_minutes,
    fetch_source,
    find_toolchain,
    has_sha256,
    server_arguments,
    unpack_vendored,
)
from tests.harness import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

PROJECT = """cmake_minimum_required(VERSION 3.14)
project(fake_llama CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
if (LLAMA_USE_PREBUILT_UI OR NOT LLAMA_BUILD_SERVER)
    message(FATAL_ERROR "built with the options the launcher must not use")
endif()
if (CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND NOT CMAKE_CXX_FLAGS MATCHES "-mno-amx-tile")
    message(FATAL_ERROR "built with Intel AMX, which dies of SIGILL where it is not enabled")
endif()
add_executable(llama-server main.cpp)
"""
MAIN = '#include <cstdio>\nint main() { std::puts("fake llama-server"); return 0; }\n'


def sdist(files: dict[str, str], top: str = "llama_cpp_python-9.9.9") -> bytes:
    """A gzipped tarball of ``files`` under one top folder, as an sdist is."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def names_in(folder: Path) -> list[str]:
    """What a folder holds."""
    return sorted(path.name for path in folder.iterdir())


def fake_sdist(main: str = MAIN) -> bytes:
    """The stand-in sdist: llama.cpp's folder with a buildable ``llama-server``, and more."""
    return sdist(
        {
            "vendor/llama.cpp/CMakeLists.txt": PROJECT,
            "vendor/llama.cpp/main.cpp": main,
            "llama_cpp/__init__.py": "raise SystemExit('not this part')\n",
        }
    )


@pytest.fixture
async def file_host() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP server on 127.0.0.1 serving the bytes put in its dict by path."""
    files: dict[str, bytes] = {}

    async def serve(request: web.Request) -> web.Response:
        body = files.get(request.path)
        return web.Response(status=404) if body is None else web.Response(body=body)

    app = web.Application()
    app.router.add_get("/{name:.*}", serve)
    async with serving(app) as url:
        yield url, files


async def test_the_source_is_kept_only_when_its_sha256_matches(
    tmp_path: Path, file_host: tuple[str, dict[str, bytes]]
) -> None:
    url, files = file_host
    body = fake_sdist()
    files["/pkg.tar.gz"] = body
    target = tmp_path / "pkg.tar.gz"
    await fetch_source(f"{url}/pkg.tar.gz", hashlib.sha256(body).hexdigest(), target)
    assert target.read_bytes() == body
    target.unlink()
    with pytest.raises(LaunchError, match="is not the source it should be"):
        await fetch_source(f"{url}/pkg.tar.gz", "0" * 64, target)
    with pytest.raises(LaunchError, match="HTTP 404"):
        await fetch_source(f"{url}/missing.tar.gz", "0" * 64, target)
    assert names_in(tmp_path) == []  # neither the file nor a partial one is left


def test_a_source_file_put_by_hand_counts_only_when_its_sha256_matches(tmp_path: Path) -> None:
    archive = tmp_path / "sdist.tar.gz"
    assert not has_sha256(archive, "0" * 64)
    archive.write_bytes(fake_sdist())
    assert has_sha256(archive, hashlib.sha256(archive.read_bytes()).hexdigest())
    assert not has_sha256(archive, SOURCE_SHA256)


def test_the_pinned_source_is_llama_cpp_pythons_sdist() -> None:
    assert SOURCE_URL.endswith(f"/llama_cpp_python-{SOURCE_VERSION}.tar.gz")
    assert SOURCE_URL.startswith("https://files.pythonhosted.org/packages/")
    assert len(SOURCE_SHA256) == 64
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in CMAKE_OPTIONS  # nothing downloaded at build time


def test_only_llama_cpps_folder_is_unpacked(tmp_path: Path) -> None:
    archive = tmp_path / "sdist.tar.gz"
    archive.write_bytes(fake_sdist())
    source = unpack_vendored(archive, tmp_path / "out")
    assert sorted(p.name for p in source.iterdir()) == ["CMakeLists.txt", "main.cpp"]
    assert not (tmp_path / "out" / "llama_cpp_python-9.9.9" / "llama_cpp").exists()
    not_llama = tmp_path / "other.tar.gz"
    not_llama.write_bytes(sdist({"setup.py": ""}))
    with pytest.raises(LaunchError, match=r"holds no vendor/llama\.cpp/CMakeLists\.txt"):
        unpack_vendored(not_llama, tmp_path / "other")


async def test_a_build_installs_the_binary_and_leaves_only_it(tmp_path: Path) -> None:
    archive = tmp_path / "sdist.tar.gz"
    archive.write_bytes(fake_sdist())
    work = tmp_path / "cache" / SOURCE_VERSION / "work"
    work.mkdir(parents=True)
    target = tmp_path / "cache" / SOURCE_VERSION / "llama-server"
    log = LogFile(tmp_path / "logs" / "llama-build.log")
    await build(archive, work, target, tools=find_toolchain(), jobs=2, log=log)
    log.close()
    ran = await asyncio.create_subprocess_exec(target, stdout=asyncio.subprocess.PIPE)
    assert (await ran.communicate())[0] == b"fake llama-server\n"
    assert names_in(target.parent) == ["llama-server"]
    assert os.access(target, os.X_OK)
    assert "llama-server" in (tmp_path / "logs" / "llama-build.log").read_text()
    assert target == binary_path({"VEIL_LLAMA_CPP_DIR": str(tmp_path / "cache")})


async def test_a_failed_build_shows_its_last_lines_and_keeps_its_work(tmp_path: Path) -> None:
    archive = tmp_path / "sdist.tar.gz"
    archive.write_bytes(fake_sdist(main="int main() { this is not C++ }\n"))
    work = tmp_path / "work"
    work.mkdir()
    target = tmp_path / "llama-server"
    log = LogFile(tmp_path / "llama-build.log")
    with pytest.raises(LaunchError) as failed:
        await build(archive, work, target, tools=find_toolchain(), jobs=1, log=log)
    log.close()
    message = str(failed.value)
    assert message.startswith("building llama.cpp failed (exit ")
    assert "main.cpp" in message
    assert message.endswith(f"(all of it: {tmp_path / 'llama-build.log'})")
    assert not target.exists()
    assert (work / "source.ok").exists()  # the next run resumes instead of starting over


def test_the_missing_tool_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LaunchError, match=r"^a C compiler is needed"):
        find_toolchain(str(empty))
    only_c = tmp_path / "only-c"
    only_c.mkdir()
    cc = shutil.which("cc")
    assert cc is not None
    (only_c / "cc").symlink_to(cc)
    with pytest.raises(LaunchError, match=r"^a C\+\+ compiler is needed"):
        find_toolchain(str(only_c))


def test_jobs_and_the_estimate_follow_the_cores() -> None:
    assert build_jobs({"CMAKE_BUILD_PARALLEL_LEVEL": "3"}) == 3
    assert build_jobs({}) >= 1
    # not a count (a digit to str.isdigit, none to int(): a traceback): the cores, as unset
    assert build_jobs({"CMAKE_BUILD_PARALLEL_LEVEL": "²"}) == build_jobs({})
    assert estimate_minutes(2) == 11
    assert estimate_minutes(16) == 2  # never promises less than two minutes


def test_the_server_listens_on_loopback_with_the_window_and_cap(tmp_path: Path) -> None:
    arguments = server_arguments(
        model=tmp_path / "m.gguf", alias="m", port=8123, context=2048, max_answer_tokens=1024
    )
    pairs = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--ctx-size"] == "2048"
    assert pairs["--n-predict"] == "1024"
    assert pairs["--port"] == "8123"
