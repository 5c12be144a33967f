"""The mark that opens a reasoning model's thinking wherever Veil shows it, in every language.

The bot folds the thinking before an answer (an expandable quote, a rich message's details
block) behind this mark (``bot.thinking``); a reply to that answer reads it back without the
thinking (``handlers.reading``), which is shown, never the answer.

The model's own Markdown may open a quote with the same emoji: the renderer writes the space
after it as a no-break space there (``QUOTED``, ``bot.formatting``), which looks the same, so a
quote of the model's never opens with ``MARK`` and is never read back as Veil's thinking. Read
back, it is the model's ``MARK`` again. Code in a quote keeps the plain space (``swapped``):
code is shown and read byte for byte, and formatting inside a quote is never Veil's fold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

MARK: Final = "💭 "
QUOTED: Final = "💭\u00a0"  # the mark where the model's own quote holds it

_QUOTES: Final = frozenset({"blockquote", "expandable_blockquote"})
_CODE: Final = frozenset({"code", "pre"})


class Spanned(Protocol):
    """A message entity: its type and where it is, in UTF-16 units (Telegram's or the bot's)."""

    @property
    def type(self) -> str:
        """Its kind: ``blockquote``, ``pre``, ``code`` and so on."""
        ...

    @property
    def offset(self) -> int:
        """Where it starts."""
        ...

    @property
    def length(self) -> int:
        """How long it is."""
        ...


def swapped(text: str, entities: Iterable[Spanned], old: str, new: str) -> str:
    """``text`` with ``old`` written ``new`` wherever it lies in a quote and outside all code.

    ``old`` and ``new`` are as long in UTF-16 units, so ``entities`` hold. The renderer writes
    ``MARK`` as ``QUOTED`` so, and a reply reads it back the other way, over the same spans.
    """
    if old not in text:
        return text
    units = bytearray(text.encode("utf-16-le", "surrogatepass"))
    was, now = old.encode("utf-16-le", "surrogatepass"), new.encode("utf-16-le", "surrogatepass")
    spans = [(2 * e.offset, 2 * (e.offset + e.length), e.type) for e in entities]
    quotes = [(lo, hi) for lo, hi, kind in spans if kind in _QUOTES]
    code = [(lo, hi) for lo, hi, kind in spans if kind in _CODE]
    at = units.find(was)
    while at != -1:
        end = at + len(was)
        quoted = any(lo <= at and end <= hi for lo, hi in quotes)
        if at % 2 == 0 and quoted and not any(at < hi and lo < end for lo, hi in code):
            units[at:end] = now
        at = units.find(was, at + 1)
    return units.decode("utf-16-le", "surrogatepass")
