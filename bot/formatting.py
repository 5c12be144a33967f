"""Model Markdown to Telegram text and entities, cut into messages Telegram accepts.

The model writes Markdown; Telegram wants plain text plus MessageEntity records whose offsets
and lengths count UTF-16 code units. `render` converts with telegramify-markdown (entities
never fail to parse, unlike a MarkdownV2 string) and tidies the result for chat; `split` cuts
a long answer into pieces of at most `TELEGRAM_LIMIT` units at the cleanest boundary it finds,
keeping code blocks whole and every entity valid in its piece; `preview` renders the tail of
an answer that is still being written, for a live draft.

Internally everything works on Python string indices and converts to UTF-16 units only at the
edges, so a cut can never fall between the two halves of a surrogate pair.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass
from ipaddress import IPv6Address
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import SplitResult, urlsplit

import pyromark
from telegramify_markdown.config import RenderConfig
from telegramify_markdown.converter import STANDARD_OPTIONS, EventWalker
from telegramify_markdown.converter import _escape_at as escape_at
from telegramify_markdown.converter import _parse as parse_markdown
from telegramify_markdown.converter import _TextBuffer as TextBuffer

from common.thought import MARK, QUOTED, swapped
from common.visible import joined, shows_nothing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from telegramify_markdown import MessageEntity

TELEGRAM_LIMIT: Final = 4096
_MIN_LIMIT: Final = 2  # one astral character must fit, or a cut could not make progress
# Telegram applies the first 100 entities of a message and silently ignores the rest, so a
# piece holds at most this many (an answer of many bold words would lose its later code blocks).
MAX_ENTITIES: Final = 100

# Entity types we pass on. The converter marks H1/H2 with "underline" too and turns
# tg://emoji links into custom emoji, which only some bots may send: both are dropped.
_KEPT_TYPES: Final = frozenset(
    {
        "bold",
        "italic",
        "strikethrough",
        "spoiler",
        "code",
        "pre",
        "text_link",
        "blockquote",
        "expandable_blockquote",
    }
)
_QUOTES: Final = frozenset({"blockquote", "expandable_blockquote"})
# What Telegram accepts in a text_link (anything else fails the whole message), as tdlib's
# parse_url (td/utils/HttpUrl.cpp) and LinkManager::check_link read it: http or https (not
# ftp), a host of RFC 3986's characters (any non-ASCII too) with a dot in it, unless it is an
# IPv6 address (``http://localhost:3000`` is "Wrong HTTP URL"), a port of 1 to 65535, a user
# part of the host's characters and ``:``; or a tg:, ton: or tonsite: link to a plain host.
_WEB_SCHEMES: Final = frozenset({"http", "https"})
_TELEGRAM_SCHEMES: Final = frozenset({"tg", "ton", "tonsite"})
_HOST: Final = re.compile(r"(?:[a-z0-9.\-_!$,~*'();&+=]|%[0-9a-f]{2}|[^\x00-\x7f])+")
_USERINFO: Final = re.compile(r"(?:[A-Za-z0-9.\-_!$,~*'();&+=:]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")
_TG_HOST: Final = re.compile(r"[A-Za-z0-9_\-]+")
_TONSITE_HOST: Final = re.compile(r"[A-Za-z0-9_.\-]+")

_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_FLAG_LETTERS: Final = range(0x1F1E6, 0x1F200)  # regional indicators: two make a flag
_GRAPHEME_STEPS: Final = 16  # how far a hard cut may move to keep an emoji sequence whole

# Cut candidates: (pattern, where the cut falls from the match start, characters the
# pattern reads). Telegram trims whitespace at both ends of a message, so a piece that starts
# with an indented line loses that indentation: breaks before a flush line come first.
_Pattern: TypeAlias = tuple[str | re.Pattern[str], int, int]
_Bounds: TypeAlias = tuple[list[int], list[int]]
_PARAGRAPH_FLUSH, _LINE_FLUSH, _PARAGRAPH, _LINE, _SENTENCE, _SPACE = range(6)
_PATTERNS: Final[tuple[tuple[_Pattern, ...], ...]] = (
    ((re.compile(r"\n\n(?=\S)"), 0, 3),),
    ((re.compile(r"\n(?=\S)"), 0, 2),),
    (("\n\n", 0, 2),),
    (("\n", 0, 1),),
    (
        *((end + after, 1, 2) for end in ".!?" for after in " \n"),
        *((end, 1, 1) for end in "\u3002\uff01\uff1f"),  # CJK full stop, exclamation, question
    ),
    ((" ", 0, 1),),
)
_CODE_SAFE: Final = _LINE  # levels up to this one may cut a code block too long to send whole
# (level, only within the preferred half of the window): a paragraph or line break that
# leaves the piece at least half full beats one that would leave it nearly empty; sentence
# ends and spaces come only when there is no line break at all.
_STEPS: Final = (
    *((level, True) for level in range(_SENTENCE)),
    *((level, False) for level in range(_SENTENCE)),
    (_SENTENCE, True),
    (_SPACE, True),
    (_SENTENCE, False),
    (_SPACE, False),
)

# Preview: a blank line followed by a line that starts at column 0 opens a top-level block,
# where rendering may start afresh; fences decide which of those lie inside code.
_BLOCK_AFTER_BLANK: Final = re.compile(r"\n[ \t\r]*\n(?=\S)")
_FENCE: Final = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)", re.MULTILINE)
_PARTIAL_FENCE: Final = re.compile(r"(?:\A|\n)[ \t]*(?:`{1,2}|~{1,2})[ \t]*\Z")
# Emphasis that opens and closes inside a word of letters and digits (``2*3*4``).
_INTRAWORD_STAR: Final = re.compile(r"[^\W_]\*+[^\W_]")
_EMPHASIS: Final = ({"Start": "Emphasis"}, {"Start": "Strong"})
# A web address written bare in text, which Telegram links by itself, as GFM's extended
# autolinks find one: http(s):// or www. after a space, a bracket or an emphasis mark,
# up to a space; its trailing punctuation (``?!.,:;*_~'"``) and a ``)`` or ``]`` it does not
# open are the text's, not the address's.
_BARE_URL: Final = re.compile(
    r"(?<![^\W_])(?<![.:/@+\-])(?:https?://|www\.)[^\s<>]+", re.IGNORECASE
)
_URL_TAIL: Final = "?!.,:;*_~'\""
_DELIMITED: Final = (*_EMPHASIS, {"Start": "Strikethrough"})
_SPOILER_TAG: Final = re.compile(r"</?tg-spoiler>", re.IGNORECASE)
_LINE_BREAK_TAG: Final = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Entity:
    """One Bot API MessageEntity; `offset` and `length` count UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the MessageEntity dict for the Bot API, leaving out fields that are None."""
        api: dict[str, Any] = {"type": self.type, "offset": self.offset, "length": self.length}
        if self.url is not None:
            api["url"] = self.url
        if self.language is not None:
            api["language"] = self.language
        return api


@dataclass(frozen=True, slots=True)
class Rendered:
    """Plain text and the entities that format it, ready for sendMessage."""

    text: str
    entities: tuple[Entity, ...]


def utf16_len(text: str) -> int:
    """Return the length of `text` in UTF-16 code units, the unit Telegram counts in."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def render(markdown: str) -> Rendered:
    """Convert model Markdown to text and entities; never raises, bad Markdown stays text.

    HTML the model writes is shown as written (the converter would drop it, text and all), and
    Markdown that renders to nothing visible (``#``, an empty code fence) is shown as its source.
    A source of invisible characters alone (a zero-width space), which Telegram refuses as an
    empty message, is shown by their code points (``U+200B``).

    The thinking mark (``common.thought.MARK``) in a quote is written ``QUOTED`` (a no-break
    space after the emoji, which looks the same): a quote of the model's never opens with the
    mark, so it is never read back as the thinking Veil folds before an answer.
    """
    source = _scrub(markdown)
    try:
        text, raw = _convert(source)
    except Exception:  # noqa: BLE001 - third-party parser on model output: degrade to plain text
        text, raw = source, []
    if shows_nothing(text):
        text, raw = source, []  # only markup: the asker still reads what the model wrote
        if text.strip() and shows_nothing(text):
            text = _code_points(text)
    entities = _tidy(raw)
    text = _unmarked(text, entities)
    if text == text.strip():
        return Rendered(text, tuple(entities))
    doc = _Doc(text, entities)
    return doc.cut([doc.trim(0, len(text))])[0]


