"""The mark that opens a reasoning model's thinking wherever Veil shows it, in every language.

The bot folds the thinking before an answer (an expandable quote, a rich message's details
block) behind this mark (``bot.thinking``); a reply to that answer reads it back without the
thinking (``handlers.reading``), which is shown, never the answer.

The model's own Markdown may open a quote with the same emoji: the renderer writes the space
after it as a no-break space there (``QUOTED``, ``bot.formatting``), which looks the same, so a
quote of the model's never opens with ``MARK`` and is never read back as Veil's thinking. Read
back, it is the model's ``MARK`` again.
"""

from __future__ import annotations

from typing import Final

MARK: Final = "💭 "
QUOTED: Final = "💭\u00a0"  # the mark where the model's own quote holds it
