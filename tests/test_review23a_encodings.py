"""Files small23's code-page guess misread: read as written again, or refused as before.

cp1251 files read right before small23 were read as Mac OS Cyrillic, KOI8-R or cp866 garble
(1C code, text in capitals, a one-word file, a list with dashes), and the model asked about
it, charged. Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``;
each file is the bytes its code page holds.
"""

# ruff: noqa: RUF001 -- Russian text: its Cyrillic is meant
from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_files22_encodings import NOT_TEXT, asked, block

if TYPE_CHECKING:
    from pathlib import Path

USER = 2331
# A 1C:Enterprise module, as the Russian-language 1C writes them (in cp1251): its names are
# words run together, each with its capital.
MODULE_1C = (
    "// Закрываем документы, срок которых истёк\r\n"
    "Если ТекущаяДата() > ДатаОкончания Тогда\r\n"
    "    СтатусДокумента = Перечисления.СтатусыДокументов.Закрыт;\r\n"
    "КонецЕсли;\r\n"
)
NOTICE = "СЕЙЧАС НЕТ ДОСТУПНЫХ МОДЕЛЕЙ. ПОПРОБУЙТЕ ЧЕРЕЗ МИНУТУ.\r\n"
SHOPPING = "купить:\r\nхлеб — 2 шт\r\nмолоко — 1 л\r\nсыр — 300 г\r\n"
ENGLISH = "The quarterly report covers sales, costs and the outlook for next year.\n" * 60
RUSSIAN = "Итоги встречи: бюджет согласован, отчёт в пятницу.\n"


async def test_1c_code_in_cp1251_is_read_as_cp1251(tmp_path: Path) -> None:
    # Its names ("ТекущаяДата") counted as words cased as none is, each letter against
    # cp1251, while Mac's reads their capitals as quote marks and signs, words of lower case
    # letters: the module was read as "≈сли “екуща€ƒата() > ƒатаќкончани€ “огда".
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, [("Модуль.bsl", MODULE_1C.encode("cp1251"))], USER)
    assert questions == [block("Модуль.bsl", MODULE_1C)]


async def test_cp1251_text_in_capitals_and_a_word_alone_stay_cp1251(tmp_path: Path) -> None:
    # A cp1251 text in capitals is KOI8-R's lower case, each letter swapped for one about as
    # common: each capital counted against cp1251, and the notice was read as "яеивюя мер
    # днярсомшу лндекеи". A file of one word ("Ёж" is cp866's "иц", "попробуйте" KOI8-R's
    # "ОНОПНАСИРЕ") reads about as likely in two: letter counts alone cannot tell it.
    files = [
        ("notice.txt", NOTICE.encode("cp1251")),
        ("word.txt", "Ёж".encode("cp1251")),
        ("try.txt", "попробуйте".encode("cp1251")),
    ]
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, files, USER)
    assert questions == [
        block("notice.txt", NOTICE),
        block("word.txt", "Ёж"),
        block("try.txt", "попробуйте"),
    ]


async def test_a_cp1251_list_with_dashes_stays_cp1251(tmp_path: Path) -> None:
    # cp1251's dash (0x97) is "Ч" in Mac's, which reads its lower case letters as cp1251
    # does: each dash between words cost cp1251's reading bits a letter did not, and the
    # list was read as "хлеб Ч 2 шт".
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, [("list.txt", SHOPPING.encode("cp1251"))], USER)
    assert questions == [block("list.txt", SHOPPING)]


async def test_an_old_page_text_after_a_page_of_english_is_read(tmp_path: Path) -> None:
    # Only the file's first 4 KB were weighed: all English, it read alike in every code
    # page, and the KOI8-R or cp866 text after it was read as cp1251 garble.
    text = ENGLISH + RUSSIAN
    files = [("koi8.txt", text.encode("koi8_r")), ("dos.txt", text.encode("cp866"))]
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, files, USER)
    assert questions == [block("koi8.txt", text), block("dos.txt", text)]


async def test_ascii_with_a_nul_is_not_read_as_chinese(tmp_path: Path) -> None:
    # A token saved with its C string's NUL (too few NULs for UTF-16's own rule) reads in
    # UTF-16 as ideographs, two letters each, and one ASCII character: it was sent to the
    # model as Chinese and charged. A file of ASCII bytes is no CJK text: refused as before.
    token = b"github_pat_11AbCdEfGhIjKlMnOpQrStUvWxYz0q\x00"
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_document(USER, token, file_name="token.txt")
        reply = await stack.reply_text(USER)
    assert reply == NOT_TEXT
    assert stack.vllm.requests == []