def split(
    rendered: Rendered, limit: int = TELEGRAM_LIMIT, max_entities: int = MAX_ENTITIES
) -> list[Rendered]:
    """Cut `rendered` into pieces of at most `limit` UTF-16 units, each one sendable.

    Cuts prefer a paragraph break, then a line break, a sentence end, a space, and only then
    any character; a code block that fits in one piece is never cut. Whitespace at the cuts
    is dropped, so an empty or blank text gives no pieces at all. A piece holds at most
    `max_entities` entities (cut before the next one starts), so Telegram applies them all.
    """
    _check(limit)
    text = rendered.text
    if (
        not shows_nothing(text)
        and not text[0].isspace()
        and not text[-1].isspace()
        and utf16_len(text) <= limit
        and len(rendered.entities) <= max_entities
    ):
        return [rendered]
    doc = _Doc(text, rendered.entities)
    return doc.cut(doc.pieces(limit, max_entities))


def render_parts(
    markdown: str, limit: int = TELEGRAM_LIMIT, max_entities: int = MAX_ENTITIES
) -> list[Rendered]:
    """Render model Markdown and split it into messages."""
    return split(render(markdown), limit, max_entities)


def plain_parts(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split raw text by the same rules as `split`, for when formatted sending fails."""
    _check(limit)
    doc = _Doc(_scrub(text), ())
    return [doc.text[lo:hi] for lo, hi in doc.pieces(limit)]


def preview(markdown: str, limit: int = TELEGRAM_LIMIT) -> Rendered:
    """Render a partial answer for a live draft, keeping its last `limit` units.

    The draft holds at most `MAX_ENTITIES` entities (Telegram ignores the rest, which would
    leave the newest text, the one being written, unformatted): the tail starts later.

    A tail of invisible characters alone, which Telegram refuses, is given as no text.

    An unclosed fence reads as an open code block, and a fence still being typed (one or two
    backticks on the last line) is left out. Long answers are rendered from a top-level block
    start near the tail, so the cost follows the draft's size rather than the answer's.
    """
    _check(limit)
    source = _PARTIAL_FENCE.sub("", markdown)
    budget = 2 * limit
    while True:
        begin = _block_start(source, len(source) - budget)
        rendered = render(source[begin:])
        if begin == 0 or utf16_len(rendered.text) >= limit:
            break
        budget *= 4
    if utf16_len(rendered.text) <= limit and len(rendered.entities) <= MAX_ENTITIES:
        return rendered
    doc = _Doc(rendered.text, rendered.entities)
    tail = doc.cut([doc.tail(limit)])[0]
    # The last `limit` units are invisible characters alone (a model repeating a zero-width
    # space): Telegram refuses such a progress edit as empty ("message text is empty"), and
    # would show such a draft as "Thinking…"; there is none, the last one stays.
    return Rendered("", ()) if shows_nothing(tail.text) else tail


def _code_points(text: str) -> str:
    """The characters of ``text`` that are not blanks, named by their code points.

    A run of one character is named once, with its count: ``U+200B \u00d79000``.
    """
    runs = groupby(char for char in text if not char.isspace())
    named = ((f"U+{ord(char):04X}", sum(1 for _ in run)) for char, run in runs)
    return " ".join(name if count == 1 else f"{name} \u00d7{count}" for name, count in named)


def _check(limit: int) -> None:
    if limit < _MIN_LIMIT:
        raise ValueError("limit must be at least 2 UTF-16 code units")


def _make_config() -> RenderConfig:
    """Telegramify's settings, tuned for chat: bold headings without emoji, plain bullets."""
    config = RenderConfig.isolated()
    symbols = config.markdown_symbol
    for level in range(1, 7):
        setattr(symbols, f"heading_level_{level}", "")
    symbols.unordered_list_item = "•"
    return config


_CONFIG: Final = _make_config()


def literal_stars(markdown: str, events: Sequence[Any] | None = None) -> str:
    """``markdown`` with emphasis inside a word escaped, so it reads as the stars written.

    CommonMark lets ``*`` emphasise inside a word, so a product written outside code,
    ``2*3*4 = 24``, showed as "234 = 24" with the 3 in italics (and ``2**3**2`` a bold 3).
    Emphasis whose opening stars follow a letter or digit and whose closing stars are
    followed by one is a product or a wildcard in chat text, hardly ever meant (the model
    emphasises ``*whole words*``): its stars are escaped, in Latin, Cyrillic or Greek
    (``д*ш*в``) alike. Emphasis in CJK or Thai text, which needs no spaces, and code and
    math are left as they are. ``events``: ``markdown``'s, where the caller parsed it already.
    """
    if _INTRAWORD_STAR.search(markdown) is None:
        return markdown
    return _escaped(markdown, events, _intraword_stars)


def literal_urls(markdown: str, events: Sequence[Any] | None = None) -> str:
    """``markdown`` with emphasis that opens or closes inside a bare web address escaped.

    Telegram links an address written bare in text by itself, but the parser read the
    underscores and stars in one as emphasis first: ``https://docs.python.org/3/reference/
    datamodel.html#object.__init__`` showed as ``…#object.init`` with "init" in bold, and
    Telegram linked the address without them. The marks of such emphasis, at both its ends,
    are escaped, so the address reads (and links) as written; emphasis around a whole
    address (``**https://example.com**``) stays. ``events``: ``markdown``'s, where the caller
    parsed it already.
    """
    if _BARE_URL.search(markdown) is None:
        return markdown
    return _escaped(markdown, events, _marks_in_urls)


def _escaped(
    markdown: str,
    events: Sequence[Any] | None,
    marks: Callable[[str, Iterable[Any]], list[int]],
) -> str:
    """``markdown`` with the marks ``marks`` finds escaped, parsed again until none is left."""
    if events is None:
        events = tuple(pyromark.events_with_range(markdown, options=STANDARD_OPTIONS))
    while offsets := marks(markdown, events):
        markdown = escape_at(markdown, offsets)
        events = tuple(pyromark.events_with_range(markdown, options=STANDARD_OPTIONS))
    return markdown


def _marks_in_urls(text: str, events: Iterable[Any]) -> list[int]:
    """UTF-8 byte offsets of the marks of every emphasis with an end inside a bare address."""
    source = text.encode("utf-8")
    starts: list[int] = []
    ends: list[int] = []
    done, at = 0, 0
    for match in _BARE_URL.finditer(text):
        at += len(text[done : match.start()].encode("utf-8"))
        done = match.start()
        starts.append(at)
        ends.append(at + len(_address(match[0]).encode("utf-8")))

    def inside(offset: int) -> bool:
        index = bisect_right(starts, offset) - 1
        return index >= 0 and offset < ends[index]

    offsets: list[int] = []
    for payload, where in events:
        if payload not in _DELIMITED:
            continue
        start, end = where["start"], where["end"]
        if inside(start) or inside(end - 1):
            offsets += _mark_run(source, start, 1)
            offsets += _mark_run(source, end - 1, -1)
    return sorted(set(offsets))


def _address(url: str) -> str:
    """``url`` as found in text, less its trailing punctuation (GFM's extended autolinks)."""
    opened = {")": url.count("("), "]": url.count("[")}
    closed = {")": url.count(")"), "]": url.count("]")}
    end = len(url)
    while end:
        char = url[end - 1]
        if char in closed and closed[char] > opened[char]:
            closed[char] -= 1  # a bracket the address did not open
        elif char not in _URL_TAIL:
            break
        end -= 1
    return url[:end]


def _mark_run(source: bytes, at: int, step: int) -> list[int]:
    """Offsets of the run of one emphasis mark (``*``, ``_`` or ``~``) from ``at`` on."""
    mark = source[at : at + 1]
    run = []
    while 0 <= at < len(source) and source[at : at + 1] == mark:
        run.append(at)
        at += step
    return run


def _intraword_stars(text: str, events: Iterable[Any]) -> list[int]:
    """UTF-8 byte offsets of the stars of every emphasis ``literal_stars`` reads as text.

    The whole run of stars at each end, so ``2***3***4`` does not leave a nested emphasis.
    """
    source = text.encode("utf-8")
    offsets: list[int] = []
    for payload, where in events:
        if payload not in _EMPHASIS:
            continue
        start, end = where["start"], where["end"]
        if (
            source[start : start + 1] == b"*"
            and _in_word(source[max(0, start - 4) : start].decode("utf-8", "ignore")[-1:])
            and _in_word(source[end : end + 4].decode("utf-8", "ignore")[:1])
        ):
            offsets += _mark_run(source, start, 1)
            offsets += _mark_run(source, end - 1, -1)
    return sorted(set(offsets))


def _in_word(char: str) -> bool:
    """Whether ``char`` is a digit, or a letter of a cased alphabet (Latin, Cyrillic, Greek).

    Not a letter of CJK or Thai, written without spaces, where emphasis inside a "word" is
    meant (nor of Arabic or Hebrew, left as they were).
    """
    return char.isdecimal() or char.lower() != char.upper()


def _convert(source: str) -> tuple[str, list[MessageEntity]]:
    r"""Telegramify's ``convert``, but the model's HTML kept as text (``_html_as_text``).

    Emphasis inside a word is read as its stars (``literal_stars``), once the converter has
    turned LaTeX (``\(…\)``) into math, so a product inside it stays the converter's.
    """
    text, events = parse_markdown(source, STANDARD_OPTIONS, latex_escape=True)
    linked = literal_urls(text, events)
    starred = literal_stars(linked, events if linked == text else None)
    if starred != text:
        text, events = parse_markdown(starred, STANDARD_OPTIONS, latex_escape=False)
    rendered, raw, _ = _Walker(_CONFIG, text).walk(tuple(_html_as_text(events)))
    return rendered, raw


class _Buffer(TextBuffer):
    """Telegramify's text buffer, counting the newlines at its end as it is written.

    Before every block the converter counts the newlines the text ends with, and its buffer
    counts them by looking back through every part written: past all the empty writes of empty
    blocks (a code fence or ``$$`` block with nothing in it) and the newlines between them.
    Thousands of such blocks took seconds of the event loop (quadratic), for every user.
    """

    __slots__ = ("_newlines",)

    def __init__(self) -> None:
        super().__init__()
        self._newlines = 0

    def write(self, text: str) -> None:
        if not text:
            return
        super().write(text)
        kept = text.rstrip("\n")
        self._newlines = len(text) - len(kept) + (0 if kept else self._newlines)

    def trailing_newline_count(self) -> int:
        return self._newlines

    def pop_last(self) -> str:
        part = super().pop_last()
        self._newlines = super().trailing_newline_count()
        return part


class _Walker(EventWalker):
    """Telegramify's event walker with ``_Buffer``."""

    def __init__(self, config: RenderConfig, source_markdown: str) -> None:
        super().__init__(config, source_markdown)
        self._buf = _Buffer()


def _html_as_text(events: Iterable[Any]) -> Iterator[Any]:
    """Parser events with HTML turned into text: an HTML block a paragraph, ``<br>`` a break.

    Telegramify ignores HTML, so ``<div>…</div>`` or ``List<String>`` written outside code would
    vanish from the answer. Only its spoiler tags, which it turns into spoilers, stay HTML.
    """
    for event in events:
        payload, where = event if isinstance(event, tuple) else (event, None)
        if payload in ({"Start": "HtmlBlock"}, {"End": "HtmlBlock"}):
            yield ({next(iter(payload)): "Paragraph"}, where)
        elif isinstance(payload, dict) and ("Html" in payload or "InlineHtml" in payload):
            html = str(next(iter(payload.values())))
            if _SPOILER_TAG.fullmatch(html.strip()):
                yield event
                continue
            if _LINE_BREAK_TAG.fullmatch(html.strip()):
                yield ("SoftBreak", where)
                continue
            for number, line in enumerate(html.removesuffix("\n").split("\n")):
                if number:
                    yield ("SoftBreak", where)
                if line:
                    yield ({"Text": line}, where)
            if "Html" in payload and html.endswith("\n"):
                yield ("SoftBreak", where)  # the next line of the same HTML block
        else:
            yield event


def _scrub(text: str) -> str:
    """Pair up surrogate code points and replace lone ones, which no encoder accepts."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _unmarked(text: str, entities: Iterable[Entity]) -> str:
    """``text`` with the thinking mark in its quotes written ``QUOTED`` (as long: entities hold).

    Every mark in a quote, not its first only: a long answer is cut into messages (``split``),
    and one of them may open inside a quote, at the mark. Not in code, which is copied byte for
    byte (formatting inside a quote already tells it from Veil's fold).
    """
    return swapped(text, entities, MARK, QUOTED)


def _tidy(raw: Iterable[MessageEntity]) -> list[Entity]:
    """Keep the entity types Telegram takes from any bot, outermost quotes only, sorted."""
    kept: list[Entity] = []
    for item in raw:
        if item.type not in _KEPT_TYPES or item.length <= 0:
            continue
        url = item.url if item.type == "text_link" else None
        if item.type == "text_link" and not _linkable(url):
            continue  # the link text stays; Telegram rejects the message for a bad URL
        language = (item.language or None) if item.type == "pre" else None
        kept.append(Entity(item.type, item.offset, item.length, url, language))
    kept.sort(key=lambda entity: (entity.offset, -entity.length))
    tidy: list[Entity] = []
    quote_end = -1
    for entity in kept:
        if entity.type in _QUOTES:
            if entity.offset < quote_end:
                continue  # Telegram does not nest quotes
            quote_end = entity.offset + entity.length
        tidy.append(entity)
    return tidy


def _linkable(url: str | None) -> bool:
    """Whether Telegram takes `url` for a text_link: a web address it can open, or tg://."""
    if not url or not url.isprintable() or any(char.isspace() for char in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises for a port out of range
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme in _TELEGRAM_SCHEMES:
        return _telegram_linkable(scheme, url[len(scheme) + 1 :])
    return scheme in _WEB_SCHEMES and _web_linkable(parts)


def _web_linkable(parts: SplitResult) -> bool:
    """Whether tdlib opens an http(s) address: its host, port and user part as it reads them."""
    host = parts.hostname
    if not host or parts.port == 0 or parts.netloc.endswith(":"):
        return False
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and _USERINFO.fullmatch(userinfo) is None:
        return False
    if ":" in host:  # an IPv6 address, its brackets taken off
        return "%" not in host and _is_ipv6(host)
    return "." in host and host != "." and _HOST.fullmatch(host) is not None


def _telegram_linkable(scheme: str, rest: str) -> bool:
    """Whether tdlib takes ``scheme:rest`` (tg:, ton:, tonsite:) for a link.

    A host of ASCII letters, digits, ``-`` and ``_`` (dots too under tonsite:), with no user,
    port or protocol of its own: ``tg:example.com``, ``tg://`` and ``tg:user@x`` refuse the
    whole message.
    """
    host = re.match(r"[^/?#]*", rest.removeprefix("//"))
    allowed = _TONSITE_HOST if scheme == "tonsite" else _TG_HOST
    return host is not None and host[0] != "." and allowed.fullmatch(host[0]) is not None


def _is_ipv6(host: str) -> bool:
    try:
        IPv6Address(host)
    except ValueError:
        return False
    return True


def _fenced_regions(source: str) -> list[tuple[int, int]]:
    """Source ranges inside fenced code; an unclosed fence runs to the end."""
    regions: list[tuple[int, int]] = []
    opened: tuple[int, str, int] | None = None
    for match in _FENCE.finditer(source):
        marker, rest = match.group(1), match.group(2)
        if opened is None:
            if marker[0] != "`" or "`" not in rest:
                opened = (match.start(), marker[0], len(marker))
        elif marker[0] == opened[1] and len(marker) >= opened[2] and not rest.strip():
            regions.append((opened[0], match.end()))
            opened = None
    if opened is not None:
        regions.append((opened[0], len(source)))
    return regions


def _block_start(source: str, cutoff: int) -> int:
    """The last top-level block start at or before `cutoff` outside code, else 0."""
    if cutoff <= 0:
        return 0
    starts = [m.end() for m in _BLOCK_AFTER_BLANK.finditer(source, 0, cutoff + 1)]
    if not starts:
        return 0
    fenced = _fenced_regions(source)
    for start in reversed(starts):
        if not any(lo < start < hi for lo, hi in fenced):
            return start
    return 0


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _is_flag_half(char: str) -> bool:
    return ord(char) in _FLAG_LETTERS


class _Doc:
    """A text and its entities held in string indices, to be trimmed and cut."""

    __slots__ = ("_astral", "_astral_units", "pres", "spans", "text")

    def __init__(self, text: str, entities: Iterable[Entity]) -> None:
        self.text = text
        self._astral = [] if text.isascii() else [m.start() for m in _ASTRAL.finditer(text)]
        self._astral_units = [index + rank for rank, index in enumerate(self._astral)]
        total = self.units(len(text))
        # Each span: string indices, then UTF-16 offsets, of one entity clamped to the text.
        self.spans: list[tuple[int, int, int, int, Entity]] = []
        for entity in entities:
            first = max(entity.offset, 0)
            last = min(entity.offset + entity.length, total)
            if last > first:
                lo, hi = self.index(first), self.index(last)
                if hi > lo:
                    self.spans.append((lo, hi, self.units(lo), self.units(hi), entity))
        self.pres = _merge([(lo, hi) for lo, hi, _, _, e in self.spans if e.type == "pre"])

    def units(self, index: int) -> int:
        """UTF-16 offset of a string index."""
        return index + bisect_left(self._astral, index) if self._astral else index

    def index(self, units: int) -> int:
        """String index of a UTF-16 offset; an offset inside a pair rounds up."""
        if not self._astral:
            return units
        return units - bisect_right(self._astral_units, units - 2)

    def reach(self, lo: int, limit: int, hi: int) -> int:
        """The furthest end, at most `hi`, of a piece starting at `lo` that fits in `limit`."""
        target = self.units(lo) + limit
        end = self.index(target)
        if self.units(end) > target:
            end -= 1
        return min(end, hi)

    def reach_back(self, lo: int, limit: int, hi: int) -> int:
        """The earliest start, at least `lo`, of a piece ending at `hi` that fits in `limit`."""
        return max(self.index(self.units(hi) - limit), lo)

    def trim(self, lo: int, hi: int) -> tuple[int, int]:
        """Narrow [lo, hi) past whitespace at both ends, as Telegram trims a message."""
        text = self.text
        while lo < hi and text[lo].isspace():
            lo += 1
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
        return lo, hi

    def cut(self, ranges: Sequence[tuple[int, int]]) -> list[Rendered]:
        """The pieces at index `ranges` (in order, disjoint), entities clipped to each."""
        starts = [lo for lo, _ in ranges]
        bases = [self.units(lo) for lo in starts]
        tops = [self.units(hi) for _, hi in ranges]
        clipped: list[list[Entity]] = [[] for _ in ranges]
        for lo, hi, lo_units, hi_units, entity in self.spans:
            k = max(bisect_right(starts, lo) - 1, 0)
            while k < len(ranges) and ranges[k][0] < hi:
                if lo < ranges[k][1]:
                    base = bases[k]
                    first = max(base, lo_units)
                    last = min(tops[k], hi_units)
                    offset, length = first - base, last - first
                    same = offset == entity.offset and length == entity.length
                    clipped[k].append(
                        entity
                        if same
                        else Entity(entity.type, offset, length, entity.url, entity.language)
                    )
                k += 1
        return [
            Rendered(self.text[lo:hi], tuple(entities))
            for (lo, hi), entities in zip(ranges, clipped, strict=True)
        ]

    def pieces(self, limit: int, max_entities: int = MAX_ENTITIES) -> list[tuple[int, int]]:
        """Index ranges of the pieces `split` returns, whitespace at the cuts left out."""
        short = [(lo, hi) for lo, hi in self.pres if self.units(hi) - self.units(lo) <= limit]
        bounds = (sorted(span[0] for span in self.spans), sorted(span[1] for span in self.spans))
        lo, hi = self.trim(0, len(self.text))
        ranges: list[tuple[int, int]] = []
        while lo < hi:
            cap = self.entity_cap(lo, hi, max_entities, bounds)
            if self.units(hi) - self.units(lo) <= limit and cap == hi:
                cut = hi
            else:
                far = min(self.reach(lo, limit, hi), cap)
                half = max(min(self.reach(lo, limit // 2, hi), far), lo + 1)
                found = self._search(lo + 1, far, (half, far), short, rightmost=True)
                cut = found if found is not None else self._hard_after(lo, far, short)
            first, last = self.trim(lo, cut)
            if not shows_nothing(self.text[first:last]):  # Telegram would refuse it as empty
                ranges.append((first, last))
            lo = self.trim(cut, hi)[0]
        return ranges

    def entity_cap(self, lo: int, hi: int, max_entities: int, bounds: _Bounds) -> int:
        """The furthest end, at most `hi`, of a piece from `lo` holding `max_entities` entities.

        The entities open at `lo` are in the piece whatever the cut; it ends before the first
        later one that would pass the cap (or, if those alone pass it, before any later one).
        `bounds`: the entities' starts and ends (string indices), each sorted.
        """
        starts, ends = bounds
        first_later = bisect_right(starts, lo)
        present = first_later - bisect_right(ends, lo)  # started at or before lo, not ended
        room = max(max_entities - present, 0)
        if len(starts) - first_later <= room:
            return hi
        return min(starts[first_later + room], hi)

    def tail(self, limit: int, max_entities: int = MAX_ENTITIES) -> tuple[int, int]:
        """Index range of the last `limit` units' worth, starting at a clean boundary.

        It holds at most `max_entities` entities: it starts no sooner than the end of the
        last entity it leaves out.
        """
        short = [(lo, hi) for lo, hi in self.pres if self.units(hi) - self.units(lo) <= limit]
        lo, hi = self.trim(0, len(self.text))
        ends = sorted(span[1] for span in self.spans)
        floor = lo if len(ends) <= max_entities else max(ends[-max_entities - 1], lo)
        if self.units(hi) - self.units(lo) <= limit and floor == lo:
            return lo, hi
        near = max(self.reach_back(lo, limit, hi), floor)
        room = min(limit, self.units(hi) - self.units(near))
        keep = max(self.reach_back(lo, room // 2, hi), near)  # at least half of what may show
        found = self._search(near, hi - 1, (near, keep), short, rightmost=False)
        start = found if found is not None else self._hard_before(near, hi, short)
        return self.trim(start, hi)

    def _search(
        self,
        lo: int,
        hi: int,
        preferred: tuple[int, int],
        short: list[tuple[int, int]],
        *,
        rightmost: bool,
    ) -> int | None:
        """Best cut in [lo, hi] by `_STEPS`, never inside code that fits a piece whole."""
        for level, prefer in _STEPS:
            first, last = preferred if prefer else (lo, hi)
            holes = short if level <= _CODE_SAFE else self.pres
            segments = _segments(first, last, holes)
            for seg_lo, seg_hi in segments if not rightmost else reversed(segments):
                found = _find(self.text, _PATTERNS[level], seg_lo, seg_hi, rightmost=rightmost)
                if found is not None:
                    return found
        return None

    def _hard_after(self, lo: int, far: int, short: list[tuple[int, int]]) -> int:
        """A cut at the limit, moved back to a code block's start or a grapheme boundary."""
        cut = far
        for start, end in short:
            if start < cut < end:
                return start if start > lo else cut
        text = self.text
        for _ in range(_GRAPHEME_STEPS):
            if cut - 1 <= lo or not joined(text[cut - 1], text[cut]):
                break
            cut -= 1
        if _is_flag_half(text[cut]):
            run = cut
            while run > lo and _is_flag_half(text[run - 1]):
                run -= 1
            if (cut - run) % 2 and cut - 1 > lo:
                cut -= 1
        return cut

    def _hard_before(self, near: int, hi: int, short: list[tuple[int, int]]) -> int:
        """A start at the limit, moved on past a code block or to a grapheme boundary."""
        start = near
        for lo, end in short:
            if lo < start < end:
                return end if end < hi else start
        text = self.text
        for _ in range(_GRAPHEME_STEPS):
            if start <= 0 or start + 1 >= hi or not joined(text[start - 1], text[start]):
                break
            start += 1
        if 0 < start < hi - 1 and _is_flag_half(text[start]):
            run = start
            while run > 0 and _is_flag_half(text[run - 1]):
                run -= 1
            if (start - run) % 2:
                start += 1
        return start


def _segments(lo: int, hi: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of the cut range [lo, hi] outside the open intervals (start, end) of `holes`."""
    segments: list[tuple[int, int]] = []
    current = lo
    for start, end in holes:
        if end <= current:
            continue
        if start >= hi:
            break
        if start >= current:
            segments.append((current, start))
        current = max(current, end)
    if current <= hi:
        segments.append((current, hi))
    return segments


def _find(
    text: str, patterns: tuple[_Pattern, ...], lo: int, hi: int, *, rightmost: bool
) -> int | None:
    """The last (or first) cut in [lo, hi] that one of `patterns` offers."""
    best: int | None = None
    for pattern, shift, width in patterns:
        start, stop = max(lo - shift, 0), hi - shift + width
        if isinstance(pattern, str):
            found = (
                text.rfind(pattern, start, stop) if rightmost else text.find(pattern, start, stop)
            )
        elif rightmost:
            last = deque(pattern.finditer(text, start, stop), maxlen=1)
            found = last[0].start() if last else -1
        else:
            first = pattern.search(text, start, stop)
            found = first.start() if first else -1
        if found < 0:
            continue
        cut = found + shift
        if best is None or (cut > best if rightmost else cut < best):
            best = cut
    return best
