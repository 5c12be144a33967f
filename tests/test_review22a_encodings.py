"""Real-world text files the encodings of files22 misread: read as the user wrote them.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``; each file is the
bytes a real tool writes.
"""

# ruff: noqa: RUF001 -- Russian text: its Cyrillic is meant
from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_files22_encodings import asked

if TYPE_CHECKING:
    from pathlib import Path


USER = 2231
NOT_TEXT = "I can only read text files (plain text, such as .txt, .md, .csv or .py)"
RUSSIAN = "Итоги встречи: бюджет согласован, отчёт в пятницу.\n"


async def test_a_dos_file_ending_in_ctrl_z_is_read(tmp_path: Path) -> None:
    # DOS editors and `copy /a` end a text file with Ctrl-Z (0x1A): the file was refused as
    # "not a text file" for that one control character after its last line.
    dos = b"REM nightly backup\r\nxcopy C:\\data D:\\backup /s\r\n\x1a"
    async with running_stack(tmp_path) as stack:
        questions = await asked(stack, [("BACKUP.BAT", dos)], USER)
    assert questions == [
        "BACKUP.BAT:\n```\nREM nightly backup\r\nxcopy C:\\data D:\\backup /s\n```"
    ]


async def test_a_utf8_file_with_a_stray_byte_is_read_as_utf8(tmp_path: Path) -> None:
    # One byte that is no UTF-8 (a cp1252 "…" pasted in, 0x85) made the whole UTF-8 file
    # read in a code page: refused as "not a text file" where a byte of its UTF-8 is none in
    # cp1251 (as here), else read as cp1251, two garbled letters for each Russian one, sent
    # to the model and charged. A file that is UTF-8 but for a character cut in two at its
    # end, likewise.
    stray = RUSSIAN.encode() + b"\x85" + "Ответственный: Ёлкин.\n".encode()
    cut = RUSSIAN.encode() + "Ёлкин".encode()[:-1]
    async with running_stack(tmp_path) as stack:
        questions = await asked(stack, [("notes.txt", stray), ("cut.txt", cut)], USER)
    assert questions == [
        f"notes.txt:\n```\n{RUSSIAN}\ufffdОтветственный: Ёлкин.\n```",
        f"cut.txt:\n```\n{RUSSIAN}Ёлки\ufffd\n```",
    ]


async def test_a_utf8_file_with_a_control_character_is_not_read_as_a_code_page(
    tmp_path: Path,
) -> None:
    # A UTF-8 text holding a C1 control (U+0085, NEL, from a mainframe export) was refused as
    # UTF-8 and then read as cp1252: "GrÃ¶ÃŸe" for "Größe" sent to the model, charged. A
    # control character is no text (files22's rule): refused, as in any other UTF-8 file.
    data = "Größe: 12 cm\u0085Farbe: grün\n".encode()
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_document(USER, data, file_name="export.txt")
        reply = await stack.reply_text(USER)
    assert reply.startswith(NOT_TEXT)
    assert stack.vllm.requests == []
