"""The playground page's readable math (rich.js), run in Node: LaTeX in, text out.

The function only builds strings, so Node runs the page's own file with a bare ``window``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.harness import REPO
from tests.miniapp import node_ready

NODE = node_ready()
RICH_JS = REPO / "playground" / "static" / "rich.js"
RUN = """
const fs = require("node:fs");
const vm = require("node:vm");
const window = {};
vm.runInNewContext(fs.readFileSync(process.argv[1], "utf8"), { window });
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map((latex) => window.VeilRich.readableMath(latex))));
"""

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js 20 or later")


async def readable(cases: list[str]) -> list[str]:
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        "-e",
        RUN,
        str(RICH_JS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(json.dumps(cases).encode())
    assert process.returncode == 0, err.decode()
    result: list[str] = json.loads(out)
    return result


async def test_known_commands_read_as_symbols_and_others_as_typed() -> None:
    cases = [
        "A = \\pi r^2",
        "\\frac{1}{3}",
        # Names an object has of its own (not symbols) stay as typed, never a function's text.
        "\\constructor x",
        "\\toString + \\valueOf",
        "\\hasOwnProperty",
    ]
    assert await readable(cases) == [
        "A = πr²",
        "1/3",
        "\\constructor x",
        "\\toString + \\valueOf",
        "\\hasOwnProperty",
    ]
