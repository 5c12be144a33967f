"""Model Markdown becomes Telegram text and entities, cut into messages Telegram accepts.

Copyright 2026 the Veil authors. Licensed under the Apache License 2.0.
"""

from __future__ import annotations

import itertools
import random
import time

import pytest

from bot.formatting import (
    MAX_ENTITIES,
    TELEGRAM_LIMIT,
    Entity,
    Rendered,
    plain_parts,
    preview,
    render,
    render_parts,
    split,
    utf16_len,
)
from bot.rich import rich_parts
from playground.text import shows_nothing

EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇺🇦", "❤️", "\U0001d518", "中", "é", "漢字"]


def entity_text(piece: Rendered, entity: Entity) -> str:
    """The characters an entity covers, read the way Telegram reads them (UTF-16)."""
    units = piece.text.encode("utf-16-le")
    covered = units[2 * entity.offset : 2 * (entity.offset + entity.length)]
    return covered.decode("utf-16-le")  # strict: raises if a surrogate pair is cut


def assert_sendable(piece: Rendered, limit: int = TELEGRAM_LIMIT) -> None:
    """What Telegram checks: size, non-blank text, entities inside it on whole characters."""
    assert not shows_nothing(piece.text)  # as the fake judges it, after tdlib
    assert piece.text == piece.text.strip()  # what Telegram keeps, so offsets hold
    assert utf16_len(piece.text) <= limit
    piece.text.encode("utf-8")  # no lone surrogate
    for entity in piece.entities:
        assert entity.length > 0
        assert entity.offset >= 0
        assert entity.offset + entity.length <= utf16_len(piece.text)
        assert entity_text(piece, entity)


def assert_nothing_lost(original: str, pieces: list[str]) -> None:
    """The pieces, in order, are the original with only whitespace dropped between them.

    Or a piece of invisible characters alone (a zero-width joiner cut off at a tiny limit),
    which Telegram would refuse as an empty message.
    """
    position = 0
    for piece in pieces:
        found = original.find(piece, position)
        assert found >= 0
        assert shows_nothing(original[position:found])
        position = found + len(piece)
    assert shows_nothing(original[position:])


def dice(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not secrets


def only(piece: Rendered, kind: str) -> Entity:
    matching = [e for e in piece.entities if e.type == kind]
    assert len(matching) == 1, piece.entities
    return matching[0]


# --- utf16_len and Entity --------------------------------------------------------------------


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("中é") == 2
    assert utf16_len("😀") == 2
    assert utf16_len("👨‍👩‍👧") == 8  # three emoji and two joiners


def test_entity_to_api_leaves_out_empty_fields() -> None:
    assert Entity("bold", 1, 2).to_api() == {"type": "bold", "offset": 1, "length": 2}
    link = Entity("text_link", 0, 4, url="https://example.com")
    assert link.to_api() == {
        "type": "text_link",
        "offset": 0,
        "length": 4,
        "url": "https://example.com",
    }
    assert Entity("pre", 0, 3, language="go").to_api()["language"] == "go"


# --- render -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "text", "kind", "covered"),
    [
        ("say **loud** now", "say loud now", "bold", "loud"),
        ("say *soft* now", "say soft now", "italic", "soft"),
        ("say _soft_ now", "say soft now", "italic", "soft"),
        ("say ~~gone~~ now", "say gone now", "strikethrough", "gone"),
        ("run `ls -la` now", "run ls -la now", "code", "ls -la"),
        ("## Setup\n\nfirst", "Setup\n\nfirst", "bold", "Setup"),
        ("> wise words\n\nme", "wise words\n\nme", "blockquote", "wise words"),
        ("**😀 hi** there", "😀 hi there", "bold", "😀 hi"),
    ],
)
def test_render_formats_inline_markdown(markdown: str, text: str, kind: str, covered: str) -> None:
    rendered = render(markdown)
    assert rendered.text == text
    assert entity_text(rendered, only(rendered, kind)) == covered


