"""A text file's bytes as text: the encoding they are most likely in (``decoded``).

UTF-8, UTF-16, Chinese, Japanese or Korean in an 8-bit encoding, or the 8-bit code page its
letters read best in, with no detector to depend on (charset-normalizer, in the lock through
``requests``, named a short French text UTF-16 and a PDF Big5); a file no reading tells
clearly is refused rather than read as garble. Cheap: it runs on every file sent, of at most
the size the bot reads (``handlers.documents``).
"""

# ruff: noqa: RUF001, RUF002, RUF003 -- Cyrillic letters and quote marks: meant
from __future__ import annotations

import codecs
import math
import re
import string

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# A file starting so is no text, though its start reads as one: a PDF (its body may be bytes
# any code page reads too). Images, archives and programs hold a NUL or a control byte.
_SIGNATURES = (b"%PDF-",)
UTF16_NULS = 20  # a UTF-16 text has a NUL at its second byte places for 1 pair in 20 at least
UTF16_STRAY = 1  # ...and at most 1 NUL elsewhere for each 20 there (a CJK 一 is U+4E00)
_WORDS = re.compile(rb"[A-Za-z\x80-\xff]+")  # runs of letters (and 8-bit bytes) in a code page
# KZ-1048's ә Ә қ Қ ң Ң (cp1251's Serbian and Macedonian letters there), and the letters only
# Serbian and Macedonian write, at the same places in both (Ђ ђ Ѓ ѓ Љ љ Њ њ Џ џ).
_KAZAKH = re.compile(rb"[\xbc\xa3\x9d\x8d\xbe\xbd]")
_SERBIAN = re.compile(rb"[\x80\x90\x81\x83\x8a\x9a\x8c\x9c\x8f\x9f]")
# KZ-1048's ғ Ғ ө Ө ұ Ұ ү Ү, where cp1251 has Ukrainian's є Є ґ Ґ ї Ї and Belarusian's ў Ў; and
# the letters that tell a text is neither: Ukrainian writes none of the first, Belarusian
# none of the second (``_windows_page``).
_KAZAKH_OR_SLAVIC = re.compile(rb"[\xba\xaa\xb4\xa5\xa2\xa1\xbf\xaf]")
_NOT_UKRAINIAN = frozenset("ыэъё")
_NOT_BELARUSIAN = frozenset("ищъїєґ")
# The 8-bit Cyrillic code pages a text may be in besides Windows' (``_cyrillic_page``).
_OTHER_CYRILLIC = ("koi8_r", "koi8_u", "cp866", "mac_cyrillic")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_ASCII_LETTERS = string.ascii_letters.encode()
WEIGHED = 4096  # bytes of a text its readings are weighed by (a page or two), from its first
WORD_HEAD = 64  # ...8-bit word, Latin letters before that byte to its start at most
CLEARER = 3.0  # bits by which one must out-read Windows' page (8 times likelier) to be read
EACH_CLEARER = 0.5  # ...and half a bit more for each character the two read differently
# How often each letter comes in running text, in thousandths: Russian's (its national corpus;
# ё where it is written), then those of Kazakh, Ukrainian, Belarusian, Serbian and Macedonian.
_PER_MILLE = dict(zip(
    "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё" "іәқңғұүөһ" "їєґў" "јњљћђџѓќѕ",
    (110, 85, 80, 74, 67, 63, 55, 47, 45, 44, 35, 32, 30, 28, 26, 20, 19, 17, 17, 16, 16, 14, 12,
     10, 9, 7, 6, 5, 4, 3, 3, 0.4, 3,  10, 10, 10, 10, 10, 10, 10, 10, 0.5,  6, 3, 0.2, 0.5,
     5, 2, 1, 1, 0.5, 0.3, 0.3, 0.3, 0.3),
    strict=True,
))  # fmt: skip
RARE = 0.05  # thousandths of any other letter
_BITS = {letter: math.log2(33 * each / 1000) for letter, each in _PER_MILLE.items()}
RARE_BITS = math.log2(33 * RARE / 1000)
MISCASED = -3.0  # bits each letter of a word cased as none is loses
SYMBOL = -3.0  # bits an 8-bit character that is no letter costs, standing apart
STUCK = -6.0  # ...or stuck to a letter, unless it is one of these:
_BESIDE_WORDS = frozenset("«»„“”‘’…")
_QUOTES = "«»„“”‘’"
_APART = frozenset("—–№…•·")  # marks that stand between words
_NO_START = frozenset("ъь")
_VOWELS = frozenset("аеёиоуыэюяіїєәөұү")
NO_VOWEL_LETTERS = 4  # letters a word with no vowel has at least to count as miscased
# Letters' case, u or l each, as words are written: "слово", "СЛОВО", "Слово", and words run
# together as code names them ("ТаблицаЗначений", "СуммаНДС").
_CASES = re.compile("u+|l+|(?:ul+)+(?:uu+)?")
_READ_WORDS = re.compile(r"[^\x00-\x3e\x40\x5b-\x60\x7b-\x7f]+")  # letters, "?", 8-bit
# Chinese, Japanese and Korean text: CJK punctuation, kana, bopomofo, Hangul's letters, the
# ideographs (and extension A), Hangul syllables, full-width forms; ASCII text and blanks.
_CJK_TEXT = re.compile(
    "[\t\n\r\x20-\x7e\u3000-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uff00-\uffef]*"
)
# Chinese, Japanese and Korean text in its 8-bit encodings (``_east_asian``): each codec, and
# the share of a reading's letters beyond ASCII that must be its language's common ones.
_EAST_ASIAN = {"gb18030": 0.5, "cp950": 0.5, "cp932": 0.9, "euc_jp": 0.9, "cp949": 0.9}
CJK_FEWEST = 2  # letters beyond ASCII a reading is weighed by, at least
CYRILLIC_BITS = -1.25  # a byte beyond ASCII, on average, in a Cyrillic reading of Cyrillic text
_JIS_FIRST = range(0xB0, 0xD0)  # EUC-JP's first bytes of JIS X 0208's first-level kanji
_KANA = re.compile("[\u3041-\u30ff]")
# KS X 1001's 2,350 Hangul syllables (EUC-KR's; cp949 adds the other 8,822, rarely written).
_HANGUL = frozenset(
    bytes((first, second)).decode("euc_kr")
    for first in range(0xB0, 0xC9)
    for second in range(0xA1, 0xFF)
)
# One or two letters beyond ASCII (no CJK punctuation or full-width form) with ASCII alone
# on either side, a Latin letter on one: a Latin word's letters in a CJK reading (``_latin``).
_CJK_LETTER = "[^\x00-\x7f\u3000-\u303f\uff01-\uff5e]"
_IN_LATIN_WORD = re.compile(
    f"(?<=[A-Za-z]){_CJK_LETTER}{{1,2}}(?![^\x00-\x7f])"
    f"|(?<![^\x00-\x7f]){_CJK_LETTER}{{1,2}}(?=[A-Za-z])"
)
# The commonest hanzi of Chinese text, as frequency counts of its corpora rank them, and the
# traditional forms of the commonest that have one: two in three of a running text's hanzi
# or more are among them, one in eight of GB2312's first level, fewer of Big5's.
_HANZI = frozenset(
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头"
    "面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信"
    "北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物"
    "台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步"
    "完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞"
    "观争究包组造落视济喜离虽坏兴切团检号們這個來說為時國會過學對裡後麼發還開見經頭動兩長樣現將實點種聲話兒問機給幾業間電門東氣關內產軍場師書員體別處總難數應車報馬張條變聯權傳領該遠資隊"
    "帶義論讓認愛請題統與無從進結歡視語親媽爸錢單誰讀觀戰區當錯樂買賣聽寫記號"
)  # fmt: skip
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")  # not \t \n \v \f \r, ESC
DOS_END = "\x1a"  # Ctrl-Z: DOS's end-of-file mark, after a text file's last line


