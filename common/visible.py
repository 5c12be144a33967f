"""Whether a text shows anything: what Telegram holds empty, and the bot treats as no answer.

Telegram refuses a message whose text is blanks and invisible characters alone ("message text
is empty"), as tdlib's ``is_empty_string`` reads it after its ``clean_input_string``
(td/telegram/misc.cpp): blanks and control characters, the space characters it turns into
spaces, the invisible ones it skips (zero-width space and joiners, direction marks, byte-order
mark, no-break space, braille blank). The renderer shows such a text by its code points where
it must show it; the chat service takes an answer of nothing else as no answer at all.
"""

from __future__ import annotations

import re
from typing import Final

_NOTHING: Final = re.compile(
    "[\x00-\x20\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f\u2800\u3000"
    "\ufeff\ufffc\U000e0000-\U000e007f]*"
)


def shows_nothing(text: str) -> bool:
    """Whether Telegram holds ``text`` empty, and refuses it as a message ("text is empty").

    Blanks, and invisible characters alone (a zero-width space, a direction mark, a byte-order
    mark, a no-break space, the braille blank), as tdlib's ``is_empty_string`` reads them.
    """
    return _NOTHING.fullmatch(text) is not None
