"""Text files in the older Cyrillic code pages are read as written, not as cp1251 garble.

KOI8-R (Unix's, old e-mail's), cp866 (DOS's Russian "OEM") and Mac OS Cyrillic hold the same
letters as cp1251 at other bytes: such a file was read as cp1251 and the model asked about
mojibake ("бЧЕФЙ" for "итоги"), charged. Fake Telegram ← real bot → real gateway → fake vLLM,
SQLite in ``tmp_path``; each file is the bytes the code page holds.
"""

# ruff: noqa: RUF001, RUF003 -- Kazakh letters, CJK full-width marks: meant
from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_files22_encodings import KAZAKH, RUSSIAN, asked, block

if TYPE_CHECKING:
    from pathlib import Path

USER = 2323
OLD_PAGES = ("koi8_r", "cp866", "mac_cyrillic")
# A DOS report: its table drawn in cp866's box pieces, which cp1251 reads as rows of letters.
DOS_TABLE = (
    "╔════════════╤═══════╗\r\n"
    "║ Товар      │ Сумма ║\r\n"
    "╟────────────┼───────╢\r\n"
    "║ Бумага     │   120 ║\r\n"
    "╚════════════╧═══════╝\r\n"
)


async def test_russian_and_kazakh_files_in_koi8_cp866_and_mac_cyrillic_are_read(
    tmp_path: Path,
) -> None:
    # None of the three holds Kazakh's own letters (ә қ ң ...; KOI8-R and cp866 not its і
    # either): a Kazakh text saved in one has a "?" for each, as in cp1251, and is read so.
    files = []
    for codec in OLD_PAGES:
        files += [
            (f"ru-{codec}.txt", RUSSIAN.encode(codec)),
            (f"kk-{codec}.txt", KAZAKH.encode(codec, errors="replace")),
        ]
    files.append(("report.txt", DOS_TABLE.encode("cp866")))
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, files, USER)
    expected = []
    for codec in OLD_PAGES:
        lossy = KAZAKH.encode(codec, errors="replace").decode(codec)
        expected += [block(f"ru-{codec}.txt", RUSSIAN), block(f"kk-{codec}.txt", lossy)]
    expected.append(block("report.txt", DOS_TABLE))
    assert questions == expected
    assert "Жиналыс ?орытындысы" in questions[1]
    assert "жіберілді" in questions[5]  # Mac's holds і


async def test_where_two_pages_read_alike_windows_is_the_one(tmp_path: Path) -> None:
    # "Нет" in Mac's bytes reads in cp1251 as a word too ("Ќет"): where two readings are
    # about as likely, the commonest code page, cp1251, is the one (docs say so). A KZ-1048
    # title reads in Mac's as Cyrillic words too ("Нызмет кірсету"): KZ-1048 stays. A longer
    # Mac text, its capitals and its я among Russian's common letters, reads as Mac's.
    title = "Қызмет көрсету шарттары"
    longer = "Привет! Я жду ответ до пятницы.\n"
    files = [
        ("no.txt", "Нет".encode("cp1251")),
        ("terms.txt", title.encode("kz1048")),
        ("mac.txt", longer.encode("mac_cyrillic")),
    ]
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, files, USER)
    assert questions == [
        block("no.txt", "Нет"),
        block("terms.txt", title),
        block("mac.txt", longer),
    ]


async def test_chinese_japanese_and_korean_utf16_without_its_mark_is_read(tmp_path: Path) -> None:
    # A CJK text in UTF-16 holds a NUL only beside its few ASCII characters (a line break, a
    # digit): too few to show it as UTF-16, so a Japanese file was refused as "not a text
    # file" (its NULs), a Chinese or Korean one with more read as 8-bit garble. Read as
    # UTF-16, such a file is nothing but CJK and ASCII: it is read so.
    chinese = "会议纪要：预算已批准，周五提交报告。\n负责人：王伟。\n"
    japanese = "会議の議事録：予算は承認されました。金曜日に報告書を提出します。\n"
    korean = "회의록: 예산이 승인되었습니다. 금요일에 보고서를 제출합니다.\n"
    files = [
        ("zh.txt", chinese.encode("utf-16-le")),
        ("ja.txt", japanese.encode("utf-16-le")),
        ("ko.txt", korean.encode("utf-16-be")),
    ]
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, files, USER)
    assert questions == [
        block("zh.txt", chinese),
        block("ja.txt", japanese),
        block("ko.txt", korean),
    ]