def test_render_turns_a_link_into_a_text_link() -> None:
    rendered = render("see [the docs](https://example.com/a?b=1) here")
    assert rendered.text == "see the docs here"
    link = only(rendered, "text_link")
    assert entity_text(rendered, link) == "the docs"
    assert link.url == "https://example.com/a?b=1"


def test_render_keeps_link_text_but_drops_urls_telegram_rejects() -> None:
    rendered = render(
        "[jump](#section) [run](javascript:alert(1)) [rel](/docs) [host](https:///x) "
        "[ok](tg://resolve?domain=veil) [ftp](ftp://files.example.org/a)"
    )
    assert rendered.text == "jump run rel host ok ftp"
    assert [e.url for e in rendered.entities] == ["tg://resolve?domain=veil"]


def test_render_drops_links_to_hosts_telegram_refuses() -> None:
    # tdlib's check_link refuses a web host without a dot ("Wrong HTTP URL"), a port out of
    # range and a character outside RFC 3986: the whole message was refused, and the answer
    # went out plain from that part on, its code blocks unformatted.
    refused = (
        "http://localhost:3000",
        "http://grafana:3000/d/x",
        "https://example.org:99999/",
        "https://example.org:0/",
        "http://a{b}.example.org/",
        "http://[::zz]/",
    )
    for url in refused:
        assert render(f"[app]({url})") == Rendered("app", ()), url
    taken = ("http://127.0.0.1:8080/", "https://пример.рф/", "http://[::1]:8080/", "HTTPS://A.b")
    for url in taken:
        assert [e.url for e in render(f"[app]({url})").entities] == [url], url


def test_render_drops_tg_links_and_users_telegram_refuses() -> None:
    # tdlib's check_link: a tg: host of letters, digits, "-" and "_" alone, and a user part
    # of RFC 3986's characters; anything else refused the whole message.
    refused = ("tg://t.me/veil", "tg:example.com", "tg://", "tg:user@host", "ton://x:80/")
    for url in (*refused, "https://a@b@example.org/", 'https://us"er@example.org/'):
        assert render(f"[app]({url})") == Rendered("app", ()), url
    taken = ("tg:resolve?domain=veil", "TON://transfer/EQx?amount=1", "tonsite://site.ton")
    for url in (*taken, "https://user:pa%20ss@example.org/"):
        assert [e.url for e in render(f"[app]({url})").entities] == [url], url


def test_a_bare_address_keeps_its_underscores_and_stars() -> None:
    # Telegram links an address written bare by itself, but the parser read the marks in one
    # as emphasis first: "…#object.__init__" showed as "…#object.init", "init" in bold, and
    # the link Telegram made led elsewhere. Emphasis around a whole address stays.
    for url in (
        "https://docs.python.org/3/reference/datamodel.html#object.__init__",
        "https://github.com/o/r/blob/main/src/__init__.py",
        "www.example.com/_drafts_/x",
        "https://example.com/*all*/files",
        "https://пример.рф/__путь__",
    ):
        assert render(f"See {url} for more.") == Rendered(f"See {url} for more.", ()), url
        assert preview(f"See {url}").text == f"See {url}", url
    around = render("**https://example.com/a_b** and _www.example.com/x_y_, __bold__")
    assert around.text == "https://example.com/a_b and www.example.com/x_y, bold"
    assert [(e.type, entity_text(around, e)) for e in around.entities] == [
        ("bold", "https://example.com/a_b"),
        ("italic", "www.example.com/x_y"),
        ("bold", "bold"),
    ]
    assert render("`https://example.com/__a__` and x__b__").text == (
        "https://example.com/__a__ and x__b__"
    )


def test_render_fenced_code_is_pre_with_language() -> None:
    rendered = render("Try:\n\n```python\ndef f():\n    return 1\n```\n\nDone.")
    assert rendered.text == "Try:\n\ndef f():\n    return 1\n\nDone."
    pre = only(rendered, "pre")
    assert pre.language == "python"
    assert entity_text(rendered, pre) == "def f():\n    return 1"


