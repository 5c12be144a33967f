// The page's texts in English, Russian and Kazakh. They live in the bundle, so its published
// hash covers what the page tells people about their privacy, too.

const en = {
  title: "Veil · private mode",
  balance: "Balance: {balance} ★ · free today: {free} tokens",
  model: "Model",
  placeholder: "Your question…",
  send: "Send",
  stop: "Stop",
  sealing: "Sealing your question on this device…",
  writing: "Writing…",
  stopped: "Stopped.",
  unsent: "Stopped before your question was sent: nothing was charged.",
  receipt: "Signed receipt verified: {prompt} + {completion} tokens ({status}).",
  forget: "Forget this device's history",
  forgotten: "History erased: its key is destroyed.",
  history_kept: "History stays on this device, encrypted with a key kept in its keychain.",
  history_full: "This device's storage is full, so this exchange was not saved to the history.",
  history_not_kept:
    "This Telegram app has no secure storage, so this history is not saved: it is gone when you close the page.",
  about: "What private mode protects",
  protects:
    "Your question is sealed here, on your device, to the inference worker's key, after this page has checked that key against the operator key pinned in the page itself. Telegram and the bot only pass the sealed bytes on: neither can read your questions or the answers. The bot bills you from the worker's signed receipt, which this page checks too. Your history stays on this device, encrypted.",
  not_protects:
    "What it does not protect: the bot serves this page, so a dishonest operator could serve a different one. Compare the SHA-256 below with the one published in Veil's README (a page that does not match must not be trusted). The worker (gateway and model) reads your question: that is where the model runs. Telegram and the bot still see that you use private mode, when, how large the sealed messages are, and your balance.",
  page_hash: "SHA-256 of this page's code: {hash}",
  pinned: "Operator keys pinned in this page: {keys}",
  unauthorized: "Open this page from the Veil bot in Telegram (/private).",
  stale: "This page was opened too long ago: close it and open it again from the bot.",
  insufficient: "Not enough credit for an answer. Top up with /buy in the bot.",
  busy: "An answer is still being written.",
  unavailable: "No model server is available right now. Please try again in a moment.",
  busy_retry: "The model server is busy right now. Please try again in {seconds} s.",
  untrusted: "No model server's keys could be verified against the pinned operator keys, so nothing was sent.",
  refused: "The model server refused the request ({code}).",
  ChunkTampered: "The answer was altered on the way (a chunk failed its check), so it was discarded.",
  ChunkOutOfOrder: "Parts of the answer arrived out of order, so it was discarded.",
  StreamSpliced: "Part of another answer was mixed into this one, so it was discarded.",
  StreamTruncated: "The answer was cut off on the way.",
  TrailingData: "Unexpected bytes followed the answer, so it was discarded.",
  MalformedMessage: "The answer could not be read, so it was discarded.",
  ReceiptInvalid: "The answer's usage receipt did not verify.",
  backend: "The model could not answer this time. Please try again.",
  context_length: "This conversation is too long for the model. Forget the history to start afresh.",
  stalled: "The model stopped responding. Please try again.",
  network: "The connection to the bot failed. Please try again.",
  server: "The bot could not take your question just now. Please try again in a moment.",
  too_large: "This conversation is too long to send. Forget the history to start afresh.",
  empty: "Write a question first.",
  thinking: "Thinking",
};

