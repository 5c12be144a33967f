"""Token counts the bot can trust without the model's tokenizer: ceilings, never guesses.

The bot has no tokenizer, and the gateway offers none to clients. What it can count is bytes:
the models Veil serves use byte-level BPE (Llama 3, Qwen 2, GPT-style) or SentencePiece with
byte fallback (Llama 2, Mistral), and in both every token of text covers at least one UTF-8
byte. So a text's UTF-8 length is a ceiling on its tokens, in every language: the old guess
(three characters a token) was 2.1-2.2x low for Kazakh, 1.8-2.7x for Chinese and 4.7-8x for
emoji, while the byte count is never low. The price is caution in English (about four bytes
a token), which only reserves more for the moment a request runs, and trims history sooner.

The chat template adds tokens of its own: each message's role and separators
(``MESSAGE_OVERHEAD``, the gateway's own per-message allowance) and, once a request, a
beginning-of-text token, the generation prompt and a default system prompt some templates add
(Llama 3.1's dated one is about 25 tokens): ``REQUEST_OVERHEAD``.

Hold sizes, the context's trimming and the charge for text delivered without a receipt all
use these same ceilings, with one better count: an answer whose receipt the gateway signed
(and that verified) with the model server's own usage (not ``estimated``) is stored with that
count (``answer_tokens``) and the model it names, and the history is fitted to that model's
window by it (another model's tokenizer may cut the same text into more tokens, so for any
other model the turn counts by its ceiling again). The model server
counted those tokens as it wrote the text; reading the text back in a later prompt it
tokenizes the text afresh, which can split it a little differently (a word or a run of spaces
at a delta's edge), so the count gets a margin of an eighth (``REREAD_MARGIN``), at least a
token, and is never above the text's ceiling. An English answer (about four bytes a token)
then counts under a third of its ceiling, a Russian or Kazakh one (about five) under a quarter,
so a conversation of long answers keeps about three times as many turns in the same window.
A reasoning model's count includes its thinking, which is not kept: only more caution. A
question is stored with its request's prompt count from the same receipt where that is below
its ceiling: the prompt held the question whole, so a question asked with little before it (a
text file opening a conversation) keeps its place in the window. The question being asked,
the turns before any such receipt and everything else keep the ceiling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MESSAGE_OVERHEAD = 8
REQUEST_OVERHEAD = 32
REREAD_MARGIN = 8  # an answer read back may take an eighth more than the tokens it was written in


def text_tokens(text: str) -> int:
    """The most tokens ``text`` can be: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


def message_tokens(content: str) -> int:
    """The most tokens one chat message can take: its text plus the template's share."""
    return text_tokens(content) + MESSAGE_OVERHEAD


def prompt_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """The most prompt tokens a request with these messages can be counted."""
    return REQUEST_OVERHEAD + sum(message_tokens(message["content"]) for message in messages)


def answer_tokens(text: str, completion_tokens: int) -> int:
    """The most tokens an answer the model wrote in ``completion_tokens`` takes when read back.

    The receipt's count with a margin of an eighth (at least one token), at most the ceiling.
    """
    margin = -(-completion_tokens // REREAD_MARGIN) or 1
    return min(text_tokens(text), completion_tokens + margin)
