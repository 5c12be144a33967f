"""Prices: µ★ per prompt and per completion token, per model, and what tokens cost.

``VEIL_PRICES="model=in/out,...,*=in/out"`` (whole µ★ a token; 1 Star = 1_000_000 µ★). The
free allowance is applied here too: ``free_cover`` prices the free tokens (prompt first),
``payable`` is what is left to pay, ``affordable`` how many answer tokens a balance buys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_MODEL", "ModelPrice", "Prices", "format_units"]

DEFAULT_MODEL = "*"


def format_units(units: int) -> str:
    """µ★ as Stars for people: ``1_500_000`` → ``"1.5"``, exact, no trailing zeros."""
    stars = Decimal(units).scaleb(-6)
    text = f"{stars:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """µ★ per prompt (``input``) and per completion (``output``) token."""

    input: int
    output: int

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The gross price of these tokens."""
        return self.input * prompt_tokens + self.output * completion_tokens

    def free_cover(self, prompt_tokens: int, completion_tokens: int, free_tokens: int) -> int:
        """The price of the first ``free_tokens`` of these tokens, prompt tokens first."""
        free_prompt = min(prompt_tokens, free_tokens)
        free_completion = min(completion_tokens, free_tokens - free_prompt)
        return self.cost(free_prompt, free_completion)

    def payable(self, prompt_tokens: int, completion_tokens: int, free_tokens: int) -> int:
        """What these tokens cost after up to ``free_tokens`` of them are free."""
        free = min(free_tokens, prompt_tokens + completion_tokens)
        cost = self.cost(prompt_tokens, completion_tokens)
        return cost - self.free_cover(prompt_tokens, completion_tokens, free)

    def affordable(self, prompt_tokens: int, free_tokens: int, units: int, most: int) -> int:
        """The most completion tokens, up to ``most``, that ``units`` and free tokens pay for.

        The prompt is paid first; -1 when not even the prompt is paid for.
        """
        prompt_paid = self.input * max(0, prompt_tokens - free_tokens)
        left = units - prompt_paid
        if left < 0:
            return -1
        if self.output == 0:
            return most
        return min(most, max(0, free_tokens - prompt_tokens) + left // self.output)


@dataclass(frozen=True)
class Prices:
    """Prices per model, with ``default`` for models not listed."""

    default: ModelPrice
    models: Mapping[str, ModelPrice] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def parse(cls, text: str) -> Prices:
        """Parse ``model=in/out,model2=in/out,*=in/out`` (µ★ per token; ``*`` is required).

        Raises ``ValueError`` naming the entry that is wrong.
        """
        models: dict[str, ModelPrice] = {}
        default: ModelPrice | None = None
        entries = [part.strip() for part in text.split(",") if part.strip()]
        if not entries:
            raise ValueError("prices are empty; expected model=in/out,...,*=in/out")
        for entry in entries:
            model, sep, price = entry.rpartition("=")
            model = model.strip()
            if not sep or not model:
                raise ValueError(f"price entry {entry!r} is not model=in/out")
            parsed = _parse_price(entry, price)
            if model == DEFAULT_MODEL:
                if default is not None:
                    raise ValueError("the default price '*' is given twice")
                default = parsed
            elif model in models:
                raise ValueError(f"the price of {model!r} is given twice")
            else:
                models[model] = parsed
        if default is None:
            raise ValueError("prices need a default for other models: add *=in/out")
        return cls(default=default, models=MappingProxyType(models))

    def for_model(self, model: str) -> ModelPrice:
        """The model's price, or the default."""
        return self.models.get(model, self.default)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """The gross price in µ★ of one request's tokens."""
        return self.for_model(model).cost(prompt_tokens, completion_tokens)


def _parse_price(entry: str, price: str) -> ModelPrice:
    prompt, sep, completion = price.partition("/")
    try:
        if not sep:
            raise ValueError
        parsed = ModelPrice(int(prompt.strip()), int(completion.strip()))
    except ValueError:
        raise ValueError(
            f"price entry {entry!r}: expected whole µ★ per token as in/out, like 20/60"
        ) from None
    if parsed.input < 0 or parsed.output < 0:
        raise ValueError(f"price entry {entry!r}: a price cannot be negative")
    return parsed