def test_render_code_without_language_has_none() -> None:
    rendered = render("```\nplain\n```")
    assert rendered.text == "plain"
    assert only(rendered, "pre").to_api() == {"type": "pre", "offset": 0, "length": 5}


def test_render_lists_keep_bullets_and_numbers_as_text() -> None:
    rendered = render("- apples\n- pears\n\n1. wash\n2. eat")
    assert rendered.text == "• apples\n• pears\n\n1. wash\n2. eat"
    assert rendered.entities == ()


def test_render_headings_are_bold_only() -> None:
    rendered = render("# Title\n\n### Part")
    assert rendered.text == "Title\n\nPart"
    assert {e.type for e in rendered.entities} == {"bold"}


def test_render_nested_quotes_become_one_quote() -> None:
    rendered = render("> outer\n> > inner\n\nafter")
    quotes = [e for e in rendered.entities if e.type == "blockquote"]
    assert len(quotes) == 1
    assert entity_text(rendered, quotes[0]) == "outer\ninner"


def test_render_entity_offsets_count_utf16_units() -> None:
    rendered = render("👍🏽👍🏽 **bold** `😀`")
    assert rendered.text == "👍🏽👍🏽 bold 😀"
    assert only(rendered, "bold").offset == 9  # four astral characters and a space
    assert entity_text(rendered, only(rendered, "code")) == "😀"
    assert only(rendered, "code").length == 2


@pytest.mark.parametrize(
    "markdown",
    [
        "**unclosed bold",
        "*a _b* c_",
        "```python\nnever closed",
        "```",
        "``",
        "[stray [brackets]] ]( (",
        "[text](",
        "![](",
        "> > > >",
        "||",
        "$$ \\frac{1}{",
        "| a | b |\n|---|",
        "<b>html</b> & &amp; &#xD800;",
        "\ud83d\ude00 lone \ud800 surrogate \udfff",
        "\x00\x01\x1b[31m",
        "*" * 500,
        "[" * 300 + "]" * 300,
        "- " * 400,
        "\n\n\n   \n",
        "",
    ],
)
def test_render_never_raises_on_malformed_markdown(markdown: str) -> None:
    rendered = render(markdown)
    rendered.text.encode("utf-8")
    assert rendered.text == rendered.text.strip()
    for entity in rendered.entities:
        assert entity.length > 0
        assert entity.offset + entity.length <= utf16_len(rendered.text)


def test_render_keeps_unclosed_markup_as_text() -> None:
    assert render("**not closed").text == "**not closed"
    unclosed = render("Look:\n```js\nlet x = 1")
    assert unclosed.text == "Look:\nlet x = 1"
    assert only(unclosed, "pre").language == "js"


# --- split ------------------------------------------------------------------------------------


def paragraphs(count: int, seed: int) -> list[str]:
    """Paragraphs of a few lines each, so a cut at a mere line break would show."""
    rng = dice(seed)
    words = ["alpha", "beta", "gamma", "delta", "veil", "answer", "model", "token"]
    return [
        f"Paragraph {i}: "
        + "\n".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
            for _ in range(rng.randint(1, 4))
        )
        + "."
        for i in range(count)
    ]


def test_long_answer_splits_at_paragraph_breaks() -> None:
    paras = paragraphs(40, seed=1)
    markdown = "\n\n".join(paras)
    assert len(markdown) > 10_000
    parts = render_parts(markdown)
    assert len(parts) >= 3
    for part in parts:
        assert_sendable(part)
        assert set(part.text.split("\n\n")) <= set(paras)  # whole paragraphs only
    assert_nothing_lost(markdown, [p.text for p in parts])
    # Each piece is filled: the next paragraph would not have fitted.
    for part, following in itertools.pairwise(parts):
        first = following.text.split("\n\n")[0]
        assert utf16_len(part.text) + 2 + utf16_len(first) > TELEGRAM_LIMIT