const ru = {
  title: "Veil · приватный режим",
  balance: "Баланс: {balance} ★ · бесплатно сегодня: {free} токенов",
  model: "Модель",
  placeholder: "Ваш вопрос…",
  send: "Отправить",
  stop: "Стоп",
  sealing: "Шифруем вопрос на этом устройстве…",
  writing: "Пишу…",
  stopped: "Остановлено.",
  unsent: "Остановлено до отправки вопроса: ничего не списано.",
  receipt: "Подписанный чек проверен: {prompt} + {completion} токенов ({status}).",
  forget: "Стереть историю на этом устройстве",
  forgotten: "История стёрта: её ключ уничтожен.",
  history_kept: "История хранится на этом устройстве, зашифрованная ключом из его хранилища ключей.",
  history_full: "Память устройства заполнена, поэтому этот обмен не сохранён в истории.",
  history_not_kept:
    "В этом приложении Telegram нет защищённого хранилища, поэтому история не сохраняется: она исчезнет, когда вы закроете страницу.",
  about: "Что защищает приватный режим",
  protects:
    "Ваш вопрос шифруется здесь, на вашем устройстве, ключом сервера модели — после того как эта страница сверила этот ключ с ключом оператора, зашитым в саму страницу. Telegram и бот лишь передают зашифрованные байты: ни тот, ни другой не может прочитать ни ваши вопросы, ни ответы. Бот списывает оплату по подписанному чеку сервера, который проверяет и эта страница. История хранится на этом устройстве в зашифрованном виде.",
  not_protects:
    "Чего он не защищает: эту страницу отдаёт бот, поэтому недобросовестный оператор мог бы подсунуть другую. Сверьте SHA-256 ниже с опубликованным в README Veil (странице, которая не совпадает, доверять нельзя). Сервер модели (шлюз и модель) читает ваш вопрос: там работает модель. Telegram и бот по-прежнему видят, что вы пользуетесь приватным режимом, когда, какого размера зашифрованные сообщения, и ваш баланс.",
  page_hash: "SHA-256 кода этой страницы: {hash}",
  pinned: "Ключи оператора, зашитые в страницу: {keys}",
  unauthorized: "Откройте эту страницу из бота Veil в Telegram (/private).",
  stale: "Страница открыта слишком давно: закройте её и откройте снова из бота.",
  insufficient: "Недостаточно кредита для ответа. Пополните его командой /buy в боте.",
  busy: "Предыдущий ответ ещё пишется.",
  unavailable: "Сейчас нет доступного сервера модели. Попробуйте чуть позже.",
  busy_retry: "Сервер модели сейчас занят. Попробуйте снова через {seconds} с.",
  untrusted: "Ключи ни одного сервера модели не прошли проверку по ключам оператора, поэтому ничего не отправлено.",
  refused: "Сервер модели отклонил запрос ({code}).",
  ChunkTampered: "Ответ был изменён в пути (часть не прошла проверку), поэтому он отброшен.",
  ChunkOutOfOrder: "Части ответа пришли не по порядку, поэтому он отброшен.",
  StreamSpliced: "В ответ подмешана часть другого ответа, поэтому он отброшен.",
  StreamTruncated: "Ответ оборвался в пути.",
  TrailingData: "После ответа пришли лишние байты, поэтому он отброшен.",
  MalformedMessage: "Ответ не удалось прочитать, поэтому он отброшен.",
  ReceiptInvalid: "Чек об использовании не прошёл проверку.",
  backend: "Модель не смогла ответить. Попробуйте ещё раз.",
  context_length: "Разговор слишком длинный для модели. Сотрите историю, чтобы начать заново.",
  stalled: "Модель перестала отвечать. Попробуйте ещё раз.",
  network: "Связь с ботом прервалась. Попробуйте ещё раз.",
  server: "Бот не смог принять ваш вопрос прямо сейчас. Попробуйте ещё раз чуть позже.",
  too_large: "Разговор слишком длинный для отправки. Сотрите историю, чтобы начать заново.",
  empty: "Сначала напишите вопрос.",
  thinking: "Размышления",
};

