"""The bot's texts in every supported language, from the catalog files in ``common/locales/``.

A language is one TOML file named by its code (``en.toml``, ``ru.toml``, ``kk.toml``); adding
a language is adding a file. A key missing from a catalog falls back to English.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCALES = Path(__file__).resolve().parent / "locales"
FALLBACK = "en"
# The notices that can stand in place of an answer (``says``): a failure told where the answer
# was to be (``handlers.failures``: its ``TEXTS``, the short ones told outside the private chat,
# the apologies), an answer stopped before its first word, one cut by a restart, a summons
# refused with a notice as its one answer or told to its asker alone, and the notes a private
# chat's answer may get as a message of their own after it (cut, broke off). No everyday text
# ("Hello!", "Saved.", a button's label): an answer of Veil's may say just that. Not the
# placeholder an answer streams into: a reply to it is read once the answer is written.
NOTICES = frozenset(
    {
        *("error_unavailable", "error_busy", "error_stalled", "error_backend", "error_context"),
        *("error_question_long", "error_corrupted", "error_untrusted", "error_history"),
        *("error_settings", "error_ledger", "error_internal", "error_telegram", "answer_kept"),
        *("busy", "erasing", "no_credit", "short_no_credit", "short_busy"),
        *("order_no_plan", "order_too_many", "order_rejected"),
        *("ton_assign_not_found", "ton_assign_ambiguous", "ton_assign_not_unmatched"),
        "ton_assign_unpriced",
        *("cancelled", "interrupted", "unread", "edited", "ask_usage"),
        *("guest_media", "guest_replied_media", "guest_forwarded", "guest_via_bot"),
        "forwarded_notice",
        "forwarded_thinking",
        *("group_media", "group_replied_media", "group_ask_as_yourself", "group_wait_your_turn"),
        *("answer_cut", "answer_cut_here", "answer_broke_off", "answer_lost_here"),
        *("answer_stalled_here", "answer_window_full", "answer_window_full_here"),
    }
)


class Catalogs:
    """All loaded catalogs; ``for_language`` picks one for a user."""

    def __init__(self, directory: Path = LOCALES) -> None:
        self._catalogs: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.toml")):
            with path.open("rb") as handle:
                data = tomllib.load(handle)
            self._catalogs[path.stem] = {k: str(v) for k, v in data.items()}
        if FALLBACK not in self._catalogs:
            raise FileNotFoundError(f"{directory / (FALLBACK + '.toml')} is missing")
        self._whole = frozenset(
            value.strip()
            for catalog in self._catalogs.values()
            for key, value in catalog.items()
            if key in NOTICES
        )

    def says(self, text: str) -> bool:
        """Whether ``text`` is one of the catalogs' ``NOTICES``, whole, in any language.

        A notice of Veil's (a failure told in place of an answer) is no answer: a reply to it
        must not send it to the model as Veil's words. An answer that happens to say what an
        everyday text of the catalogs says ("Hello!") is an answer all the same.
        """
        return text.strip() in self._whole

    @property
    def languages(self) -> tuple[str, ...]:
        """The language codes with a catalog."""
        return tuple(self._catalogs)

    def keys(self, language: str = FALLBACK) -> frozenset[str]:
        """The keys one catalog defines."""
        return frozenset(self._catalogs[language])

    def for_language(self, language_code: str | None) -> Texts:
        """The texts for a Telegram ``language_code`` such as ``ru`` or ``kk-KZ``."""
        code = (language_code or FALLBACK).split("-")[0].lower()
        return Texts(code if code in self._catalogs else FALLBACK, self)

    def lookup(self, language: str, key: str) -> str:
        """One text, falling back to English."""
        catalog = self._catalogs.get(language, {})
        if key in catalog:
            return catalog[key]
        return self._catalogs[FALLBACK][key]


@dataclass(frozen=True)
class Texts:
    """One user's view of the catalogs: ``texts("start", name="Ann")``."""

    language: str
    catalogs: Catalogs

    def __call__(self, key: str, **values: Any) -> str:  # noqa: ANN401 -- any printable value
        """The text for ``key`` in this language, with ``{placeholders}`` filled in."""
        return self.catalogs.lookup(self.language, key).format(**values)