def test_split_returns_short_text_as_is_and_blank_text_as_nothing() -> None:
    rendered = render("**hi**")
    assert split(rendered) == [rendered]
    assert split(Rendered("", ())) == []
    assert split(Rendered(" \n\n ", ())) == []
    # Markup that renders to nothing visible is shown as written, never as no message at all.
    assert render_parts("```\n```") == [Rendered("```\n```", ())]


def test_invisible_characters_alone_are_shown_by_their_code_points() -> None:
    # Telegram refuses a text of zero-width spaces as empty ("message text is empty").
    assert render_parts("\u200b") == [Rendered("U+200B", ())]
    assert render_parts("\u2800 \ufeff\ufeff") == [Rendered("U+2800 U+FEFF \u00d72", ())]
    assert render_parts("\u200b" * 9000) == [Rendered("U+200B \u00d79000", ())]
    assert render_parts("\u200bhi") == [Rendered("\u200bhi", ())]  # something shows
    assert rich_parts("\u200b\n\n\u200d") == []  # left to the rendering above
    assert preview("\u200b").text == "U+200B"


def test_a_piece_telegram_would_hold_empty_is_left_out() -> None:
    text = "x" * 4000 + "\n\n" + "\u200b" * 4000 + "\n\n" + "y" * 4000
    assert [piece.text for piece in split(Rendered(text, ()))] == ["x" * 4000, "y" * 4000]
    assert split(Rendered("\u200b\u200e", ())) == []


def test_split_falls_back_to_line_then_sentence_then_space_then_hard() -> None:
    lines = "\n".join(f"line {i} " + "x" * 30 for i in range(10))
    line_parts = split(Rendered(lines, ()), 100)
    assert all(p.text.startswith("line") and p.text.endswith("x" * 30) for p in line_parts)
    sentences = " ".join(f"Sentence number {i} ends here." for i in range(20))
    for part in split(Rendered(sentences, ()), 100)[:-1]:
        assert part.text.endswith("here.")
    words = " ".join(f"word{i}" for i in range(100))
    parts = split(Rendered(words, ()), 50)
    assert all(p.text.split(" ")[-1].startswith("word") for p in parts)
    assert " ".join(p.text for p in parts) == words
    solid = "y" * 250
    assert [len(p.text) for p in split(Rendered(solid, ()), 100)] == [100, 100, 50]


def test_split_prefers_a_late_line_break_to_an_early_paragraph_break() -> None:
    text = "Intro.\n\n" + "\n".join(f"• item {i:02}" for i in range(30))
    parts = split(Rendered(text, ()), 200)
    assert utf16_len(parts[0].text) > 100  # not just "Intro."
    assert_nothing_lost(text, [p.text for p in parts])


def test_entity_crossing_a_cut_becomes_two_entities() -> None:
    sentences = " ".join(f"Bold sentence {i}." for i in range(30))
    rendered = render(f"Start **{sentences}** end")
    parts = split(rendered, 120)
    assert len(parts) > 2
    bold_text = ""
    for part in parts:
        assert_sendable(part, 120)
        bold_text += " " + "".join(entity_text(part, e) for e in part.entities)
    assert bold_text.split() == sentences.split()
    assert parts[1].entities[0].offset == 0  # the continuation starts bold


def test_code_block_that_fits_is_never_cut() -> None:
    code = "\n".join(f"print({i})" for i in range(300))  # about 3 000 units
    markdown = "Intro text.\n\n" + "word " * 200 + "\n\n```python\n" + code + "\n```\n\nBye."
    parts = render_parts(markdown)
    whole = [p for p in parts if any(e.type == "pre" for e in p.entities)]
    assert len(whole) == 1
    assert entity_text(whole[0], only(whole[0], "pre")) == code
    assert only(whole[0], "pre").language == "python"
    assert_nothing_lost(render(markdown).text, [p.text for p in parts])