def decoded(data: bytes) -> str | None:
    """``data`` as text, in the encoding it most likely is; None where it is no text.

    A byte-order mark says which: UTF-8 or UTF-16 (dropped). Else UTF-8 where it decodes;
    else UTF-16 where it clearly is (``_utf16``: its NULs show it, or it reads as Chinese,
    Japanese or Korean); else UTF-8 still where only a few of its
    bytes are not (``_mostly_utf8``); else Chinese, Japanese or Korean in its 8-bit encoding
    where one reading clearly is such text (``_east_asian``: GBK, Big5, Shift_JIS, EUC-JP,
    EUC-KR), refused where such text cannot be told which; else an 8-bit code page: where
    the letters read as Cyrillic words (``_cyrillic``) the Cyrillic one they read best in
    (``_cyrillic_page``: Windows' cp1251 or KZ-1048, as Notepad's "ANSI" saves, or KOI8-R,
    KOI8-U, DOS's cp866, Mac's), else cp1252 (Western European; Latin-1 read the same). A
    PDF's start and a control character other than a blank or an escape (a NUL, say) are no
    text (``_plain``): bytes no code page refuses, an image's or an archive's, hold them; a
    DOS end-of-file mark (Ctrl-Z) ending the text is dropped (``_read``).
    """
    if data.startswith(_SIGNATURES):
        return None
    if data.startswith(_UTF16_BOMS):
        return _read(data, "utf-16")  # drops its BOM
    for codec in ("utf-8-sig", *_utf16(data)):  # utf-8-sig drops a UTF-8 BOM
        text = _read(data, codec)
        if text is not None:
            return text
    if _mostly_utf8(data):  # not a code page's: two garbled letters for each one
        return _read(data, "utf-8-sig", "replace")
    east_asian, is_east_asian = _east_asian(data)
    if is_east_asian:  # refused where no reading is clearly the one
        return None if east_asian is None else _read(data, east_asian)
    return _read(data, _cyrillic_page(data) if _cyrillic(data) else "cp1252")


