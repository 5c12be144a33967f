"""The shell blocks of the README and docs/ run as written in a fresh shell."""

from __future__ import annotations

import re

import pytest

from tests.harness import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(?:sh|bash)\n(.*?)```", re.DOTALL)
_EXPANDED = re.compile(r"\$\{?([A-Za-z_]\w*)")
_ASSIGNED = re.compile(r"(?:^|\s)([A-Za-z_]\w*)=", re.MULTILINE)


def shell_blocks() -> list[tuple[str, str]]:
    """Every sh or bash block of the README and docs/, named by its file."""
    return [
        (path.relative_to(REPO).as_posix(), match.group(1))
        for path in DOCS
        for match in _BLOCK.finditer(path.read_text(encoding="utf-8"))
    ]


def test_the_docs_have_shell_blocks() -> None:
    names = {name for name, _ in shell_blocks()}
    assert {"README.md", "docs/operations.md"} <= names


@pytest.mark.parametrize(("name", "block"), shell_blocks())
def test_every_variable_a_shell_block_expands_is_set_in_it(name: str, block: str) -> None:
    """A newcomer pastes a block into a fresh shell: what it expands must be set there."""
    unset = set(_EXPANDED.findall(block)) - set(_ASSIGNED.findall(block))
    assert not unset, f"{name}: {sorted(unset)} expanded but never set in:\n{block}"


def test_a_model_server_started_by_hand_keeps_to_loopback_and_its_key_out_of_ps() -> None:
    """Prompts reach the model server in clear, and a key on a command line shows in `ps`."""
    starts = [
        line for _, block in shell_blocks() for line in block.splitlines() if "vllm serve" in line
    ]
    assert starts
    for line in starts:
        assert "--host 127.0.0.1" in line, line
        assert "--api-key" not in line, line