def long_code(functions: int, between: str = "\n\n") -> str:
    return between.join(
        f"def step_{i}(x):\n    y = x * {i}\n    if y > {i}:\n        return y\n    return -y"
        for i in range(functions)
    )


@pytest.mark.parametrize("between", ["\n\n", "\n"])
def test_code_block_longer_than_limit_is_cut_at_lines_into_pre_blocks(between: str) -> None:
    code = long_code(200, between)
    markdown = f"Here:\n\n```python\n{code}\n```\n\nThat is all."
    rendered = render(markdown)
    parts = split(rendered)
    assert len(parts) >= 3
    pieces_of_code: list[str] = []
    for part in parts:
        assert_sendable(part)
        assert "```" not in part.text
        for pre in (e for e in part.entities if e.type == "pre"):
            assert pre.language == "python"
            pieces_of_code.append(entity_text(part, pre))
    # Every cut fell before a top-level line, so no piece starts with indentation that
    # Telegram would trim, and the pieces of code add up to the code, blank lines aside.
    assert all(chunk.startswith("def step_") for chunk in pieces_of_code)
    assert between.join(pieces_of_code) == code
    assert_nothing_lost(rendered.text, [p.text for p in parts])


def test_code_block_with_no_flush_line_is_still_cut_at_line_breaks() -> None:
    lines = [f"    value_{i} = compute({i})" for i in range(600)]
    rendered = render("```py\n" + "\n".join(lines) + "\n```")
    parts = split(rendered, 1000)
    assert len(parts) >= 15
    for part in parts:
        assert_sendable(part, 1000)
        pre = only(part, "pre")
        assert pre.language == "py"
        assert {line.strip() for line in entity_text(part, pre).split("\n")} <= {
            line.strip() for line in lines
        }
    assert_nothing_lost(rendered.text, [p.text for p in parts])


def test_emoji_text_is_never_cut_inside_a_surrogate_pair() -> None:
    rng = dice(7)
    for limit in (2, 3, 5, 17, 64, 101):
        text = "".join(rng.choice([*EMOJI, " ", "\n", "a"]) for _ in range(300))
        rendered = render(f"**{text.strip()}**")
        parts = split(rendered, limit)
        assert parts
        for part in parts:
            assert_sendable(part, limit)
        assert_nothing_lost(rendered.text, [p.text for p in parts])
    only_emoji = "😀" * 5000
    parts = split(Rendered(only_emoji, ()))
    assert [utf16_len(p.text) for p in parts] == [4096, 4096, 1808]


