"""A text file asked as a question: how the model reads it, whole or its start.

The file's text goes to the model as a fenced block headed by its name, with the caption, if
any, after it as the question. The bot cannot count a file's tokens before it asks (it has no
tokenizer: ``services.tokens``), so a file the model's window cannot hold with room for a real
answer is cut once the model server has said how long it is (``ChatService``): the model reads
its start (``TextFile.question``), told in the block's heading how much of the file that is,
and the user is told under the answer (``Answer.file_read``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FENCE = "```"


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text file sent as a question: its name, its text and the caption (the question)."""

    name: str
    text: str = field(repr=False)
    caption: str | None = field(default=None, repr=False)

    def question(self, kept: int | None = None) -> str:
        """The file as the model reads it: its name, its text fenced, then the caption, if any.

        ``kept``: only the text's first ``kept`` characters (the heading says so); None: all.
        The fence is longer than any run of backticks in the text, so the text cannot close it.
        """
        text, name = self.text, self.name
        if kept is not None and kept < len(self.text):
            text = self.text[:kept]
            whole = len(self.text)
            name = f"{name} (only its first {kept} of {whole} characters: the rest did not fit)"
        fence = FENCE + "`" * max(0, _longest_backticks(text) + 1 - len(FENCE))
        block = f"{name}:\n{fence}\n{text.rstrip()}\n{fence}"
        caption = self.caption
        return f"{block}\n\n{caption}" if caption and caption.strip() else block

    def percent(self, kept: int) -> int:
        """How much of the text its first ``kept`` characters are, in whole percent (at least 1)."""
        return max(1, kept * 100 // max(1, len(self.text)))


def _longest_backticks(text: str) -> int:
    """The longest run of backticks in ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
