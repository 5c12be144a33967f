"""A text file asked as a question: how the model reads it, whole or its start.

The file's text goes to the model as a fenced block headed by its name, with the caption, if
any, after it as the question. The bot cannot count a file's tokens before it asks (it has no
tokenizer: ``services.tokens``), so a file the model's window cannot hold with room for a real
answer is cut once the model server has said how long it is (``ChatService``): the model reads
its start (``TextFile.question``), told in the block's heading how much of the file that is,
and the user is told under the answer (``Answer.file_read``).

A file's bytes are read in the encoding they are in (``decoded``): UTF-8, UTF-16, or the 8-bit
code page its letters read best in, with no detector to depend on (charset-normalizer, in the
lock through ``requests``, named a short French text UTF-16 and a PDF Big5).
"""

# ruff: noqa: RUF001, RUF002 -- Cyrillic letters and quote marks: meant
from __future__ import annotations

import codecs
import math
import re
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

FENCE = "```"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# A file starting so is no text, though its start reads as one: a PDF (its body may be bytes
# any code page reads too). Images, archives and programs hold a NUL or a control byte.
_SIGNATURES = (b"%PDF-",)
UTF16_NULS = 20  # a UTF-16 text has a NUL at its second byte places for 1 pair in 20 at least
UTF16_STRAY = 1  # ...and at most 1 NUL elsewhere for each 20 there (a CJK 一 is U+4E00)
ASCII_END = 0x80  # bytes from here on are a code page's own
_WORDS = re.compile(rb"[A-Za-z\x80-\xff]+")  # runs of letters (and 8-bit bytes) in a code page
# KZ-1048's ә Ә қ Қ ң Ң (cp1251's Serbian and Macedonian letters there), and the letters only
# Serbian and Macedonian write, at the same places in both (Ђ ђ Ѓ ѓ Љ љ Њ њ Џ џ).
_KAZAKH = frozenset(b"\xbc\xa3\x9d\x8d\xbe\xbd")
_SERBIAN = frozenset(b"\x80\x90\x81\x83\x8a\x9a\x8c\x9c\x8f\x9f")
# The 8-bit Cyrillic code pages a text may be in besides Windows' (``_cyrillic_page``).
_OTHER_CYRILLIC = ("koi8_r", "cp866", "mac_cyrillic")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_ASCII_LETTERS = string.ascii_letters.encode()
WEIGHED = 4096  # bytes of a text its readings are weighed by (a page or two), from its first
WORD_HEAD = 64  # ...8-bit word, Latin letters before that byte to its start at most
CLEARER = 3.0  # bits by which one must out-read Windows' page (8 times likelier) to be read
EACH_CLEARER = 0.5  # ...and half a bit more for each character the two read differently
# How often each letter comes in running text, in thousandths: Russian's (its national corpus;
# ё where it is written), then those of Kazakh, Ukrainian, Belarusian, Serbian and Macedonian.
_PER_MILLE = dict(zip(
    "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё" "іәқңғұүөһ" "їєґў" "јњљћђџѓќѕ",
    (110, 85, 80, 74, 67, 63, 55, 47, 45, 44, 35, 32, 30, 28, 26, 20, 19, 17, 17, 16, 16, 14, 12,
     10, 9, 7, 6, 5, 4, 3, 3, 0.4, 3,  10, 10, 10, 10, 10, 10, 10, 10, 0.5,  1, 1, 0.2, 0.5,
     5, 2, 1, 1, 0.5, 0.3, 0.3, 0.3, 0.3),
    strict=True,
))  # fmt: skip
RARE = 0.05  # thousandths of any other letter
_BITS = {letter: math.log2(33 * each / 1000) for letter, each in _PER_MILLE.items()}
RARE_BITS = math.log2(33 * RARE / 1000)
MISCASED = -3.0  # bits each letter of a word cased as none is loses
SYMBOL = -3.0  # bits an 8-bit character that is no letter costs, standing apart
STUCK = -6.0  # ...or stuck to a letter, unless it is one of these:
_BESIDE_WORDS = frozenset("«»„“”‘’…")
_APART = frozenset("—–№…•·")  # marks that stand between words
_NO_START = frozenset("ъь")
# Letters' case, u or l each, as words are written: "слово", "СЛОВО", "Слово", and words run
# together as code names them ("ТаблицаЗначений", "СуммаНДС").
_CASES = re.compile("u+|l+|(?:ul+)+(?:uu+)?")
_READ_WORDS = re.compile(r"[^\x00-\x3e\x40\x5b-\x60\x7b-\x7f]+")  # letters, "?", 8-bit
# Chinese, Japanese and Korean text: CJK punctuation, kana, bopomofo, Hangul's letters, the
# ideographs (and extension A), Hangul syllables, full-width forms; ASCII text and blanks.
_CJK_TEXT = re.compile(
    "[\t\n\r\x20-\x7e\u3000-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uff00-\uffef]*"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")  # not \t \n \v \f \r, ESC
DOS_END = "\x1a"  # Ctrl-Z: DOS's end-of-file mark, after a text file's last line


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text file sent as a question: its name, its text and the caption (the question).

    Files sent together (an album, ``together``) are one question too: ``text`` holds their
    texts one after another, and ``more`` where each file after the first begins in it, with
    its name, so a cut (``question``) reads as many of them, in order, as fit.
    """

    name: str
    text: str = field(repr=False)
    caption: str | None = field(default=None, repr=False)
    more: tuple[tuple[int, str], ...] = ()

    @classmethod
    def together(cls, files: Sequence[tuple[str, str]], caption: str | None) -> TextFile:
        """The files (name, text), in the order sent, asked as one question with ``caption``."""
        (name, text), *rest = files
        more: list[tuple[int, str]] = []
        for later, later_text in rest:
            more.append((len(text), later))
            text += later_text
        return cls(name, text, caption, tuple(more))

    def question(self, kept: int | None = None) -> str:
        """The files as the model reads them: each its name and its text fenced, then the caption.

        ``kept``: only the first ``kept`` characters of the texts (a file's heading says how
        much of it that is); None: all. Each fence is longer than any run of backticks in its
        text, so the text cannot close it.
        """
        read = len(self.text) if kept is None else min(kept, len(self.text))
        bounds = [(0, self.name), *self.more]
        ends = [start for start, _ in bounds[1:]] + [len(self.text)]
        blocks = [
            _block(name, self.text[start:end], max(0, min(end, read) - start))
            for (start, name), end in zip(bounds, ends, strict=True)
        ]
        block = "\n\n".join(blocks)
        caption = self.caption
        return f"{block}\n\n{caption}" if caption and caption.strip() else block

    def percent(self, kept: int) -> int:
        """How much of the text its first ``kept`` characters are, in whole percent (at least 1)."""
        return max(1, kept * 100 // max(1, len(self.text)))


def _block(name: str, whole: str, kept: int) -> str:
    """One file as the model reads it: its name, then its first ``kept`` characters fenced."""
    text = whole[:kept]
    if kept < len(whole):
        name = f"{name} (only its first {kept} of {len(whole)} characters: the rest did not fit)"
    fence = FENCE + "`" * max(0, _longest_backticks(text) + 1 - len(FENCE))
    return f"{name}:\n{fence}\n{text.rstrip()}\n{fence}"


def _longest_backticks(text: str) -> int:
    """The longest run of backticks in ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def decoded(data: bytes) -> str | None:
    """``data`` as text, in the encoding it most likely is; None where it is no text.

    A byte-order mark says which: UTF-8 or UTF-16 (dropped). Else UTF-8 where it decodes;
    else UTF-16 where it clearly is (``_utf16``: its NULs show it, or it reads as Chinese,
    Japanese or Korean); else UTF-8 still where only a few of its
    bytes are not (``_mostly_utf8``); else an 8-bit code page: where the letters read as
    Cyrillic words (``_cyrillic``) the Cyrillic one they read best in (``_cyrillic_page``:
    Windows' cp1251 or KZ-1048, as Notepad's "ANSI" saves, or KOI8-R, DOS's cp866, Mac's),
    else cp1252 (Western European; Latin-1 read the same). A PDF's start
    and a control character other than a blank or an escape (a NUL, say) are no text
    (``_plain``): bytes no code page refuses, an image's or an archive's, hold them; a DOS
    end-of-file mark (Ctrl-Z) ending the text is dropped (``_read``).
    """
    if data.startswith(_SIGNATURES):
        return None
    if data.startswith(_UTF16_BOMS):
        return _read(data, "utf-16")  # drops its BOM
    for codec in ("utf-8-sig", *_utf16(data)):  # utf-8-sig drops a UTF-8 BOM
        text = _read(data, codec)
        if text is not None:
            return text
    if _mostly_utf8(data):  # not a code page's: two garbled letters for each one
        return _read(data, "utf-8-sig", "replace")
    if not _cyrillic(data):
        return _read(data, "cp1252")
    return _read(data, _cyrillic_page(data))


def _read(data: bytes, codec: str, errors: str = "strict") -> str | None:
    """``data`` in ``codec``, a DOS end-of-file mark (Ctrl-Z) after it dropped; None if no text.

    DOS editors, ``copy /a`` and old Windows tools end a text file with a Ctrl-Z (0x1A): the
    file was refused for it as a control character, though the text before it is plain.
    """
    try:
        text = data.decode(codec, errors).rstrip(DOS_END)
    except UnicodeDecodeError:
        return None
    return text if _plain(text) else None


def _mostly_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 but for a few stray bytes (read as U+FFFD, "�").

    A UTF-8 file with one byte that is none (a stray byte of another encoding pasted in, a
    character cut in two at the end) was read whole as cp1251 or cp1252: every letter beyond
    ASCII garbled. It is UTF-8 where more characters beyond ASCII read right than bytes do not;
    a text in a code page has almost none that read right (its letters are no UTF-8 sequences).
    """
    text = data.decode("utf-8", "replace")
    stray = text.count("\ufffd")
    right = sum(1 for char in text if char >= "\x80") - stray
    return right > stray


def _utf16(data: bytes) -> tuple[str, ...]:
    """The UTF-16 codec ``data`` clearly is without a byte-order mark, if any.

    Text in UTF-16 holds a NUL as the other byte of each ASCII character (a blank, a digit,
    a line break; Latin letters too): at one of the two places of each pair only. A Cyrillic
    text has a few, between its words; a binary file has them at both places, a text in an
    8-bit encoding none (its NUL refused).

    A Chinese, Japanese or Korean text has fewer, as few as its line breaks: it is UTF-16
    where it reads as nothing but those scripts, ASCII among them (``_cjk``).
    """
    if len(data) % 2:
        return ()
    pairs = len(data) // 2
    even, odd = data[0::2].count(0), data[1::2].count(0)
    for nuls, others, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls * UTF16_NULS >= pairs and others * UTF16_NULS <= nuls * UTF16_STRAY:
            return (codec,)
    return tuple(codec for codec in ("utf-16-le", "utf-16-be") if _cjk(data, codec))


def _cjk(data: bytes, codec: str) -> bool:
    """Whether ``data`` in the UTF-16 ``codec`` is CJK text: its scripts, and ASCII, alone.

    At least one ASCII character (a line break, a digit) is asked for: a NUL beside it. An
    8-bit text holds no NUL, and read as UTF-16 its pairs of letters (the capitals of a word
    in cp1251, "ПРИВЕТ") may all be Hangul syllables. Binary files read as other scripts,
    controls or broken surrogates somewhere. Nor is a file of ASCII bytes: half of all CJK
    characters have a byte beyond it, and two Latin letters or digits read as one ideograph
    ("he" is 桥 big-endian): a token saved with a C string's NUL after it read as Chinese.
    """
    if data.isascii():
        return False
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return False
    ascii_too = any(char < "\x80" for char in text)
    return bool(_CJK_TEXT.fullmatch(text)) and ascii_too and not text.isascii()


def _cyrillic_page(data: bytes) -> str:
    """The 8-bit Cyrillic code page a text is in: Windows' (``_windows_page``), or another.

    KOI8-R (Unix's, old e-mail's), cp866 (DOS's) and Mac OS Cyrillic hold the same letters
    at other bytes: read in cp1251, such a text was garble, and the model was asked about it.
    Each reading of its start (``_weighed``) is weighed by how its letters read
    (``_likelihood``); another than Windows' is taken only where it reads clearly better
    (``CLEARER``), by more the more characters it reads otherwise (``EACH_CLEARER``): a
    short text may read about as well in two (a word in capitals reads the same in cp866
    and Mac's; "Нет" in Mac's is "Ќет" in cp1251), and then the commonest, Windows', is the
    one. Letter counts alone tell little where the two differ by letters only: a cp1251 text
    in capitals is KOI8-R's lower case, its letters swapped for others about as common
    ("ПОПРОБУЙТЕ" for "онопнасире"), and a whole sentence of them read likelier as KOI8-R
    by a few bits. None of the three holds Kazakh's own letters: a Kazakh text in one has a
    "?" for each, as in cp1251.
    """
    windows = _windows_page(data)
    start = _weighed(data)
    read = start.decode(windows, "replace")
    best, most = windows, _likelihood(read)
    for codec in _OTHER_CYRILLIC:  # each reads all 256 bytes
        other = start.decode(codec)
        changed = sum(1 for mine, theirs in zip(read, other, strict=True) if mine != theirs)
        if (likelihood := _likelihood(other) - CLEARER - EACH_CLEARER * changed) > most:
            best, most = codec, likelihood
    return best


def _weighed(data: bytes) -> bytes:
    """What of ``data`` its readings are weighed by: ``WEIGHED`` bytes from its first 8-bit word.

    A text may open with a page or more of ASCII (English, code, a log's header) before its
    Cyrillic: weighed from its very start, it read alike in every code page, or by a word cut
    at the end, and Windows' page was kept for a KOI8-R or cp866 text.
    """
    first = _EIGHT_BIT.search(data)
    at = first.start() if first else 0
    head = data[max(0, at - WORD_HEAD) : at]
    at -= len(head) - len(head.rstrip(_ASCII_LETTERS))  # the word's Latin start, if any
    return data[at : at + WEIGHED]


def _windows_page(data: bytes) -> str:
    """The Windows code page a Cyrillic text is in: cp1251, or its Kazakh kz1048.

    Kazakh's own letters (ә ғ қ ң ө ұ, straight u, shha; its dotted i is cp1251's) are not in
    cp1251: Windows saves a Kazakh text as UTF-8 or UTF-16, or in cp1251 with each of them a
    "?" (or written as the Russian letter it looks like), both read as cp1251 here.
    Kazakhstan's own code page, KZ-1048, puts them where cp1251 has Serbian, Macedonian,
    Ukrainian and Belarusian letters: it is read where ә, қ or ң (cp1251's je, kje, dze) come
    in a text holding none of the letters only Serbian and Macedonian write, at places the two
    code pages share.
    """
    if any(byte in _KAZAKH for byte in data) and not any(byte in _SERBIAN for byte in data):
        return "kz1048"
    return "cp1251"


def _likelihood(text: str) -> float:
    """How likely ``text`` is Cyrillic as people write it, in bits: the higher, the likelier.

    Each letter beyond ASCII counts by how often it comes in running text (``_PER_MILLE``),
    against a letter drawn at random of 33; it counts less in a word whose case is odd
    ("пРИВЕТ", or one that starts with ь or ъ, as no word does; ``_cased``), and as a
    third in a row ("ммм"). Capitals count as any letters: a text in them (a heading, a
    notice, a 1C report) is in them throughout, no less likely word by word. Any other 8-bit
    character counts against it (``_cost``). A "?" (a letter the code page lacked: a Kazakh
    one) is part of its word and weighs nothing.
    """
    bits = 0.0
    for word in _READ_WORDS.findall(text):
        letters = "".join(char for char in word if char.isalpha())
        shape = 0.0 if _cased(letters) else MISCASED
        for at, char in enumerate(word):
            if char < "\x80":
                continue
            if not char.isalpha():
                bits += _cost(word, at, stuck=bool(letters))
                continue
            bits += _BITS.get(char.lower(), RARE_BITS) + shape
            if at > 1 and word[at - 2] == word[at - 1] == char:
                bits += MISCASED
    return bits


def _cost(word: str, at: int, *, stuck: bool) -> float:
    """What the 8-bit character at ``at`` of ``word``, no letter, costs a reading, in bits.

    More where it sticks to a letter (``stuck``), as only a quote mark or an ellipsis does;
    nothing for a dash, a "№" or a bullet standing apart, as they do between words ("10:00 —
    11:00", "№ 5"; cp866 and Mac's read cp1251's dash as "Ч"). A box-drawing piece apart
    from letters costs nothing where it is a line's (beside one like it) or stands alone (a
    column's): DOS's texts draw tables with them, and their other readings are rows of one
    letter ("═════" in cp1251 is "ННННН").
    """
    char = word[at]
    if stuck:
        return SYMBOL if char in _BESIDE_WORDS else STUCK
    if char in _APART:
        return 0.0
    drawn = "\u2500" <= char <= "\u259f"
    if drawn and (len(word) == 1 or char in word[max(0, at - 1) : at] + word[at + 1 : at + 2]):
        return 0.0
    return SYMBOL


def _cased(letters: str) -> bool:
    """Whether ``letters`` (a word's) are cased as words are: "слово", "Слово" or "СЛОВО".

    Or as code names things, words run together each with its capital ("ТаблицаЗначений",
    "СуммаНДС"): 1C's modules are written so, in cp1251, and Mac's reads their capitals as
    quote marks, a word of lower case letters ("“аблица«начений").
    """
    if not letters:
        return True
    if letters[0].lower() in _NO_START:
        return False
    shape = "".join("u" if char.isupper() else "l" for char in letters)
    return bool(_CASES.fullmatch(shape))


def _cyrillic(data: bytes) -> bool:
    """Whether the letters of ``data``, in an 8-bit code page, read as Cyrillic words (cp1251).

    cp1251 and cp1252 both hold letters at bytes 0xC0 to 0xFF: Cyrillic, and accented Latin.
    In a Russian (or Kazakh, Ukrainian...) text such bytes make whole words; in a French or
    German one each stands among Latin letters ("réunion", "für"). So it is cp1251 where
    words of 8-bit letters alone outnumber words that mix them with Latin ones.
    """
    alone = mixed = 0
    for word in _WORDS.findall(data):
        latin = sum(1 for byte in word if byte < ASCII_END)
        if latin == 0 and len(word) > 1:
            alone += 1
        elif 0 < latin < len(word):
            mixed += 1
    return alone > mixed


def _plain(text: str) -> bool:
    """Whether ``text`` holds no control character but blanks, line breaks and escapes."""
    return not _CONTROLS.search(text)