def test_hard_cut_keeps_emoji_sequences_together() -> None:
    family = "👨‍👩‍👧"  # three emoji joined by two zero-width joiners: 8 units
    for limit in range(40, 56):
        parts = split(Rendered(family * 40, ()), limit)
        assert all(p.text == family * (len(p.text) // len(family)) for p in parts), limit
    flags = "🇺🇦🇵🇱" * 30  # each flag is two regional indicator letters
    for limit in range(5, 20):
        parts = split(Rendered(flags, ()), limit)
        assert all(len(p.text) % 2 == 0 for p in parts), limit
        assert "".join(p.text for p in parts) == flags


def test_hard_cut_stops_before_a_code_block_that_fits() -> None:
    text = "a" * 80 + "\u00a0" + "b" * 19
    rendered = Rendered(text, (Entity("pre", 81, 19, language="c"),))
    parts = split(rendered, 90)
    assert [p.text for p in parts] == ["a" * 80, "b" * 19]
    assert parts[1].entities == (Entity("pre", 0, 19, language="c"),)


def test_split_rejects_a_limit_too_small_to_progress() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        split(Rendered("abc", ()), 1)


def random_markdown(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(1, 25)):
        words = [rng.choice(["word", "**bold**", "_it_", "`c`", "[l](https://e.x)", *EMOJI])]
        words += [rng.choice(["alpha", "beta", "🙂", "x.", "y!", "中文。"]) for _ in range(40)]
        kind = rng.randrange(6)
        line = " ".join(words)
        if kind == 0:
            code = "\n".join(" " * rng.randrange(6) + line for _ in range(rng.randint(1, 60)))
            blocks.append(f"```{rng.choice(['', 'py', 'rust'])}\n{code}\n```")
        elif kind == 1:
            blocks.append("\n".join(f"- {line}" for _ in range(rng.randint(1, 5))))
        elif kind == 2:
            blocks.append("> " + line)
        elif kind == 3:
            blocks.append("## " + line[:40])
        else:
            blocks.append(line)
    return "\n\n".join(blocks)


def test_random_answers_always_split_into_sendable_pieces() -> None:
    rng = dice(2026)
    for _ in range(40):
        markdown = random_markdown(rng)
        rendered = render(markdown)
        for limit in (300, 1000, TELEGRAM_LIMIT):
            parts = split(rendered, limit)
            for part in parts:
                assert_sendable(part, limit)
            assert_nothing_lost(rendered.text, [p.text for p in parts])
            for part in parts:
                for pre in (e for e in part.entities if e.type == "pre"):
                    covered = entity_text(part, pre)
                    assert covered in rendered.text


# --- plain_parts ------------------------------------------------------------------------------


def test_plain_parts_split_raw_text_by_the_same_rules() -> None:
    raw = "\n\n".join(paragraphs(40, seed=3)) + " **raw** `kept` 😀"
    parts = plain_parts(raw)
    assert len(parts) >= 3
    assert all(utf16_len(p) <= TELEGRAM_LIMIT for p in parts)
    assert parts[-1].endswith("**raw** `kept` 😀")
    assert_nothing_lost(raw, parts)
    assert "\n\n".join(parts) == raw


def test_plain_parts_respects_small_limits_and_blank_input() -> None:
    rng = dice(11)
    text = "".join(rng.choice([*EMOJI, " ", "\n", "ab", ". "]) for _ in range(2000))
    for limit in (2, 7, 50, 333):
        parts = plain_parts(text, limit)
        assert all(0 < utf16_len(p) <= limit and p.strip() for p in parts)
        assert_nothing_lost(text, parts)
    assert plain_parts("") == []
    assert plain_parts(" \n ") == []


def test_plain_parts_repairs_surrogates_instead_of_cutting_them() -> None:
    parts = plain_parts("\ud83d\ude00" * 3 + "\ud800", 2)
    assert parts == ["😀", "😀", "😀", "\ufffd"]


# --- preview ----------------------------------------------------------------------------------


def test_preview_of_half_written_fence_is_an_open_code_block() -> None:
    draft = preview("Here you go:\n\n```python\ndef f():\n    return 1")
    assert draft.text == "Here you go:\n\ndef f():\n    return 1"
    pre = only(draft, "pre")
    assert pre.language == "python"
    assert entity_text(draft, pre) == "def f():\n    return 1"


def test_preview_hides_a_closing_fence_still_being_typed() -> None:
    draft = preview("```sh\nls -la\n``")
    assert draft.text == "ls -la"
    assert entity_text(draft, only(draft, "pre")) == "ls -la"
    assert preview("```sh\nls -la\n```\nDone").text == "ls -la\nDone"


def test_preview_of_short_answer_matches_render() -> None:
    markdown = "Some **bold** and a list:\n\n- one\n- two"
    assert preview(markdown) == render(markdown)
    assert preview("") == Rendered("", ())


def test_preview_of_long_answer_shows_the_tail_from_a_clean_boundary() -> None:
    paras = paragraphs(80, seed=5)
    markdown = "\n\n".join(paras)
    draft = preview(markdown)
    assert_sendable(draft)
    assert utf16_len(draft.text) > TELEGRAM_LIMIT // 2
    assert draft.text.endswith(paras[-1])
    assert set(draft.text.split("\n\n")) <= set(paras)


def test_a_preview_holds_no_more_entities_than_telegram_applies() -> None:
    # Telegram applies a message's first 100 entities: a draft of 300 bold words showed the
    # code block being written under them as plain text.
    lines = [f"- **w{n}** and **v{n}**" for n in range(150)]
    markdown = "\n".join(lines) + "\n\n```python\nprint(1)\n```"
    draft = preview(markdown)
    assert_sendable(draft)
    assert len(draft.entities) == MAX_ENTITIES - 1  # whole lines: two entities each
    assert draft.entities[-1] == Entity("pre", utf16_len(draft.text) - 8, 8, language="python")
    assert draft.text.startswith("• w101 and v101\n")  # from a clean boundary: a whole line
    assert preview(markdown, limit=20).text == "print(1)"


def test_preview_of_long_answer_matches_the_tail_of_the_full_render() -> None:
    rng = dice(9)
    for _ in range(8):
        markdown = random_markdown(rng) * 6
        full = render(markdown)
        for limit in (500, TELEGRAM_LIMIT):
            draft = preview(markdown, limit)
            assert_sendable(draft, limit)
            assert full.text.endswith(draft.text)


def test_preview_inside_a_long_open_code_block_shows_its_last_lines() -> None:
    lines = [f"step_{i}()" for i in range(2000)]
    draft = preview("Intro\n\n```go\n" + "\n".join(lines))
    assert_sendable(draft)
    pre = only(draft, "pre")
    assert pre.language == "go"
    assert draft.text.endswith("step_1999()")
    assert set(draft.text.split("\n")) <= set(lines)  # whole lines only


def test_preview_never_raises_while_an_answer_streams_in() -> None:
    markdown = random_markdown(dice(4)) + "\n\n```py\nunfinished = [**x"
    for end in range(0, len(markdown), 37):
        draft = preview(markdown[:end], 600)
        assert utf16_len(draft.text) <= 600
        for entity in draft.entities:
            assert entity_text(draft, entity)


def test_preview_never_starts_inside_a_long_code_block() -> None:
    code = long_code(300)  # blank lines and top-level lines inside the fence
    draft = preview("Intro\n\n```python\n" + code + "\n```")
    assert_sendable(draft)
    pre = only(draft, "pre")
    assert pre.language == "python"
    assert pre.offset == 0
    assert pre.length == utf16_len(draft.text)
    assert code.endswith(draft.text)


def test_preview_reads_further_back_when_the_tail_renders_short() -> None:
    # Each paragraph is ~100 characters of Markdown but only a word of text.
    markdown = "\n\n".join(f"[w{i:03}](https://example.com/{'x' * 80})" for i in range(200))
    draft = preview(markdown, 300)
    assert utf16_len(draft.text) > 150
    assert draft.text.endswith("w199")
    assert all(e.type == "text_link" for e in draft.entities)


def test_html_the_model_writes_is_shown_as_written() -> None:
    block = render("<div>\nThe kettledrum costs 42.\n</div>\n\nUse List<String> here.")
    assert block.text == "<div>\nThe kettledrum costs 42.\n</div>\n\nUse List<String> here."
    assert render("Hidden <!-- tangerine --> comment").text == "Hidden <!-- tangerine --> comment"
    spoiler = render("a <tg-spoiler>secret</tg-spoiler> b")  # the converter's own HTML stays
    assert spoiler.text == "a secret b"
    assert [(e.type, e.offset, e.length) for e in spoiler.entities] == [("spoiler", 2, 6)]
    cell = render("| a |\n|---|\n| x<br>y |")  # a break in a cell must not leave the table
    assert "x y" in cell.text
    assert [e.type for e in cell.entities] == ["pre"]
    assert render("#").text == "#"


def test_thousands_of_empty_blocks_render_in_linear_time() -> None:
    # Each empty block made the converter look back over all the ones before it: 12,000 took
    # about 14 s of the event loop (every user's) before; well under a second now.
    markdown = "$$\n$$\n\n" * 6000 + "```\n```\n\n" * 6000
    started = time.perf_counter()
    rendered = render(markdown)
    assert time.perf_counter() - started < 5
    assert rendered.text == markdown.strip()  # nothing visible: shown as written


def test_no_piece_holds_more_entities_than_telegram_applies() -> None:
    # Telegram applies the first 100 entities of a message and ignores the rest: an answer of
    # many bold words would lose its later formatting (a code block shown as plain text).
    markdown = " ".join(f"**w{n}**" for n in range(250)) + "\n\n```python\nprint(1)\n```"
    parts = render_parts(markdown)
    assert all(len(part.entities) <= MAX_ENTITIES for part in parts)
    assert sum(len(part.entities) for part in parts) == 251
    assert parts[-1].entities[-1].type == "pre"
    for part in parts:
        assert_sendable(part)
    words = " ".join(f"w{n}" for n in range(250))
    assert_nothing_lost(words + "\n\nprint(1)", [part.text for part in parts])


def test_entities_open_across_a_cut_count_towards_the_next_piece() -> None:
    # Two entities open over the whole text, and a third inside: with room for one entity a
    # piece, each piece still holds its text (never an endless or a failed cut).
    text = "alpha beta gamma delta"
    nested = Rendered(text, (Entity("bold", 0, 22), Entity("italic", 0, 22), Entity("code", 6, 4)))
    parts = split(nested, 12, max_entities=1)
    assert " ".join(part.text for part in parts) == text
    for part in parts:
        assert_sendable(part, 12)


def test_a_draft_of_invisible_characters_alone_is_no_draft() -> None:
    # A model repeating a zero-width space: the preview's last 4096 units were invisible
    # alone, and Telegram refused each progress edit of an inline or group answer as empty.
    for answer in ("Hello " + "\u200b" * 5000, "**Hello**\n\n" + "\u200b\n" * 5000):
        assert preview(answer).text == "", answer[:12]
        assert render_parts(answer)[0].text.startswith("Hello")  # the final message shows it
    assert preview("Hello " + "\u200b" * 100).text == "Hello " + "\u200b" * 100
    assert preview("\u200b" * 5000).text == "U+200B \u00d75000"


def test_stars_inside_a_word_are_read_as_written() -> None:
    # CommonMark reads "2*3*4" as 2, an italic 3, 4: the product showed as "234 = 24".
    assert render("So 2*3*4 = 24, and 2**3**2 = 512.") == Rendered(
        "So 2*3*4 = 24, and 2**3**2 = 512.", ()
    )
    assert render("2***3***4 and x*y*z") == Rendered("2***3***4 and x*y*z", ())
    kept = render("*Really*: 2*3*4, **Note:** a*b*c `p*q*r`, 这是**重点**内容")
    assert kept.text == "Really: 2*3*4, Note: a*b*c p*q*r, 这是重点内容"
    assert [(e.type, entity_text(kept, e)) for e in kept.entities] == [
        ("italic", "Really"),
        ("bold", "Note:"),
        ("code", "p*q*r"),
        ("bold", "重点"),
    ]
    assert preview("Then 2*3*4").text == "Then 2*3*4"
    assert render("Then 2*3*4 ||a*b*c||").entities == (Entity("spoiler", 11, 5),)


def test_stars_inside_a_cyrillic_or_greek_word_are_read_as_written() -> None:
    # Russian and Kazakh are written with spaces as English is: "д*ш*в" (length, width,
    # height) showed as "дшв" with an italic ш. CJK and Thai, written without spaces, keep
    # their emphasis.
    assert render("Объём = д*ш*в, сумма = x*к*2, θ*φ*r").text == (
        "Объём = д*ш*в, сумма = x*к*2, θ*φ*r"
    )
    assert render("Объём = д*ш*в").entities == ()
    kept = render("这是*重点*内容, ภาษา*ไทย*ดี, *Важно*: **слово**")
    assert kept.text == "这是重点内容, ภาษาไทยดี, Важно: слово"
    assert [e.type for e in kept.entities] == ["italic", "italic", "italic", "bold"]
