"""What docs/operations.md tells an operator about giving compose's containers their settings.

Compose hands a container only the variables its file names, so a setting exported in the shell
that the file does not name is dropped without a word. The docs must name every variable the file
takes from the host, and their way for the others must really reach the container: checked with
the real `docker-compose config`, which merges an override file as `up` does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

OPERATIONS = REPO / "docs/operations.md"
COMPOSE = REPO / "docker-compose.yml"


def containers_section() -> str:
    """The "Containers" section of docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("## Containers")
    return text[start : text.index("\n## ", start + 1)]


def override_example() -> str:
    """The override file the "Settings in compose" paragraph shows."""
    section = containers_section()
    rest = section[section.index("**Settings in compose.**") :]
    match = re.search(r"```yaml\n(.*?)```", rest, re.DOTALL)
    assert match is not None, "no override file shown under **Settings in compose.**"
    return match.group(1)


def test_every_variable_compose_takes_from_the_host_is_named_in_operations_md() -> None:
    taken = set(re.findall(r"\$\{(VEIL_\w+)", COMPOSE.read_text(encoding="utf-8")))
    assert "VEIL_ADMINS" in taken  # the reading finds them
    section = containers_section()
    untold = sorted(name for name in taken if f"`{name}`" not in section)
    assert not untold, f"docker-compose.yml takes {untold} from the host; operations.md omits them"


def test_the_override_of_operations_md_gives_the_bot_settings_the_shell_cannot(
    tmp_path: Path,
) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is missing (scripts/check requires it)")
    shown = yaml.safe_load(override_example())["services"]["bot"]["environment"]
    assert shown, "the override sets nothing"
    override = tmp_path / "docker-compose.override.yml"
    override.write_text(override_example(), encoding="utf-8")
    shell = dict.fromkeys(shown, "from-the-shell")

    def bot_environment(*files: Path) -> dict[str, str]:
        flags = [flag for path in files for flag in ("-f", str(path))]
        done = subprocess.run(  # noqa: S603 -- our own command line, no shell
            [compose, *flags, "--project-directory", str(REPO), "config"],
            env={"PATH": "/usr/bin:/bin", **shell},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        environment: dict[str, str] = yaml.safe_load(done.stdout)["services"]["bot"]["environment"]
        return environment

    alone = bot_environment(COMPOSE)
    assert not set(shown) & set(alone), (
        "the shell's value reached the bot: the docs' claim is stale"
    )
    merged = bot_environment(COMPOSE, override)
    assert {name: merged.get(name) for name in shown} == {
        name: str(value) for name, value in shown.items()
    }
