"""The bot's catalogs: every language has every English text, with the same placeholders."""

from __future__ import annotations

import string

from bot.app import COMMANDS, GROUP_COMMANDS
from common.texts import FALLBACK, NOTICES, Catalogs
from handlers.failures import TEXTS


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_catalog_has_the_english_keys_and_placeholders() -> None:
    catalogs = Catalogs()
    english = catalogs.keys(FALLBACK)
    assert {"error_stalled", "error_busy", "privacy_gateway_down"} <= english
    assert set(catalogs.languages) >= {"en", "ru", "kk"}
    for language in catalogs.languages:
        assert catalogs.keys(language) == english, language
        for key in english:
            assert placeholders(catalogs.lookup(language, key)) == placeholders(
                catalogs.lookup(FALLBACK, key)
            ), (language, key)


def test_gateway_lines_take_a_position_never_an_address() -> None:
    catalogs = Catalogs()
    for language in catalogs.languages:
        for key in ("privacy_gateway_ok", "privacy_gateway_bad", "privacy_gateway_down"):
            names = placeholders(catalogs.lookup(language, key))
            assert "index" in names
            assert "url" not in names


def test_help_names_every_command_of_the_menu_in_every_language() -> None:
    catalogs = Catalogs()
    assert {"start", "help", "history", "balance", "paysupport", "terms"} <= set(COMMANDS)
    for language in catalogs.languages:
        help_text = catalogs.lookup(language, "help")
        missing = {c for c in [*COMMANDS, *GROUP_COMMANDS] if f"/{c}" not in help_text}
        assert not missing, (language, missing)
        assert all(catalogs.lookup(language, f"cmd_{c}") for c in COMMANDS)


def test_every_failure_told_in_place_of_an_answer_is_a_notice_and_no_everyday_text_is() -> None:
    catalogs = Catalogs()
    told = {key for _, key in TEXTS} | {"short_no_credit", "short_busy", "error_telegram"}
    told |= {"answer_kept"}
    notes = {"answer_cut", "answer_broke_off", "answer_lost_here", "answer_window_full"}
    assert told | notes | {"cancelled", "interrupted"} <= NOTICES <= catalogs.keys(FALLBACK)
    for language in catalogs.languages:
        texts = catalogs.for_language(language)
        assert catalogs.says(texts("error_backend")), language
        assert catalogs.says(f"\n{texts('cancelled')} "), language
        for key in ("guest_empty_question", "continue", "settings_saved", "retry", "stop"):
            assert not catalogs.says(texts(key)), (language, key)