const kk = {
  title: "Veil · жеке режим",
  balance: "Баланс: {balance} ★ · бүгін тегін: {free} токен",
  model: "Модель",
  placeholder: "Сұрағыңыз…",
  send: "Жіберу",
  stop: "Тоқтату",
  sealing: "Сұрағыңыз осы құрылғыда шифрлануда…",
  writing: "Жазып жатырмын…",
  stopped: "Тоқтатылды.",
  unsent: "Сұрағыңыз жіберілмей тұрып тоқтатылды: ештеңе есептен шығарылмады.",
  receipt: "Қолтаңбалы түбіртек тексерілді: {prompt} + {completion} токен ({status}).",
  forget: "Осы құрылғыдағы тарихты өшіру",
  forgotten: "Тарих өшірілді: оның кілті жойылды.",
  history_kept: "Тарих осы құрылғыда, оның кілттер қоймасындағы кілтпен шифрланып сақталады.",
  history_full: "Құрылғы жады толы, сондықтан бұл сұрақ пен жауап тарихқа сақталмады.",
  history_not_kept:
    "Бұл Telegram қолданбасында қорғалған қойма жоқ, сондықтан тарих сақталмайды: бетті жапқанда ол жойылады.",
  about: "Жеке режим нені қорғайды",
  protects:
    "Сұрағыңыз осында, құрылғыңызда, модель серверінің кілтімен шифрланады — бұл бет ол кілтті беттің өзіне енгізілген оператор кілтімен салыстырып тексергеннен кейін. Telegram мен бот тек шифрланған байттарды жеткізеді: екеуі де сұрақтарыңызды да, жауаптарды да оқи алмайды. Бот төлемді сервердің қолтаңбалы түбіртегі бойынша алады, оны осы бет те тексереді. Тарихыңыз осы құрылғыда шифрланып сақталады.",
  not_protects:
    "Неден қорғамайды: бұл бетті бот береді, сондықтан адал емес оператор басқа бет беруі мүмкін. Төмендегі SHA-256 мәнін Veil README-інде жарияланғанмен салыстырыңыз (сәйкес келмейтін бетке сенуге болмайды). Модель сервері (шлюз бен модель) сұрағыңызды оқиды: модель сонда жұмыс істейді. Telegram мен бот жеке режимді қолданатыныңызды, қашан, шифрланған хабарлардың көлемін және балансыңызды бәрібір көреді.",
  page_hash: "Осы бет кодының SHA-256 мәні: {hash}",
  pinned: "Бетке енгізілген оператор кілттері: {keys}",
  unauthorized: "Бұл бетті Telegram-дағы Veil ботынан ашыңыз (/private).",
  stale: "Бет тым ерте ашылған: оны жауып, боттан қайта ашыңыз.",
  insufficient: "Жауапқа кредит жеткіліксіз. Боттағы /buy арқылы толтырыңыз.",
  busy: "Алдыңғы жауап әлі жазылып жатыр.",
  unavailable: "Қазір қолжетімді модель сервері жоқ. Сәлден соң қайталап көріңіз.",
  busy_retry: "Модель сервері қазір бос емес. {seconds} с кейін қайталап көріңіз.",
  untrusted: "Бірде-бір модель серверінің кілті оператор кілттерімен тексеруден өтпеді, сондықтан ештеңе жіберілмеді.",
  refused: "Модель сервері сұрауды қабылдамады ({code}).",
  ChunkTampered: "Жауап жолда өзгертілген (бір бөлігі тексеруден өтпеді), сондықтан ол алынып тасталды.",
  ChunkOutOfOrder: "Жауаптың бөліктері ретсіз келді, сондықтан ол алынып тасталды.",
  StreamSpliced: "Жауапқа басқа жауаптың бөлігі араласқан, сондықтан ол алынып тасталды.",
  StreamTruncated: "Жауап жолда үзіліп қалды.",
  TrailingData: "Жауаптан кейін артық байттар келді, сондықтан ол алынып тасталды.",
  MalformedMessage: "Жауапты оқу мүмкін болмады, сондықтан ол алынып тасталды.",
  ReceiptInvalid: "Пайдалану түбіртегі тексеруден өтпеді.",
  backend: "Модель бұл жолы жауап бере алмады. Қайталап көріңіз.",
  context_length: "Бұл әңгіме модель үшін тым ұзын. Жаңадан бастау үшін тарихты өшіріңіз.",
  stalled: "Модель жауап беруді тоқтатты. Қайталап көріңіз.",
  network: "Ботпен байланыс үзілді. Қайталап көріңіз.",
  server: "Бот сұрағыңызды дәл қазір қабылдай алмады. Сәлден соң қайталап көріңіз.",
  too_large: "Бұл әңгіме жіберуге тым ұзын. Жаңадан бастау үшін тарихты өшіріңіз.",
  empty: "Алдымен сұрақ жазыңыз.",
  thinking: "Ой-толғау",
};

export const CATALOGS = { en, ru, kk };

/** The texts for a Telegram language code ("ru", "kk-KZ"), English for any other. */
export function textsFor(languageCode) {
  const code = String(languageCode || "en").split("-")[0].toLowerCase();
  const language = code in CATALOGS ? code : "en";
  const catalog = CATALOGS[language];
  const texts = (key, values = {}) =>
    (catalog[key] ?? en[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
  texts.language = language;
  return texts;
}
