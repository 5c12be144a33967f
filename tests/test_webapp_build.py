"""The Mini App's bundle is reproducible: same sources and lockfile, same bytes, same hash.

The test copies ``webapp/`` (sources, ``package.json``, ``package-lock.json``, ``build.mjs``)
to a fresh directory, installs the locked packages there with ``npm ci`` (the npm cache is
used when it holds them), builds twice, and checks that both builds, the committed
``webapp/static/veil.js`` and the SHA-256 published in README.md and docs/miniapp.md agree.
It needs Node.js and npm (and, with an empty npm cache, the npm registry).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from typing import TYPE_CHECKING

import pytest

from bot.webapp import bundle_sha256
from tests.harness import REPO
from tests.miniapp import node_ready

if TYPE_CHECKING:
    from pathlib import Path

NODE = node_ready()
NPM = shutil.which("npm")
WEBAPP = REPO / "webapp"
SOURCES = ("package.json", "package-lock.json", "build.mjs", "src")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="needs Node.js 20 or later and npm"
)


async def run(*args: str, cwd: Path, within: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(within):
        out, _ = await process.communicate()
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    return text


@pytest.mark.timeout(600)
async def test_building_twice_from_a_fresh_install_gives_the_committed_bundle(
    tmp_path: Path,
) -> None:
    assert NODE is not None
    assert NPM is not None
    work = tmp_path / "webapp"
    work.mkdir()
    for name in SOURCES:
        source = WEBAPP / name
        if source.is_dir():
            shutil.copytree(source, work / name)
        else:
            shutil.copy2(source, work / name)
    started = time.monotonic()
    await run(
        NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
        cwd=work, within=540,
    )  # fmt: skip
    installed = time.monotonic() - started
    digests = []
    for name in ("first.js", "second.js"):
        printed = await run(NODE, "build.mjs", str(tmp_path / name), cwd=work, within=60)
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert printed.split()[0] == digest
        digests.append(digest)
    committed = bundle_sha256()
    assert digests == [committed, committed], (
        "webapp/static/veil.js is not what its sources build: run `npm ci && npm run build` in"
        " webapp/ and publish the new hash"
    )
    for doc in ("README.md", "docs/miniapp.md"):
        assert committed in (REPO / doc).read_text(encoding="utf-8"), f"{doc} lacks the hash"
    print(f"npm ci took {installed:.1f} s")  # noqa: T201 -- a figure for the report


def test_the_bundle_loads_nothing_from_elsewhere() -> None:
    script = (WEBAPP / "static" / "veil.js").read_text(encoding="utf-8")
    page = (WEBAPP / "static" / "index.html").read_text(encoding="utf-8")
    for text in (script, page):
        assert "telegram-web-app.js" not in text
        assert '<script src="http' not in text
        assert 'fetch("http' not in text
    # The page's one script is the bundle; its fetches go to the page's own origin.
    assert page.count("<script src=") == 1
    assert 'src="veil.js"' in page
    assert "new URL(path, window.location.href)" in script
