"""Veil's mentions taken out of a question: the rest reaches the model as written (review21f).

Entities as Telegram sends them: offsets and lengths in UTF-16 code units.
"""

from __future__ import annotations

from aiogram.types import MessageEntity, User

from handlers.replies import names_veil, without_mentions

ME = User(id=4242, is_bot=True, first_name="Veil", username="veil_test_bot")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def mentions(text: str, name: str = "@veil_test_bot") -> list[MessageEntity]:
    """The mention entities Telegram sends for every ``name`` in ``text``."""
    found, start = [], text.find(name)
    while start >= 0:
        found.append(MessageEntity(type="mention", offset=utf16(text[:start]), length=utf16(name)))
        start = text.find(name, start + len(name))
    return found


def test_code_on_the_lines_after_a_mention_keeps_its_first_line_indented() -> None:
    text = "@veil_test_bot\n    def f():\n        return 1"
    assert without_mentions(text, mentions(text)) == "    def f():\n        return 1"


def test_a_mention_ending_a_crlf_line_leaves_no_blank_before_the_break() -> None:
    text = "what does this print @veil_test_bot\r\nprint(1)"
    assert without_mentions(text, mentions(text)) == "what does this print\r\nprint(1)"


def test_mentions_in_a_row_after_emoji_and_a_text_mention_are_taken_out_alone() -> None:
    text = "👩‍👩‍👧 @veil_test_bot @veil_test_bot, Veil what is 🦀?"
    veil = text.index("Veil ")
    entities = [
        *mentions(text),
        MessageEntity(type="text_mention", offset=utf16(text[:veil]), length=4, user=ME),
        MessageEntity(type="code", offset=utf16(text[: text.index("🦀")]), length=2),
    ]
    ours = [entity for entity in entities if names_veil(entity, text, ME)]
    assert len(ours) == 3
    assert without_mentions(text, ours) == "👩‍👩‍👧 what is 🦀?"


def test_a_mention_written_in_code_is_no_entity_and_stays() -> None:
    # Telegram sends no mention entity inside a code entity: the name is part of the code.
    text = "why does `@veil_test_bot` fail?"
    code = MessageEntity(type="code", offset=9, length=16)
    assert [entity for entity in [code] if names_veil(entity, text, ME)] == []
    assert without_mentions(text, []) == text
