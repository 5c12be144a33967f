"""Fitting a question into its model's window: the history that fits, the answer's room.

``Fitter.context`` keeps the newest turns of a conversation that fit the budget (the window
less the answer's room), each counted by its stored count where the model asked made it
(``Turn.for_model``) or by its text's ceiling (``services.tokens``); ``asking`` quotes the
message a question replies to, or the end of the cut answer a continuation goes on with, as
far as it fits; ``refit`` fits a question too long on its own again by the count the model
server's refusal states (``context_refusal``), a text file cut to its start (``cut_file``).
``ChatService`` (``services.chat``) asks with what these give; the Mini App's page fits its
requests by the same rules (tests/test_webapp_context.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.tokens import MESSAGE_OVERHEAD, prompt_tokens, text_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from models import TokenCount
    from services.documents import TextFile
    from services.questions import Question

_WINDOW_STATED = re.compile(
    r"maximum context length is (\d+) tokens|available context size \((\d+) tokens\)"
)
_PROMPT_STATED = re.compile(
    r"request has (\d+) input tokens|\((\d+) in the messages|request \((\d+) tokens\) exceeds"
)


@dataclass(frozen=True, slots=True)
class Turn:
    """A turn before the question: its role, text and the most tokens it can take.

    ``tokens``: its text's ceiling, or (``for_model``) its stored count where the model asked
    now made it (an answer counted by its receipt, ``services.tokens``): another model's
    tokenizer may cut the same text into more tokens. ``count``: the stored count, if any.
    """

    role: str
    text: str = field(repr=False)
    tokens: int
    count: TokenCount | None = None

    @classmethod
    def said(cls, role: str, text: str, count: TokenCount | None = None) -> Turn:
        """A turn counted by its text's ceiling, keeping its stored ``count`` for later."""
        return cls(role, text, text_tokens(text), count)

    def for_model(self, model: str) -> Turn:
        """This turn counted as ``model`` reads it: by its count if ``model`` made it."""
        if self.count is None or self.count.model != model:
            return self
        return dataclasses.replace(self, tokens=min(self.count.tokens, self.tokens))


