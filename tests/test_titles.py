"""A conversation's title: what the model is asked, and how its reply becomes a short name."""

from __future__ import annotations

import pytest

from services.titles import EXCERPT_CHARS, TITLE_CHARS, TITLE_PROMPT, clean_title, title_messages


@pytest.mark.parametrize(
    ("reply", "title"),
    [
        ('"Capital of France."', "Capital of France"),
        ("Title: Trip to Almaty\nA second line the model added", "Trip to Almaty"),
        ("**«Рецепт борща»**", "Рецепт борща"),
        ("\n\n  Тақырып: Алматыға саяхат  \n", "Алматыға саяхат"),
        ("A  title\twith   odd spacing", "A title with odd spacing"),
        ("", None),
        ('  "" \n ** ', None),
        ("\u200b\u200f\ufeff", None),  # only invisible characters: no title
        ("\u202eevil\u202c name", "evil name"),  # no override turns the reply around it
        ("\u2067Trip\u2069 plan\u200b", "Trip plan"),
        ("Bell\x07and\x00null", "Bell and null"),
        ("\ud800Lone surrogate", "Lone surrogate"),  # half a character: nothing to show
        ("Family 👨\u200d👩\u200d👧", "Family 👨\u200d👩\u200d👧"),  # joiners kept
    ],
)
def test_the_reply_becomes_a_clean_title(reply: str, title: str | None) -> None:
    assert clean_title(reply) == title


def test_a_long_reply_is_cut_at_a_word_with_an_ellipsis() -> None:
    title = clean_title("An unusually long title that keeps going well past forty characters")
    assert title == "An unusually long title that keeps…"
    assert title is not None
    assert len(title) <= TITLE_CHARS
    unbroken = clean_title("x" * 100)
    assert unbroken == "x" * (TITLE_CHARS - 1) + "…"


def test_the_request_shows_the_exchange_cut_to_an_excerpt() -> None:
    (message,) = title_messages("q" * 2000, "a" * 2000) or []
    assert message["role"] == "user"
    assert message["content"].startswith(TITLE_PROMPT)
    assert "q" * EXCERPT_CHARS in message["content"]
    assert "q" * (EXCERPT_CHARS + 1) not in message["content"]
    assert "a" * EXCERPT_CHARS in message["content"]
    assert "a" * (EXCERPT_CHARS + 1) not in message["content"]
