"""Latin-script files files24's CJK guess misread: read as written again, never as Chinese.

In a Western code page an accented letter (or Word's curly apostrophe) and the Latin letter
after it are one character in GBK, Big5 or Shift_JIS, two accented letters in a row one in
EUC-KR: a short French file, a CSV whose rows repeat one accented word, or an English note
written in Word ("It’s", "don’t") read as Chinese, Korean or kanji-only Japanese, garbled
or refused. And Big5, Shift_JIS and EUC-KR files as Windows writes them (cp950, cp932,
cp949) with a character only Windows' holds were refused or read as garble. The corpus
tests are ``decoded`` on bytes Python's own codecs write; the last runs the whole path:
fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

# ruff: noqa: RUF001, RUF002, RUF003 -- curly apostrophes, accented letters, CJK: meant
from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest

from services.encodings import decoded
from tests.botstack import running_stack
from tests.test_files22_encodings import asked, block

if TYPE_CHECKING:
    from pathlib import Path

USER = 2425
CJK = re.compile("[\u3000-\u30ff\u3400-\u9fff\uac00-\ud7a3\uff00-\uffef]")
# Each read right in cp1252 before files24, and as Chinese or refused by it.
WESTERN = (
    "ANNÉE bientôt",  # "ANN万 bient矌"
    "0;ANNÉE;398\n1;FRANÇOISE;161\n",  # "0;ANN万;398\n1;FRANシISE;161\n"
    "ANNÉE;1\n" * 50,  # a CSV whose every row holds "ANNÉE": "ANN万;1" fifty times
    "ANNÉE ANNÉE BIENTÔT Ça",
    "It’s done, don’t worry.",  # kanji without kana in Shift_JIS: refused
    (
        "Hi team,\r\nIt’s done. We’re shipping on Monday, so don’t worry. I’ll send the notes;"
        " they’re in the shared folder.\r\nThanks,\r\nAnn\r\n"
    ),
)
# No code page read here writes them right (they read as cp1252, a letter or two off, or are
# refused), but none is Chinese or Korean: each but the two marked read so since files24.
OTHER_LATIN = (
    ("Şahin ÖĞRETMEN", "cp1254"),  # "轪hin 中RETMEN"
    ("ÖĞRETMEN\n" * 20, "cp1254"),
    ("Kraków jaźń", "cp1250"),  # "Krak體 ja燅"
    ("Zażółć ŁĄKA", "cp1250"),  # "Za웁녔 ％KA"
    ("0;Kraków;272\n1;ŁĄKA;216\n2;Bożena;195\n", "cp1250"),
    ("BOŻENA żółw", "cp1250"),  # marked: Hangul KS X 1001 lacks in cp949, "BO츲NA 웁퀇"
    ("budżet, ŹDŹBŁO", "cp1250"),  # marked: "bud풽t, 뢈뢆즁"
    ("BÙI ngân", "cp1258"),  # "B買 ng鈔"
    ("Biên ĐÔNG", "cp1258"),
)
# Files as Notepad's "ANSI" saves them on a Japanese, Taiwanese or Korean Windows, each with a
# character Shift_JIS, Big5 or EUC-KR lacks: refused (cp932's ① ㈱), or read as cp1252 garble
# (cp950's 碁 €: "·|Ä³¬ö") or cp866's box pieces (cp949's 똠: "╚╕└╟╖╧").
WINDOWS_CJK = (
    ("会議の議事録：①予算は承認されました。②金曜日に報告書を提出します。\r\n", "cp932"),
    ("株式会社㈱の報告書です。よろしくお願いします。\r\n", "cp932"),
    ("會議紀要：預算已批准，週五提交報告。碁\r\n", "cp950"),
    ("價格：€128元，週五提交報告。\r\n", "cp950"),
    ("회의록: 예산이 승인되었습니다. 똠방각하 금요일에 보고서를 제출합니다.\r\n", "cp949"),
    ("수량: 3개, 가격: 128원. 똠얌꿍 주문 완료.\r\n", "cp949"),
)
# Chinese with Latin words in it, dense as a line of instructions is: most of its hanzi beside
# a Latin letter, but in runs longer than a Latin word's misread letters, or beside its own
# punctuation. Still Chinese.
MIXED = (
    "请在Terminal中运行pip install requests命令。",
    "我们的API支持JSON和XML格式。",
    "用Excel打开CSV文件，然后点Save保存。",
    "下载App后登录你的Apple ID账号。",
)
# Words of French, German and Spanish, and English ones as Word writes them.
WORDS = (
    "ANNÉE", "FRANÇOISE", "BIENTÔT", "Ça", "Élève", "déjà", "Hélène", "THÉÂTRE", "Noël",
    "MÜLLER", "Größe", "Übersicht", "SCHRÖDER", "Straße", "Señor", "AÑO", "Información",
    "It’s", "don’t", "we’re", "I’ll", "they’re", "O’Brien", "can’t",
)  # fmt: skip


@pytest.mark.parametrize("text", WESTERN)
def test_western_text_is_read_as_written_not_as_cjk(text: str) -> None:
    assert decoded(text.encode("cp1252")) == text


@pytest.mark.parametrize(("text", "codec"), OTHER_LATIN)
def test_other_latin_script_text_is_not_read_as_chinese_or_korean(text: str, codec: str) -> None:
    read = decoded(text.encode(codec))  # refused where cp1252 lacks a byte (Ź is 0x8F)
    assert read is None or not CJK.search(read), read


@pytest.mark.parametrize(("text", "codec"), WINDOWS_CJK)
def test_cjk_as_windows_writes_it_is_read_as_written(text: str, codec: str) -> None:
    assert decoded(text.encode(codec)) == text


@pytest.mark.parametrize("text", MIXED)
def test_chinese_with_latin_words_in_it_is_read_as_written(text: str) -> None:
    assert decoded(text.encode("gbk")) == text


def test_pairs_and_triples_of_western_words_read_as_written() -> None:
    # Short files (a word or three, a list of names) as users send them: every pair of the
    # words, and a seventh of the triples; each with a blank and a line break between.
    files = [
        separator.join(words)
        for words in [
            *itertools.permutations(WORDS, 2),
            *itertools.islice(itertools.permutations(WORDS, 3), 0, None, 7),
        ]
        for separator in (" ", "\n")
    ]
    misread = [(text, read) for text in files if (read := decoded(text.encode("cp1252"))) != text]
    assert misread == []


async def test_an_english_note_with_curly_apostrophes_reaches_the_model(tmp_path: Path) -> None:
    # It was refused ("this file is not one"): read as Shift_JIS, each "’s", "’t", "’r"
    # is a common kanji, and a Japanese text of kanji alone is refused as not told from
    # Chinese.
    note = WESTERN[-1]
    async with running_stack(tmp_path, answer="Read.") as stack:
        questions = await asked(stack, [("note.txt", note.encode("cp1252"))], USER)
    assert questions == [block("note.txt", note)]