@dataclass(slots=True)
class Context:
    """The messages a question is asked with, their ceiling and the answer's most tokens."""

    messages: list[dict[str, str]]
    tokens: int  # the ceiling ``prompt_tokens(messages)`` gives, counted once while building
    max_answer: int  # the most answer tokens to ask for (``Fitter.answer_cap``)
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class Fitter:
    """The rules a context is fitted by: the system prompt and the answer's bounds."""

    system_prompt: str | None
    max_answer_tokens: int
    min_answer_tokens: int

    def room(self, window: int) -> int:
        """Tokens kept for the answer: ``max_answer_tokens``, at most half the window."""
        return min(self.max_answer_tokens, window // 2)

    def budget(self, window: int) -> int:
        """Tokens the context may take: the model's window less the answer's room."""
        return window - self.room(window)

    def alone(self, context: Context) -> bool:
        """Whether ``context`` holds the question alone (and the system prompt): no history."""
        return len(context.messages) <= 1 + bool(self.system_prompt)

    def answer_cap(self, window: int, context_tokens: int) -> int:
        """The most answer tokens to ask for: what the context leaves of the window.

        At most ``max_answer_tokens``; at least the room the budget kept, since a context
        within the budget leaves that much. Only a prompt too long on its own for the budget
        leaves less: it is then asked with the shortest answer worth having
        (``min_answer_tokens``), and the model server, counting exactly, decides. (The Mini
        App's page fits its requests by this same rule; the bot's own answers then ask for
        more, ``with_room``.)
        """
        fits = window - context_tokens
        floor = min(self.min_answer_tokens, self.max_answer_tokens)
        return max(floor, min(self.max_answer_tokens, fits))

    def with_room(self, context: Context, window: int) -> Context:
        """``context`` asking for the answer's whole room, where its ceiling left it less.

        A prompt too long on its own for the budget by its ceiling (a long text file, a long
        paste) was asked with ``min_answer_tokens``, a stub of an answer: its ceiling is
        several times its true count in most languages. It asks for the room now, and the
        model server, counting exactly, refuses it if it is too long for that, saying how long
        it is (``refit``).
        """
        return dataclasses.replace(context, max_answer=max(context.max_answer, self.room(window)))

    def refit(
        self, question: Question, context: Context, refusal: str, window: int, kept: int | None
    ) -> tuple[str, Context, int | None] | None:
        """The question again, fitted to the window by the model server's ``refusal``; or None.

        ``context`` (the question alone) was refused as too long; the refusal states the
        prompt's tokens and the model's window (vLLM's wording, ``context_refusal``). With
        them, a question that leaves an answer at least half its usual room (or any answer
        worth having, where it is no file) is asked again whole, for what the window leaves;
        a file that does not is cut (``kept``: the characters of it read so far, None: all) to
        leave the answer its room, its start read. Without them a file is cut to the budget by
        its ceiling, which always fits, and anything else is asked once for what its ceiling
        leaves (``answer_cap``: ``min_answer_tokens`` at least), as it was before the room was
        asked for (some model servers state no exact count: a later vLLM says "at least").
        Returns (prompt, context, characters of the file kept).
        """
        stated = context_refusal(refusal)
        document = question.document
        if stated is not None:
            window = min(window, stated[0])
            left = window - stated[1]
            wanted = min(self.min_answer_tokens, self.max_answer_tokens)
            if document is not None:
                wanted = max(wanted, self.room(window) // 2)
            if wanted <= left < context.max_answer:
                return context.messages[-1]["content"], self.capped(context, left), kept
        if document is None:
            shortest = self.answer_cap(window, context.tokens)
            if stated is not None or shortest >= context.max_answer:
                return None
            return context.messages[-1]["content"], self.capped(context, shortest), kept
        budget = self.budget(window)
        cut = self.cut_file(document, kept, budget, None if stated is None else stated[1])
        if cut is None:
            return None
        prompt = document.question(cut)
        return prompt, self.with_room(self.context([], prompt, window, budget), window), cut

    def capped(self, context: Context, most: int) -> Context:
        """``context`` asking for at most ``most`` answer tokens."""
        return dataclasses.replace(context, max_answer=min(most, context.max_answer))

    def cut_file(
        self, document: TextFile, kept: int | None, budget: int, counted: int | None
    ) -> int | None:
        """How many characters of ``document`` to read so the question fits ``budget`` tokens.

        ``counted``: the model server's count of the question with ``kept`` characters (None:
        all of them) read, if it said. By that count, the file's share of the budget (the rest
        of the question by its ceiling scaled as the count scales the whole question's: by its
        ceiling alone a long question, a caption or the texts joined to an album, was over the
        budget by itself, and the file refused where a start of it fitted; the file by the
        whole count, which is higher), with a twentieth to spare; else by the ceilings alone.
        The scale is the file's: a Russian caption over a file of code (or digits) is scaled
        down too little, over the budget by itself where it fits with a start of the file;
        then the rest is taken at the least it can count (the file at most its ceiling), and
        a cut too long is told by the next count. None when not a character fits even so, or
        the count gives no fewer characters than now.
        """
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

        def tokens(characters: int) -> int:
            return prompt_tokens(
                [*head, {"role": "user", "content": document.question(characters)}]
            )

        now = len(document.text) if kept is None else kept
        if now <= 0:
            return None
        rest = tokens(0)
        if counted is not None:  # the rest's ceiling as far over its count as the whole's
            whole = max(tokens(now), 1)
            scaled = min(rest, rest * counted // whole)
            # The least the rest can count: the file counts at most its ceiling.
            least = max(0, counted - (whole - rest))
            rest = scaled if scaled < budget else least
            if budget <= rest:
                return None
            share = (budget - rest) * now * 19 // (max(counted, 1) * 20)
            return share if 0 < share < now else None
        if budget <= rest:
            return None
        low, high = 0, now  # tokens(low) fits; tokens(high) may not
        while high - low > 1:
            middle = (low + high) // 2
            if tokens(middle) <= budget:
                low = middle
            else:
                high = middle
        return low or None

    def asking(
        self, question: Question, history: Sequence[Turn], window: int, budget: int
    ) -> tuple[str, Context]:
        """The prompt to ask and its context: ``history`` trimmed to ``budget`` of ``window``.

        ``history`` counts as the model asked reads it (``Turn.for_model``), or by ceilings.
        The message the question replies to goes before it, quoted, when the context does not
        hold it already (``Question.replied``): as much of it as fits ``budget``. So does the
        cut answer a continuation goes on with (``Question.continues``), by its end.
        """
        prompt = question.prompt
        context = self.context(history, prompt, window, budget)
        replied, ending = question.replied, False
        if question.continues and history and history[-1].role == "assistant":
            replied, ending = history[-1].text, True
            if not holds(context.messages, replied):
                continuing = self.continuing(history, prompt, window, budget)
                if continuing is not None:
                    return prompt, continuing
        if replied is None or holds(context.messages, replied):
            return prompt, context
        quote = self.fitting_quote(replied, prompt, budget, ending=ending)
        if quote is None:
            return prompt, context
        prompt = quoted(quote, prompt)
        return prompt, self.context(history, prompt, window, budget)

    def continuing(
        self, history: Sequence[Turn], prompt: str, window: int, budget: int
    ) -> Context | None:
        """A continuation's context where its cut answer's question did not fit: cut to fit.

        The question was too long to go with the cut answer (a text file, a long paste), so
        the context dropped both, and the model was asked to go on with an answer about a text
        it no longer saw. Its start and end now go around "…" (a file's name and opening, the
        caption that asked about it), as much as fits before the cut answer, whole. None where
        not even that fits: the answer's end is then quoted before the request.
        """
        if len(history) < 2 or history[-2].role != "user":  # noqa: PLR2004 -- question, answer
            return None
        asked, answer = history[-2].text, history[-1]

        def context(keep: int) -> Context:
            head, tail = asked[: keep - keep // 2], asked[len(asked) - keep // 2 :]
            cut = Turn.said("user", f"{head.rstrip()}\n…\n{tail.lstrip()}")
            return self.context([cut, answer], prompt, window, budget)

        low, high = 0, len(asked)  # context(low) holds both turns (or low is 0); asked does not
        while high - low > 1:
            middle = (low + high) // 2
            if context(middle).dropped == 0:
                low = middle
            else:
                high = middle
        return context(low) if low and context(low).dropped == 0 else None

    def fitting_quote(
        self, replied: str, prompt: str, budget: int, *, ending: bool = False
    ) -> str | None:
        """As much of ``replied`` as fits, quoted before ``prompt``, in ``budget`` tokens.

        Its start, cut with "…", where the whole would not fit (``ending``: its end, after
        "…"): a quote that does not fit squeezed the answer to ``min_answer_tokens`` (or made a
        question that fits alone "too long"). None where not even a start (or end) of it fits.
        """
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

        def fits(quote: str) -> bool:
            asked = {"role": "user", "content": quoted(quote, prompt)}
            return prompt_tokens([*head, asked]) <= budget

        def part(length: int) -> str:
            return "…" + replied[len(replied) - length :] if ending else replied[:length] + "…"

        if fits(replied):
            return replied
        low, high = 0, len(replied)  # part(low) fits (or low is 0); replied does not
        while high - low > 1:
            middle = (low + high) // 2
            if fits(part(middle)):
                low = middle
            else:
                high = middle
        if ending:
            end = replied[len(replied) - low :].lstrip() if low else ""
            return f"…{end}" if end.strip() else None
        start = replied[:low].rstrip()
        return f"{start}…" if start.strip() else None

    def context(self, history: Sequence[Turn], prompt: str, window: int, budget: int) -> Context:
        """System prompt, the newest turns that fit ``budget`` tokens, then the prompt.

        The answer may then have what the context leaves of ``window``.

        The prompt and system prompt are counted by their ceilings, each turn before by its
        count (``Turn.tokens``); the hold is sized by the same sum, so no language is sent
        over the window.
        """
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        tail = [{"role": "user", "content": prompt}]
        used = prompt_tokens(head + tail)
        kept: list[Turn] = []
        for turn in reversed(history):
            cost = turn.tokens + MESSAGE_OVERHEAD
            if used + cost > budget:
                break
            used += cost
            kept.append(turn)
        kept.reverse()
        # A conversation must not open with an orphaned answer.
        while kept and kept[0].role == "assistant":
            used -= kept.pop(0).tokens + MESSAGE_OVERHEAD
        turns = [{"role": turn.role, "content": turn.text} for turn in kept]
        messages = head + turns + tail
        return Context(
            messages,
            tokens=used,
            max_answer=self.answer_cap(window, used),
            dropped=len(history) - len(kept),
        )


def quoted(quote: str, text: str) -> str:
    """``text`` after ``quote`` as a Markdown block quote, as the model reads a part replied to."""
    lines = quote.strip().splitlines()
    return "\n".join(f"> {line}".rstrip() for line in lines) + f"\n\n{text}"


def holds(messages: Sequence[dict[str, str]], quote: str) -> bool:
    """Whether one of ``messages`` holds ``quote``, as Telegram showed it (Markdown rendered).

    Compared by letters and digits alone: a message shows an answer's Markdown without its
    marks (``**bold**`` as "bold", a list's "-" as "•") and a long answer in parts.
    """
    wanted = _letters(quote)
    return any(wanted in _letters(message["content"]) for message in messages)


def _letters(text: str) -> str:
    """The letters and digits of ``text``, case folded."""
    return "".join(char for char in text.casefold() if char.isalnum())


def context_refusal(message: str) -> tuple[int, int] | None:
    """(the model's window, the prompt's tokens) a model server's "too long" refusal states.

    vLLM says "This model's maximum context length is N tokens. However, your request has M
    input tokens." (M + the answer asked for over N: "... is too large: A. This model's maximum
    context length is N tokens and your request has M input tokens (A > N - M)."), older
    versions and OpenAI-like servers "... However, you requested T tokens (M in the messages,
    A in the completion).", llama.cpp's server "request (M tokens) exceeds the available context
    size (N tokens), try increasing it". None where the wording is none of these.
    """
    window = _WINDOW_STATED.search(message)
    prompt = _PROMPT_STATED.search(message)
    if window is None or prompt is None:
        return None
    return int(next(g for g in window.groups() if g)), int(next(g for g in prompt.groups() if g))
