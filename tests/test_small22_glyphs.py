"""Text cut to a length keeps every glyph whole: titles, the thinking's summary and its tail.

An emoji may be several code points (joined by zero-width joiners, a flag's two regional
indicators or its tag characters, a skin tone, a keycap), and so may a letter with combining
marks; a cut between them showed a broken glyph, or another one, in the history list, a rich
answer's thinking summary, and the thinking's tail in a draft or a fold.
"""

from __future__ import annotations

import pytest

from bot.formatting import plain_parts, preview, render_parts, utf16_len
from bot.rich import SUMMARY_CHARS, thought_details
from bot.thinking import ELLIPSIS, tail
from common.visible import glyph_boundary
from services.titles import TITLE_CHARS, clean_title

TECHNOLOGIST = "👩\u200d💻"  # woman, zero-width joiner, laptop
KAZAKHSTAN, RUSSIA = "🇰🇿", "🇷🇺"
THUMB = "👍🏽"  # thumbs up, medium skin tone
KEYCAP = "1\ufe0f\u20e3"  # digit, emoji presentation, combining enclosing keycap
SHORT_I = "и\u0306"  # и and a combining breve: й
SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # flag and tags
GLYPHS = [TECHNOLOGIST, KAZAKHSTAN + RUSSIA, THUMB, KEYCAP, SHORT_I, SCOTLAND]
NAMES = ["zwj", "flags", "skin-tone", "keycap", "combining", "subdivision-flag"]


@pytest.mark.parametrize("glyph", GLYPHS, ids=NAMES)
def test_a_long_title_is_cut_before_a_glyph_it_cannot_hold_whole(glyph: str) -> None:
    # the glyph starts one code point before the cut: only its first code point would fit
    head = "x" * (TITLE_CHARS - 2)
    title = clean_title(f"{head}{glyph} and more words")
    assert title == head + "…"


@pytest.mark.parametrize("glyph", GLYPHS, ids=NAMES)
def test_a_title_that_holds_a_glyph_whole_keeps_it(glyph: str) -> None:
    title = clean_title(f"A {glyph} plan")
    assert title == f"A {glyph} plan"


def test_the_second_of_two_flags_is_not_half_kept() -> None:
    head = "x" * (TITLE_CHARS - 4)  # 🇰🇿 fits, 🇷🇺 would keep only its first letter
    assert clean_title(f"{head}{KAZAKHSTAN}{RUSSIA} tour") == f"{head}{KAZAKHSTAN}…"


@pytest.mark.parametrize("mark", ["#", "*"])
def test_a_keycap_of_a_mark_opening_the_title_keeps_its_mark(mark: str) -> None:
    keycap = f"{mark}\ufe0f\u20e3"
    assert clean_title(f'"{keycap} Steps to take"') == f"{keycap} Steps to take"


def test_one_glyph_longer_than_a_title_gives_no_title() -> None:
    assert clean_title("e" + "\u0301" * TITLE_CHARS) is None


@pytest.mark.parametrize("glyph", GLYPHS, ids=NAMES)
def test_the_thinking_summary_is_cut_before_a_glyph_it_cannot_hold_whole(glyph: str) -> None:
    head = "y" * (SUMMARY_CHARS - 2)
    details = thought_details(f"{head}{glyph} and then the rest of the thinking", "💭 ")
    assert f"<summary>💭 {head}…</summary>" in details


@pytest.mark.parametrize("glyph", GLYPHS, ids=NAMES)
def test_the_thinking_tail_starts_at_a_whole_glyph(glyph: str) -> None:
    end = " and so the answer is yes"
    text = f"Long thinking {glyph}{end}"
    # room for the ellipsis, the glyph's last code point and the end: not the glyph whole
    last = glyph[-1]
    kept = tail(text, utf16_len(ELLIPSIS + last + end))
    assert kept == ELLIPSIS + end.lstrip()
    whole = tail(text, utf16_len(ELLIPSIS + glyph + end))
    assert whole == ELLIPSIS + glyph + end


def test_a_glyph_boundary_is_none_inside_an_emoji_sequence() -> None:
    text = f"a{TECHNOLOGIST}{KAZAKHSTAN}{RUSSIA}{SCOTLAND}b"
    cuts = [at for at in range(len(text) + 1) if glyph_boundary(text, at)]
    starts = [0, 1, 1 + 3, 1 + 3 + 2, 1 + 3 + 4, 1 + 3 + 4 + 7, len(text)]
    assert cuts == starts


@pytest.mark.parametrize("glyph", [*GLYPHS, "क\u094d\u200dष"], ids=[*NAMES, "half-form"])
def test_a_long_answer_of_glyphs_alone_is_cut_between_them(glyph: str) -> None:
    # No space to cut at: the cut falls at the limit, moved to a glyph's edge. A subdivision
    # flag's tag characters were cut from it, the flag shown black and its tags as boxes.
    text = glyph * 400
    for pieces in (plain_parts(text, 100), [p.text for p in render_parts(text, 100)]):
        assert "".join(pieces) == text
        ends = [sum(map(len, pieces[:count])) for count in range(1, len(pieces))]
        assert all(glyph_boundary(text, end) for end in ends)
    shown = preview(text, 100).text
    assert text.endswith(shown)
    assert glyph_boundary(text, len(text) - len(shown))