def undecided(data: bytes) -> bool:
    """Whether ``data``, which ``decoded`` refuses, is text whose encoding cannot be told.

    Chinese, Japanese or Korean in an 8-bit encoding that two readings read alike (a short
    text), or Japanese kanji with no kana (Chinese read so is too): the user is told to save
    it as UTF-8, not that it is no text. Weighed again only for a refused file.
    """
    return not data.startswith(_SIGNATURES) and _east_asian(data) == (None, True)


def _read(data: bytes, codec: str, errors: str = "strict") -> str | None:
    """``data`` in ``codec``, a DOS end-of-file mark (Ctrl-Z) after it dropped; None if no text.

    DOS editors, ``copy /a`` and old Windows tools end a text file with a Ctrl-Z (0x1A): the
    file was refused for it as a control character, though the text before it is plain.
    """
    try:
        text = data.decode(codec, errors).rstrip(DOS_END)
    except UnicodeDecodeError:
        return None
    return text if _plain(text) else None


def _mostly_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 but for a few stray bytes (read as U+FFFD, "�").

    A UTF-8 file with one byte that is none (a stray byte of another encoding pasted in, a
    character cut in two at the end) was read whole as cp1251 or cp1252: every letter beyond
    ASCII garbled. It is UTF-8 where more characters beyond ASCII read right than bytes do not;
    a text in a code page has almost none that read right (its letters are no UTF-8 sequences).
    """
    text = data.decode("utf-8", "replace")
    stray = text.count("\ufffd")
    right = sum(1 for char in text if char >= "\x80") - stray
    return right > stray


def _utf16(data: bytes) -> tuple[str, ...]:
    """The UTF-16 codec ``data`` clearly is without a byte-order mark, if any.

    Text in UTF-16 holds a NUL as the other byte of each ASCII character (a blank, a digit,
    a line break; Latin letters too): at one of the two places of each pair only. A Cyrillic
    text has a few, between its words; a binary file has them at both places, a text in an
    8-bit encoding none (its NUL refused).

    A Chinese, Japanese or Korean text has fewer, as few as its line breaks: it is UTF-16
    where it reads as nothing but those scripts, ASCII among them (``_cjk``).
    """
    if len(data) % 2:
        return ()
    pairs = len(data) // 2
    even, odd = data[0::2].count(0), data[1::2].count(0)
    for nuls, others, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls * UTF16_NULS >= pairs and others * UTF16_NULS <= nuls * UTF16_STRAY:
            return (codec,)
    return tuple(codec for codec in ("utf-16-le", "utf-16-be") if _cjk(data, codec))


def _cjk(data: bytes, codec: str) -> bool:
    """Whether ``data`` in the UTF-16 ``codec`` is CJK text: its scripts, and ASCII, alone.

    At least one ASCII character (a line break, a digit) is asked for: a NUL beside it. An
    8-bit text holds no NUL, and read as UTF-16 its pairs of letters (the capitals of a word
    in cp1251, "ПРИВЕТ") may all be Hangul syllables. Binary files read as other scripts,
    controls or broken surrogates somewhere. Nor is a file of ASCII bytes: half of all CJK
    characters have a byte beyond it, and two Latin letters or digits read as one ideograph
    ("he" is 桥 big-endian): a token saved with a C string's NUL after it read as Chinese.
    """
    if data.isascii():
        return False
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return False
    ascii_too = any(char < "\x80" for char in text)
    return bool(_CJK_TEXT.fullmatch(text)) and ascii_too and not text.isascii()


def _cyrillic_page(data: bytes) -> str:
    """The 8-bit Cyrillic code page a text is in: Windows' (``_windows_page``), or another.

    KOI8-R (Unix's, old e-mail's; KOI8-U, Ukraine's, is it with і ї є ґ for four of its box
    pieces), cp866 (DOS's) and Mac OS Cyrillic hold the same letters at other bytes: read
    in cp1251, such a text was garble, and the model was asked about it.
    Each reading of its start (``_weighed``) is weighed by how its letters read
    (``_likelihood``); another than Windows' is taken only where it reads clearly better
    (``CLEARER``), by more the more characters it reads otherwise (``EACH_CLEARER``): a
    short text may read about as well in two (a word in capitals reads the same in cp866
    and Mac's; "Нет" in Mac's is "Ќет" in cp1251), and then the commonest, Windows', is the
    one. Letter counts alone tell little where the two differ by letters only: a cp1251 text
    in capitals is KOI8-R's lower case, its letters swapped for others about as common
    ("ПОПРОБУЙТЕ" for "онопнасире"), and a whole sentence of them read likelier as KOI8-R
    by a few bits; what tells them is their vowels (``_likelihood``). None of them holds
    Kazakh's own letters: a Kazakh text in one has a "?" for each, as in cp1251.
    """
    windows = _windows_page(data)
    start = _weighed(data)
    read = start.decode(windows, "replace")
    best, most = windows, _likelihood(read)
    for codec in _OTHER_CYRILLIC:  # each reads all 256 bytes
        other = start.decode(codec)
        changed = sum(1 for mine, theirs in zip(read, other, strict=True) if mine != theirs)
        if (likelihood := _likelihood(other) - CLEARER - EACH_CLEARER * changed) > most:
            best, most = codec, likelihood
    return best


def _weighed(data: bytes) -> bytes:
    """What of ``data`` its readings are weighed by: ``WEIGHED`` bytes from its first 8-bit word.

    A text may open with a page or more of ASCII (English, code, a log's header) before its
    Cyrillic: weighed from its very start, it read alike in every code page, or by a word cut
    at the end, and Windows' page was kept for a KOI8-R or cp866 text.
    """
    first = _EIGHT_BIT.search(data)
    at = first.start() if first else 0
    head = data[max(0, at - WORD_HEAD) : at]
    at -= len(head) - len(head.rstrip(_ASCII_LETTERS))  # the word's Latin start, if any
    return data[at : at + WEIGHED]


def _windows_page(data: bytes) -> str:
    """The Windows code page a Cyrillic text is in: cp1251, or its Kazakh kz1048.

    Kazakh's own letters (ә ғ қ ң ө ұ, straight u, shha; its dotted i is cp1251's) are not in
    cp1251: Windows saves a Kazakh text as UTF-8 or UTF-16, or in cp1251 with each of them a
    "?" (or written as the Russian letter it looks like), both read as cp1251 here.
    Kazakhstan's own code page, KZ-1048, puts them where cp1251 has Serbian, Macedonian,
    Ukrainian and Belarusian letters: it is read where ә, қ or ң (cp1251's je, kje, dze) come
    in a text holding none of the letters only Serbian and Macedonian write, at places the two
    code pages share. A text whose only Kazakh letters are ғ, ө, ұ or ү (with і, cp1251's
    too) reads in cp1251 with Ukrainian's є, ґ, ї or Belarusian's ў for them: it is KZ-1048
    where it holds і, as Kazakh does in almost every sentence (Mac's and KOI8-U's і is at
    another byte: a Mac text's і is KZ-1048's ө), a letter Ukrainian does not write (ы, э,
    ъ, ё: Kazakh writes ы often) and one Belarusian does not (и, щ, ъ, or Ukrainian's
    letters). A short one without (a word or two: "Ағаш өсті", "Ғылым") stays cp1251.
    """
    if _SERBIAN.search(data):
        return "cp1251"
    if _KAZAKH.search(data):
        return "kz1048"
    if _KAZAKH_OR_SLAVIC.search(data):
        letters = set(data.decode("cp1251", "replace").lower())
        if "і" in letters and letters & _NOT_UKRAINIAN and letters & _NOT_BELARUSIAN:
            return "kz1048"
    return "cp1251"


def _likelihood(text: str) -> float:
    """How likely ``text`` is Cyrillic as people write it, in bits: the higher, the likelier.

    Each letter beyond ASCII counts by how often it comes in running text (``_PER_MILLE``),
    against a letter drawn at random of 33; it counts less in a word whose case is odd
    ("пРИВЕТ", or one that starts with ь or ъ, as no word does; ``_cased``), or one of
    ``NO_VOWEL_LETTERS`` letters or more with no vowel (hardly a word: "млрд"; KOI8-R's
    vowels are mostly cp1251's consonants, and the other way round), and as a third in a row
    ("ммм"). Capitals count as any letters: a text in them (a heading, a
    notice, a 1C report) is in them throughout, no less likely word by word. Any other 8-bit
    character counts against it (``_cost``); a quote mark before a word's letters that no
    other quote mark follows, to close it, as much as any other (Mac's capitals are cp1251's
    quote marks: "Сумма" is "‘умма"). A "?" (a letter the code page lacked: a Kazakh one)
    is part of its word and weighs nothing.
    """
    bits = 0.0
    last_quote = max(text.rfind(mark) for mark in _QUOTES)
    for found in _READ_WORDS.finditer(text):
        word = found.group()
        letters = "".join(char for char in word if char.isalpha())
        shape = 0.0 if _cased(letters) else MISCASED
        if len(letters) >= NO_VOWEL_LETTERS and not _VOWELS.intersection(letters.lower()):
            shape += MISCASED
        for at, char in enumerate(word):
            if char < "\x80":
                continue
            if not char.isalpha():
                unclosed = at == 0 and char in _QUOTES and found.start() == last_quote
                bits += STUCK if unclosed and letters else _cost(word, at, stuck=bool(letters))
                continue
            bits += _BITS.get(char.lower(), RARE_BITS) + shape
            if at > 1 and word[at - 2] == word[at - 1] == char:
                bits += MISCASED
    return bits


def _cost(word: str, at: int, *, stuck: bool) -> float:
    """What the 8-bit character at ``at`` of ``word``, no letter, costs a reading, in bits.

    More where it sticks to a letter (``stuck``), as only a quote mark or an ellipsis does;
    nothing for a dash, a "№" or a bullet standing apart, as they do between words ("10:00 —
    11:00", "№ 5"; cp866 and Mac's read cp1251's dash as "Ч"). A box-drawing piece apart
    from letters costs nothing where it is a line's (beside one like it) or stands alone (a
    column's): DOS's texts draw tables with them, and their other readings are rows of one
    letter ("═════" in cp1251 is "ННННН").
    """
    char = word[at]
    if stuck:
        return SYMBOL if char in _BESIDE_WORDS else STUCK
    if char in _APART:
        return 0.0
    drawn = "\u2500" <= char <= "\u259f"
    if drawn and (len(word) == 1 or char in word[max(0, at - 1) : at] + word[at + 1 : at + 2]):
        return 0.0
    return SYMBOL


def _cased(letters: str) -> bool:
    """Whether ``letters`` (a word's) are cased as words are: "слово", "Слово" or "СЛОВО".

    Or as code names things, words run together each with its capital ("ТаблицаЗначений",
    "СуммаНДС"): 1C's modules are written so, in cp1251, and Mac's reads their capitals as
    quote marks, a word of lower case letters ("“аблица«начений").
    """
    if not letters:
        return True
    if letters[0].lower() in _NO_START:
        return False
    shape = "".join("u" if char.isupper() else "l" for char in letters)
    return bool(_CASES.fullmatch(shape))


def _cyrillic(data: bytes) -> bool:
    """Whether the letters of ``data``, in an 8-bit code page, read as Cyrillic words (cp1251).

    cp1251 and cp1252 both hold letters at bytes 0xC0 to 0xFF: Cyrillic, and accented Latin.
    In a Russian (or Kazakh, Ukrainian...) text such bytes make whole words; in a French or
    German one each stands among Latin letters ("réunion", "für"). So it is cp1251 where
    words of 8-bit letters alone outnumber words that mix them with Latin ones. A letter
    alone ("à" in French) is no word of either, but where the text holds nothing else (a
    file of one letter: "я", "В"), the words are Cyrillic: as cp1252 it read "ÿ", "Â".
    """
    alone = mixed = latin_words = letters = 0
    for word in _WORDS.findall(data):
        if word.isascii():
            latin_words += 1
        elif len(word.translate(None, _ASCII_LETTERS)) < len(word):
            mixed += 1
        elif len(word) > 1:
            alone += 1
        elif word.decode("cp1251", "replace").isalpha():
            letters += 1
    return alone > mixed or (alone == mixed == latin_words == 0 and letters > 0)


def _plain(text: str) -> bool:
    """Whether ``text`` holds no control character but blanks, line breaks and escapes."""
    return not _CONTROLS.search(text)


def _east_asian(data: bytes) -> tuple[str | None, bool]:
    """The 8-bit Chinese, Japanese or Korean encoding ``data`` is in; and whether it is one.

    GBK (read as GB18030, its superset), Big5, Shift_JIS, EUC-JP and EUC-KR each read most
    pairs of 8-bit bytes as characters of their own: any of them may read another's file,
    or a Cyrillic one, without a decoding error. A reading that decodes is weighed by the
    share of its letters (punctuation aside) that are its language's common ones
    (``_common``): it is the one where that share is as high as the language's text has
    (``_EAST_ASIAN``) and no other reading's is. Big5, Shift_JIS and EUC-KR are read as
    Windows writes them, as Notepad's "ANSI" saves on a Taiwanese, Japanese or Korean
    Windows: cp950, cp932 (NEC's ① ② ㈱ Ⅰ) and cp949 (the Hangul KS X 1001 lacks, 똠): a
    file holding one was refused or read as cp1252 or cp866 garble. Where two readings are
    (a short text), or
    where only a Japanese one is but it holds no kana (as Japanese text does, and Chinese
    read so does not), the file is such a text that cannot be told: refused, as read wrong
    it was mojibake the model was asked about. A reading of fewer than ``CJK_FEWEST``
    letters is not weighed: too few tell; nor one of Latin words misread (``_latin``), nor
    a file that reads as Cyrillic as clearly as Cyrillic text does (``_reads_cyrillic``).
    """
    read: list[str] = []
    kanji_only = False
    for codec, share in _EAST_ASIAN.items():
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        letters = [char for char in text if char >= "\x80" and not _punctuation(char)]
        if len(letters) < CJK_FEWEST or not _plain(text):
            continue
        if sum(1 for char in letters if _common(char, codec)) < share * len(letters):
            continue
        if _latin(text, len(letters)):
            continue
        if codec in {"cp932", "euc_jp"} and not _KANA.search(text):
            kanji_only = True
            continue
        read.append(codec)
    if (read or kanji_only) and _reads_cyrillic(data):
        return None, False
    if len(read) == 1:
        return read[0], True
    return None, bool(read) or kanji_only


def _latin(text: str, letters: int) -> bool:
    """Whether ``text``, a CJK reading of ``letters`` letters, is Latin-script words misread.

    In a Western code page an accented letter, or Word's curly apostrophe, and the Latin
    letter after it are one character in GBK, Big5 or Shift_JIS ("ANNÉE" is "ANN万" in GBK;
    "It’s", "don’t" common kanji in Shift_JIS, a kanji-only file refused), as Turkish's
    "ÖĞ" is "中"; two accented letters in a row are Hangul in EUC-KR ("żó"). Such a reading's
    letters come one or two at a time inside the Latin letters of a word, with nothing but
    ASCII on either side ("ANN万;1", "Za웁녔 "), and a common one repeated (a CSV whose every
    row holds "ANNÉE") read the whole file as Chinese. A CJK text's letters come in longer
    runs, or beside its own punctuation; Latin words written in it ("用Excel打开CSV文件，
    然后点Save保存") leave few so: it is Latin words where half its letters or more are (a
    line as short as "用Python写" is not read as Chinese so).
    """
    inside = sum(len(found) for found in _IN_LATIN_WORD.findall(text))
    return inside * 2 >= letters


def _reads_cyrillic(data: bytes) -> bool:
    """Whether ``data`` reads as Cyrillic text in one of its code pages, as clearly as such does.

    Text in capitals (cp1251's are Hangul in EUC-KR, first-level hanzi in GBK), and KOI8-R's
    lower case (at the same bytes), reads as CJK text too: a Cyrillic reading of it averages
    ``CYRILLIC_BITS`` a byte beyond ASCII or more (``_likelihood``; a Kazakh word in capitals
    about -1.1), one of a CJK sentence -1.4 or less, its letters in odd cases among symbols.
    A word or two of CJK text may read as Cyrillic as well: then it is Cyrillic.
    """
    start = _weighed(data)
    bytes_ = len(_EIGHT_BIT.findall(start))
    pages = ("cp1251", "kz1048", *_OTHER_CYRILLIC)
    best = max(_likelihood(start.decode(codec, "replace")) for codec in pages)
    return best >= CYRILLIC_BITS * bytes_


def _punctuation(char: str) -> bool:
    """Whether ``char`` is CJK punctuation or a full-width form (a digit, a colon)."""
    return "\u3000" <= char <= "\u303f" or "\uff01" <= char <= "\uff5e"


def _common(char: str, codec: str) -> bool:
    """Whether ``char`` is one of the common letters of the language ``codec`` writes.

    For Chinese the commonest hanzi (``_HANZI``); for Japanese kana and JIS X 0208's first
    level (2,965 kanji); for Korean KS X 1001's Hangul (``_HANGUL``: cp949's others are
    rare, and two accented letters of a Polish word in cp1250 read as one). Another
    encoding's bytes read in one are mostly rarer characters, symbols or another script's
    letters.
    """
    if codec in {"gb18030", "cp950"}:
        return char in _HANZI
    if codec == "cp949":
        return char in _HANGUL
    if "\u3041" <= char <= "\u30ff":
        return True
    return "\u4e00" <= char <= "\u9fff" and char.encode("euc_jp", "replace")[0] in _JIS_FIRST
