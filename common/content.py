"""Message content with no words in it: what a question replying to it cannot show the model.

A question under a photo, a poll or a location ("what is this?") would be answered blind and
charged for a guess (``handlers.replies.replies_to_unseen``); an update whose replied content
is of a kind the bot's library does not know is never read without it (``bot.pruned``).
An update the bot could not read at all keeps only where its message came from, marked
``UNREAD``, so that one addressed to Veil is told so (``handlers.replies.unread``).
"""

from __future__ import annotations

from typing import Final

# The fields of a Telegram message that hold such content.
UNSEEN: Final = (
    *("photo", "video", "animation", "sticker", "voice", "video_note", "audio", "paid_media"),
    *("location", "venue", "contact", "poll", "dice", "game", "invoice", "story", "checklist"),
    *("giveaway", "giveaway_winners"),
)
# A file: read where files are read (a private chat), unseen everywhere else.
FILE: Final = "document"
# The mark on a message that stands for one the bot could not read (an extra field: Telegram's
# own never has it): only where it came from and what names Veil in it are kept.
UNREAD: Final = "veil_unread"
