"""What a text shows: whether anything (what Telegram holds empty), and where it may be cut.

Telegram refuses a message whose text is blanks and invisible characters alone ("message text
is empty"), as tdlib's ``is_empty_string`` reads it after its ``clean_input_string``
(td/telegram/misc.cpp): blanks and control characters, the space characters it turns into
spaces, the invisible ones it skips (zero-width space and joiners, direction marks, byte-order
mark, no-break space, braille blank). The renderer shows such a text by its code points where
it must show it; the chat service takes an answer of nothing else as no answer at all.

What the reader sees as one character may be several code points: an emoji joined by
zero-width joiners (👩‍💻), a flag of two regional indicators (🇰🇿) or of tag characters (🏴󠁧󠁢󠁳󠁣󠁴󠁿),
a skin tone, a keycap (1️⃣), a letter with combining marks (й as и and a breve). A text cut
between them shows a broken glyph, or another one (half of 🇰🇿🇷🇺 read from its second code
point is 🇿🇷). ``glyph_boundary`` tells where a cut keeps them whole, by Unicode's extended
grapheme clusters (UAX #29) in the parts chat text needs: marks and joiners stay with what they
follow, what follows a joiner with it (a pictograph, as UAX #29 has it, and a letter too: the
joiner asks for a conjunct's half form), regional indicators in pairs from the start of their
run. Left out (a cut may fall there, as it did before): Hangul jamo sequences, prepended marks,
conjuncts of Indic letters joined by a virama alone.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

_NOTHING: Final = re.compile(
    "[\x00-\x20\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f\u2800\u3000"
    "\ufeff\ufffc\U000e0000-\U000e007f]*"
)
_ZWJ: Final = "\u200d"
# Code points that extend the glyph before them (besides marks): the zero-width non-joiner and
# joiner, skin tones, tag characters (a subdivision flag's letters), a low surrogate of a pair
# held as two code points.
_EXTENDING: Final = (
    range(0x200C, 0x200E),
    range(0x1F3FB, 0x1F400),
    range(0xE0020, 0xE0080),
    range(0xDC00, 0xE000),
)
_MARKS: Final = frozenset({"Mn", "Mc", "Me"})  # combining marks, variation selectors, keycap
_FLAG_LETTERS: Final = range(0x1F1E6, 0x1F200)  # regional indicators: two make a flag


def shows_nothing(text: str) -> bool:
    """Whether Telegram holds ``text`` empty, and refuses it as a message ("text is empty").

    Blanks, and invisible characters alone (a zero-width space, a direction mark, a byte-order
    mark, a no-break space, the braille blank), as tdlib's ``is_empty_string`` reads them.
    """
    return _NOTHING.fullmatch(text) is not None


def joined(before: str, after: str) -> bool:
    """Whether these two code points side by side belong to one glyph (no cut between them)."""
    code = ord(after)
    return (
        (before == _ZWJ and not after.isspace())  # 👩 and 💻 in 👩‍💻, a conjunct's half form
        or (before == "\r" and after == "\n")
        or any(code in extending for extending in _EXTENDING)
        or unicodedata.category(after) in _MARKS
    )


def glyph_boundary(text: str, at: int) -> bool:
    """Whether ``text`` may be cut before index ``at`` and leave every glyph whole."""
    if at <= 0 or at >= len(text):
        return True
    if joined(text[at - 1], text[at]):
        return False
    if ord(text[at]) in _FLAG_LETTERS:
        run = at
        while run > 0 and ord(text[run - 1]) in _FLAG_LETTERS:
            run -= 1
        return (at - run) % 2 == 0  # the second letter of a flag: a cut would part it
    return True


def glyphs_within(text: str, most: int) -> str:
    """The longest start of ``text`` of whole glyphs and at most ``most`` code points."""
    end = max(0, min(most, len(text)))
    while not glyph_boundary(text, end):
        end -= 1
    return text[:end]


def next_glyph(text: str, at: int) -> int:
    """The first index at or after ``at`` where ``text`` may be cut (``glyph_boundary``)."""
    while not glyph_boundary(text, at):
        at += 1
    return at
