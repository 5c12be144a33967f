"""review22f: a ``<details>`` tag shown in code opens no details block for the thinking mark.

``bot.rich.marked`` writes the model's 💭 as ``QUOTED`` inside its quotes and details blocks,
and reading Veil's rich answer back turns it into ``MARK`` again there only. It counted the
details blocks open by every ``<details>`` on a line, one in backticks too (an answer on HTML
shows the tag so): every line after it was marked as in a block never closed, and a paragraph's
or a table cell's 💭 outside any block reached the model with a no-break space, as no one wrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.rich import marked, rich_parts
from common.thought import MARK, QUOTED
from handlers.reading import words_of
from playground.rich import parse_rich
from tests.test_bot_rich_replies import BOT_ID, CATALOGS
from tests.test_small22_rich_marks import veil_s_rich

if TYPE_CHECKING:
    from collections.abc import Mapping

SHOWN_TAG = "Fold a part of an HTML page with `<details open>`"


@pytest.mark.parametrize(
    ("markdown", "sent"),
    [
        (f"Use `<details>`.\n\n{MARK}plain", None),
        (f"Use ``<details open>``.\n\n| a | b |\n|---|---|\n| {MARK}x | y |", None),
        (f"`</details>` <details>\n\n{MARK}in", f"`</details>` <details>\n\n{QUOTED}in"),
        (
            f"<details>\n\n`</details>` and {MARK}still in\n</details>\n{MARK}out",
            f"<details>\n\n`</details>` and {QUOTED}still in\n</details>\n{MARK}out",
        ),
    ],
)
def test_a_details_tag_in_code_opens_no_block(markdown: str, sent: str | None) -> None:
    assert marked(markdown) == (markdown if sent is None else sent)


def test_the_mark_after_a_tag_shown_in_code_reads_back_as_the_model_wrote_it() -> None:
    markdown = f"{SHOWN_TAG}.\n\n{MARK}a thought of the model's, in no block."
    (part,) = rich_parts(markdown)
    blocks: list[Mapping[str, object]] = [*parse_rich({"markdown": part}, draft=False)]
    read = words_of(veil_s_rich(blocks), BOT_ID, CATALOGS)
    assert read is not None
    assert QUOTED not in read
    assert f"{MARK}a thought" in read
