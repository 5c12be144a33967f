"""Text files in encodings the code-page guess misread: read as written, or refused, never garble.

KZ-1048 files whose only Kazakh letters are ұ ү ғ ө (read as cp1251: Ukrainian's ї є ґ and
Belarusian's ў for them), KOI8-U (its і ї є ґ read as KOI8-R's box pieces), KOI8-R in lower
case (read as cp1251 capitals), a one-letter file (read as cp1252), a Mac OS Cyrillic word
in title case (its capital read as a cp1251 quote mark), and Chinese, Japanese and Korean
text in GBK, Big5, Shift_JIS, EUC-JP or EUC-KR (read as cp1251 or cp1252 mojibake, and the
model asked about it, charged). The corpus tests
are ``decoded`` on bytes Python's own codecs write; the others run the whole path: fake
Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

# ruff: noqa: RUF001, RUF002, RUF003 -- Cyrillic and CJK text, full-width marks: meant
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from services.encodings import decoded
from tests.botstack import running_stack
from tests.test_files22_encodings import asked, block

if TYPE_CHECKING:
    from pathlib import Path

USER = 2424
UNDECIDED = (
    "This looks like Chinese, Japanese or Korean text, but I could not tell which encoding it is"
    " in, so I did not read it (nothing was charged). Please save it as UTF-8 and send it again,"
    " or paste the part you need into a message."
)
CHINESE = (
    "会议纪要：预算已批准，周五提交报告。\n负责人：王伟。\n",
    "我们明天上午十点在公司开会，请大家准时参加。",
    "这个程序的主要功能是读取文件并统计每个单词出现的次数。\n",
    "中华人民共和国",
    "今天天气很好，我们去公园散步吧！",
    "价格：128元\n数量：3件\n合计：384元\n",
    "请问这个问题应该怎么解决？谢谢。",
)
TRADITIONAL = (
    "會議紀要：預算已批准，週五提交報告。\n負責人：王偉。\n",
    "我們明天上午十點在公司開會，請大家準時參加。",
    "這個程式的主要功能是讀取檔案並統計每個單字出現的次數。\n",
    "今天天氣很好，我們去公園散步吧！",
    "價格：128元\n數量：3件\n合計：384元\n",
    "請問這個問題應該怎麼解決？謝謝。",
)
JAPANESE = (
    "会議の議事録：予算は承認されました。金曜日に報告書を提出します。\n",
    "東京は日本の首都です。",
    "明日の午前十時に会社で会議があります。時間通りに来てください。",
    "このプログラムはファイルを読み込み、単語の数を数えます。\n",
    "ありがとうございました。",
)
KOREAN = (
    "회의록: 예산이 승인되었습니다. 금요일에 보고서를 제출합니다.\n",
    "안녕하세요",
    "내일 오전 10시에 회사에서 회의가 있습니다. 시간에 맞춰 와 주세요.",
    "이 프로그램은 파일을 읽고 단어의 수를 셉니다.\n",
    "서울은 한국의 수도입니다.",
)
EAST_ASIAN = [
    *[(text, codec) for text in CHINESE for codec in ("gb2312", "gbk", "gb18030")],
    *[(text, codec) for text in TRADITIONAL for codec in ("big5", "gb18030")],
    *[(text, codec) for text in JAPANESE for codec in ("shift_jis", "cp932", "euc_jp")],
    *[(text, codec) for text in KOREAN for codec in ("euc_kr", "cp949")],
]
# Text a CJK reading could take: capitals (cp1251's are Hangul in EUC-KR, common hanzi in
# GBK), KOI8-R's lower case (the same bytes), Kazakh, Ukrainian, Western European.
RUSSIAN = (
    "Итоги встречи: бюджет на 2027 год согласован, отчёт в пятницу.\r\nОтветственный: Ёлкин.\r\n",
    "СЕЙЧАС НЕТ ДОСТУПНЫХ МОДЕЛЕЙ. ПОПРОБУЙТЕ ЧЕРЕЗ МИНУТУ.\r\n",
    "Я вас любил: любовь ещё, быть может, в душе моей угасла не совсем.\n",
    "ДОГОВОР ПОСТАВКИ 15\r\nЗНАЧЕНИЕ ДЕНЬ ПРИВЕТ\r\n",
    "бюджет на год, добрый день\n",
)
KAZAKH = (
    "Жиналыс қорытындысы: жоба қаржысы бекітілді, есеп жұмада.\r\nӘкімге хат жіберілді.\r\n",
    "Бүгін біз жұмыс істедік, ол үйге барды. Оның өмірі ұзақ.\n",
    "ЕСЕП ӘКІМГЕ, БІЗДІҢ МЕКТЕП\r\n",
)
UKRAINIAN = (
    "Її звіт є, ґанок полагоджено.\r\n",
    "Привіт, як справи? Все добре, дякую.\n",
    "Ще не вмерла України і слава, і воля.\n",
)
WESTERN = (
    "Compte rendu : le budget de l'année est voté, à préciser la première étape. Où ? Ça va.\r\n",
    "Besprechung: Das Budget für nächstes Jahr ist beschlossen; größere Änderungen folgen.\r\n",
    "Señor García, ¿cómo está? São Paulo é ótimo. Æble og øl.\n",
)
NOT_EAST_ASIAN = [
    *[(text, codec) for text in RUSSIAN for codec in ("cp1251", "koi8_r", "cp866", "mac_cyrillic")],
    *[(text, codec) for text in KAZAKH for codec in ("kz1048",)],
    *[(text, codec) for text in UKRAINIAN for codec in ("cp1251", "koi8_u")],
    *[(text, "cp1252") for text in WESTERN],
]


@pytest.mark.parametrize(("text", "codec"), EAST_ASIAN)
def test_chinese_japanese_and_korean_8bit_text_reads_as_written(text: str, codec: str) -> None:
    # Each was read as cp1251 or cp1252 mojibake ("»бТйәНТҒӘ" for "会议纪要"), or refused.
    assert decoded(text.encode(codec)) == text


@pytest.mark.parametrize(("text", "codec"), NOT_EAST_ASIAN)
def test_no_other_text_is_read_as_chinese_japanese_or_korean(text: str, codec: str) -> None:
    # The false positives to fear: "ЗНАЧЕНИЕ" in cp1251 is "핏잉터훅" in EUC-KR, "бюджет на"
    # in KOI8-R a few GBK hanzi. Each still reads in its own code page.
    assert decoded(text.encode(codec)) == text


def test_a_koi8r_text_in_lower_case_is_read() -> None:
    # KOI8-R's lower case is cp1251's capitals, each letter swapped for one about as common:
    # a text with few capitals was read as cp1251, "ВАДЦЕФ ОБ ЗПД, ДПВТЩК ДЕОШ". Its words
    # so have no vowel (KOI8-R's vowels are cp1251's consonants), as hardly a Russian word
    # of four letters or more has ("млрд").
    for text in RUSSIAN[-1], RUSSIAN[2]:
        assert decoded(text.encode("koi8_r")) == text


def test_kazakh_in_kz1048_with_only_its_other_letters_is_read() -> None:
    # ұ ү ғ ө are cp1251's ў ї є ґ: with no ә, қ or ң beside them the text was read as
    # cp1251, "Бїгін жўмыс бар" for "Бүгін жұмыс бар". Ukrainian keeps its ї є ґ.
    for text in ("Бүгін жұмыс бар.\n", "Тұрғын үй кешені", "ҮКІМЕТ ҒЫЛЫМ"):
        assert decoded(text.encode("kz1048")) == text
    assert decoded("Її звіт є, ґанок полагоджено.\r\n".encode("cp1251")) == (
        "Її звіт є, ґанок полагоджено.\r\n"
    )


def test_ukrainian_in_koi8u_is_read() -> None:
    # KOI8-U puts і ї є ґ where KOI8-R has box pieces: "Ки╖в, Дн╕про" for "Київ, Дніпро".
    text = "Її звіт є, ґанок полагоджено. Київ, Дніпро.\n"
    assert decoded(text.encode("koi8_u")) == text


def test_a_one_letter_file_and_a_mac_word_in_title_case_are_read() -> None:
    # A letter alone made no Cyrillic word: "я" was read as cp1252's "ÿ". Mac's Д and С
    # are cp1251's quote marks: "Добрый" was "„обрый", a quote never closed.
    assert decoded("я".encode("cp1251")) == "я"
    assert decoded("Я\n".encode("cp1251")) == "Я\n"
    for word in ("Добрый", "Сумма", "Тот"):
        assert decoded(word.encode("mac_cyrillic")) == word
    assert decoded("«Сумма»".encode("cp1251")) == "«Сумма»"  # a quote closed stays cp1251


async def test_cjk_files_are_read_or_refused_never_garbled(tmp_path: Path) -> None:
    # A Japanese file of kanji alone (no kana: Chinese bytes read in a Japanese encoding are
    # so too) cannot be told from Chinese: refused, asking for UTF-8 (the note that it is no
    # text file was untrue), nothing asked or charged.
    # Files in GBK, Shift_JIS and EUC-KR reach the model as written.
    prices = "価格：１２８円\n数量：３個\n".encode("shift_jis")
    files = [
        ("zh.txt", CHINESE[0].encode("gbk")),
        ("ja.txt", JAPANESE[0].encode("shift_jis")),
        ("ko.txt", KOREAN[0].encode("euc_kr")),
    ]
    async with running_stack(tmp_path, answer="Read.") as stack:
        stack.telegram.send_document(USER, prices, file_name="prices.txt")
        assert await stack.reply_text(USER) == UNDECIDED
        assert stack.vllm.requests == []
        questions = await asked(stack, files, USER)
    assert questions == [
        block("zh.txt", CHINESE[0]),
        block("ja.txt", JAPANESE[0]),
        block("ko.txt", KOREAN[0]),
    ]
