"""``ThinkTags``: thinking written into an answer's text, split from it as deltas arrive."""

from __future__ import annotations

import pytest

from services.think_tags import OPEN, Piece, ThinkTags


def split(*deltas: str) -> tuple[str, str]:
    """(the answer's text, its thinking) from ``deltas``, each kind joined."""
    tags = ThinkTags()
    pieces: list[Piece] = []
    for delta in deltas:
        pieces += tags.feed(delta)
    pieces += tags.end()
    text = "".join(piece for kind, piece in pieces if kind == "text")
    thought = "".join(piece for kind, piece in pieces if kind == "thought")
    return text, thought


def test_a_thinking_block_opening_the_answer_is_thinking() -> None:
    assert split("<think>Greet them.</think>\n\nHello!") == ("Hello!", "Greet them.")


@pytest.mark.parametrize(
    "deltas",
    [
        ("\n<", "thi", "nk>Greet", " them.</", "thi", "nk>", "\n", "\nHello!"),
        ("<think", ">Greet them.<", "/think>Hello!"),
        tuple("<think>Greet them.</think>Hello!"),  # a character a delta
    ],
)
def test_tags_split_across_deltas_are_tags(deltas: tuple[str, ...]) -> None:
    assert split(*deltas) == ("Hello!", "Greet them.")


def test_a_thinking_block_never_closed_is_all_thinking() -> None:
    assert split("<think>Let me see", " … still thinking", "</thi") == (
        "",
        "Let me see … still thinking</thi",
    )


def test_a_tag_in_the_middle_of_an_answer_is_text() -> None:
    answer = ("Models wrap their reasoning in ", "<think>", " and ", "</think>", " tags.")
    assert split(*answer) == ("".join(answer), "")
    assert split("Use ", "<think>", " like this.") == ("Use <think> like this.", "")


def test_text_that_only_looks_like_a_tag_at_first_is_text() -> None:
    assert split("<thi", "s is fine>") == ("<this is fine>", "")
    assert split("<", "b>bold</b>") == ("<b>bold</b>", "")
    assert split("<thi") == ("<thi", "")  # the whole answer
    assert split("  ", "Hi") == ("  Hi", "")


def test_a_less_than_inside_the_thinking_stays_thinking() -> None:
    assert split("<think>a < b and c </b", "old></think>ok") == ("ok", "a < b and c </bold>")


@pytest.mark.parametrize("after", ["<think>Greet them.</think>Hello!", "Hello!", ""])
def test_blank_deltas_opening_an_answer_are_not_scanned_again_by_each_next_one(after: str) -> None:
    # Each blank delta was joined to all before it and scanned again: 100,000 newline deltas
    # (a model stuck on blanks) kept the bot's event loop for seconds. What the next delta
    # looks at stays a tag's length; the blanks are still the text's when text follows.
    tags = ThinkTags()
    blanks = ["\n"] * 10_000
    pieces: list[Piece] = []
    for delta in blanks:
        pieces += tags.feed(delta)
        assert len(tags._held) < len(OPEN)  # what each delta scans again
    for delta in after:
        pieces += tags.feed(delta)
    pieces += tags.end()
    text = "".join(piece for kind, piece in pieces if kind == "text")
    thought = "".join(piece for kind, piece in pieces if kind == "thought")
    if after.startswith(OPEN):
        assert (text, thought) == ("Hello!", "Greet them.")
    else:
        assert (text, thought) == ("".join(blanks) + after, "")
