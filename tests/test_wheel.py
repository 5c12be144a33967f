"""The product wheel: what it holds, and that the image's entry point runs from it alone.

The wheel (what ``uv build --wheel`` makes and the Dockerfile installs) holds Veil's product
packages and nothing dev-only: not the Telegram emulator (``playground``, which the tests, the
benchmarks and the playground share), not the run command (``launcher``), tests, benchmarks or
scripts. It is built here offline, with hatchling's own PEP 517 hook, as a build frontend calls it.
"""

from __future__ import annotations

import ast
import asyncio
import zipfile
from typing import TYPE_CHECKING

import hatchling.build
import pytest

from tests.harness import REPO, ManagedProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PRODUCT = {"bot", "handlers", "services", "models", "sealed", "gateway", "common"}
DEV_ONLY = {"playground", "launcher", "tests", "bench", "scripts"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel of this checkout, built once for the module."""
    out = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # a PEP 517 hook builds the project in the working directory
        name = hatchling.build.build_wheel(str(out))
    with zipfile.ZipFile(out / name) as built:
        assert built.testzip() is None
        yield built


def shipped(package: str) -> set[str]:
    """The files of ``package`` in this checkout, but bytecode (which .gitignore leaves out)."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_product_package_and_nothing_dev_only(
    wheel: zipfile.ZipFile,
) -> None:
    names = set(wheel.namelist())
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == PRODUCT, f"dev-only in the wheel: {sorted(top & DEV_ONLY)}"
    for package in sorted(PRODUCT):
        files = shipped(package)
        assert f"{package}/__init__.py" in files, f"{package} is not a package"
        assert files <= names, f"missing from the wheel: {sorted(files - names)}"


def test_no_module_in_the_wheel_imports_one_outside_it(wheel: zipfile.ZipFile) -> None:
    for name in sorted(n for n in wheel.namelist() if n.endswith(".py")):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(wheel.read(name), filename=name)):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        assert not roots & DEV_ONLY, f"{name} imports {sorted(roots & DEV_ONLY)}"


async def test_the_image_entry_point_runs_from_the_wheel_with_the_standard_library_only(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    # As in the runtime image: the wheel's files and Python's standard library, nothing else
    # (-S: no site-packages, so neither the dependencies nor this checkout are importable).
    site = tmp_path / "site"
    wheel.extractall(site)
    env = {"PYTHONPATH": str(site), "VEIL_ENV_DIRS": str(tmp_path / "none")}
    port = free_port()
    health = await ManagedProcess.start(
        "-S",
        "-m",
        "common.container",
        "health",
        env=env | {"VEIL_HEALTH_URL": f"http://127.0.0.1:{port}/"},
        cwd=str(tmp_path),
    )
    playground = await ManagedProcess.start(
        "-S", "-m", "common.container", "playground", env=env, cwd=str(tmp_path)
    )
    try:
        async with asyncio.timeout(30):
            codes = (await health.process.wait(), await playground.process.wait())
    finally:
        await health.stop()
        await playground.stop()
    assert codes == (1, 2)
    assert health.lines == [f"veil: unhealthy: http://127.0.0.1:{port}/ did not answer 200"]
    refusal = (
        "veil: the playground is dev-only and not in this image: build the Dockerfile's"
        " `playground` target (docker compose --profile playground does)"
    )
    assert playground.lines == [refusal]
