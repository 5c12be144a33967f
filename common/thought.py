"""The mark that opens a reasoning model's thinking wherever Veil shows it, in every language.

The bot folds the thinking before an answer (an expandable quote, a rich message's details
block) behind this mark (``bot.thinking``); a reply to that answer reads it back without the
thinking (``handlers.reading``), which is shown, never the answer.
"""

from __future__ import annotations

from typing import Final

MARK: Final = "💭 "
