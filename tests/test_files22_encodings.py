"""Text files in other encodings than UTF-8 are read; binary files are still refused.

Windows' "ANSI" code pages (cp1251, KZ-1048, cp1252), UTF-16 without its byte-order mark.
Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``; each file is the
bytes a Windows editor saves.
"""

# ruff: noqa: RUF001, RUF003 -- Russian, Kazakh and Ukrainian texts: their Cyrillic is meant
from __future__ import annotations

import io
import random
import zipfile
from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 2202
NOT_TEXT = (
    "I can only read text files (plain text, such as .txt, .md, .csv or .py) as a question:"
    " this file is not one. Please paste the part you need into a message, or describe it in"
    " words."
)
RUSSIAN = (
    "Итоги встречи: бюджет на 2027 год согласован, отчёт в пятницу.\r\nОтветственный: Ёлкин.\r\n"
)
KAZAKH = "Жиналыс қорытындысы: жоба қаржысы бекітілді, есеп жұмада.\r\nӘкімге хат жіберілді.\r\n"
FRENCH = (
    "Compte rendu : le budget de l'année est voté, à préciser la première étape. Où ? Ça va.\r\n"
)
GERMAN = "Besprechung: Das Budget für nächstes Jahr ist beschlossen; größere Änderungen folgen.\r\n"


async def asked(stack: Stack, files: list[tuple[str, bytes]], user: int = USER) -> list[str]:
    """Send each file in turn, once the answer before it is done; the questions stored."""
    for index, (name, data) in enumerate(files):
        stack.telegram.send_document(user, data, file_name=name)
        await stack.stored_turns(user, 2 * (index + 1))
        await stack.veil.chat.wait_idle(10)
    turns = await stack.stored_turns(user, 2 * len(files))
    return turns[0::2]


def block(name: str, text: str) -> str:
    """The question a file alone asks: its name, its text fenced."""
    return f"{name}:\n```\n{text.rstrip()}\n```"


async def test_a_russian_file_saved_in_cp1251_is_read(tmp_path: Path) -> None:
    # Notepad's "ANSI" on a Russian Windows is cp1251: the file was refused as "not UTF-8
    # text", and the user had no way to tell what was wrong with their .txt.
    # Ukrainian's ї є ґ, Serbian's ј ћ are where KZ-1048 has Kazakh letters: still cp1251.
    table = "Имя;Сумма\r\nПетров;1200\r\nСидорова;950\r\n"
    ukrainian = "Її звіт є, ґанок полагоджено.\r\n"
    serbian = "Ја сам љубазан, њега ћу звати.\r\n"  # ј is KZ-1048's ә: љ and њ say Serbian
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(
            stack,
            [
                ("итоги.txt", RUSSIAN.encode("cp1251")),
                ("t.csv", table.encode("cp1251")),
                ("uk.txt", ukrainian.encode("cp1251")),
                ("sr.txt", serbian.encode("cp1251")),
            ],
        )
    assert questions == [
        block("итоги.txt", RUSSIAN),
        block("t.csv", table),
        block("uk.txt", ukrainian),
        block("sr.txt", serbian),
    ]


async def test_kazakh_files_as_windows_saves_them_are_read(tmp_path: Path) -> None:
    # Kazakh's own letters (ә ғ қ ң ө ұ ү һ) are not in cp1251: Notepad's "ANSI" on a Kazakh
    # Windows (cp1251) saves each as "?", and the rest is Cyrillic the bot read as nothing.
    # Kazakhstan's code page KZ-1048 keeps them: cp1251 would read ә as ј, қ as ќ, ү as ї.
    lost = KAZAKH.encode("cp1251", errors="replace")
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(
            stack,
            [
                ("ansi.txt", lost),
                ("kz1048.txt", KAZAKH.encode("kz1048")),
                ("utf8.txt", KAZAKH.encode()),
            ],
        )
    assert questions == [
        block("ansi.txt", lost.decode("cp1251")),
        block("kz1048.txt", KAZAKH),
        block("utf8.txt", KAZAKH),
    ]
    assert "Жиналыс ?орытындысы" in questions[0]


async def test_western_files_in_cp1252_and_latin1_are_read(tmp_path: Path) -> None:
    # A French cp1252 or German Latin-1 file: refused, or read as Cyrillic (é as щ) by a
    # guess that took every 8-bit letter for cp1251.
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(
            stack,
            [("fr.txt", FRENCH.encode("cp1252")), ("de.txt", GERMAN.encode("latin-1"))],
        )
    assert questions == [block("fr.txt", FRENCH), block("de.txt", GERMAN)]


async def test_utf16_without_its_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Tools that write UTF-16 leave the mark out at times (PowerShell's Out-File -Encoding
    # Unicode with no BOM, exports): the NUL of each ASCII character refused it as not text.
    english = "Meeting notes\nAll agreed, report on Friday.\n"
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(
            stack,
            [("le.txt", RUSSIAN.encode("utf-16-le")), ("be.txt", english.encode("utf-16-be"))],
        )
    assert questions == [block("le.txt", RUSSIAN), block("be.txt", english)]


def png() -> bytes:
    """A real PNG image (a 4x4 grey square), as a phone sends a picture "as a file"."""
    from PIL import Image  # noqa: PLC0415 -- a test dependency, only this test's

    out = io.BytesIO()
    Image.new("L", (4, 4), 128).save(out, format="PNG")
    return out.getvalue()


def archive() -> bytes:
    """A real ZIP (a .docx is one too) holding a text file."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        zipped.writestr("notes.txt", RUSSIAN)
    return out.getvalue()


async def test_binary_files_stay_refused(tmp_path: Path) -> None:
    # Read in a code page that maps every byte, any file would be "text": a PDF whose bytes
    # are all printable in cp1252, an image, an archive, a program must stay refused. A
    # Cyrillic UTF-16 text with no blank in it has no NUL either: read as UTF-8, it was a
    # string of control characters (and the Cyrillic letters' 0x04 bytes) sent to the model.
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
    program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
    noise = random.Random(22).randbytes(4096)  # noqa: S311 -- a file's bytes, no secret
    files = [
        ("a.pdf", pdf),
        ("a.png", png()),
        ("a.zip", archive()),
        ("a.exe", program + b"This program cannot be run in DOS mode.\r\r\n$" + noise),
        ("noise.bin", noise),
        ("word.txt", "Привет".encode("utf-16-le")),
    ]
    async with running_stack(tmp_path) as stack:
        for name, data in files:
            stack.telegram.send_document(USER, data, file_name=name)
        replies = [str(m["text"]) for m in await stack.final_messages(USER, len(files))]
    assert replies == [NOT_TEXT] * len(files)
    assert stack.vllm.requests == []
