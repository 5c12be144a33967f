// The page: ask in private mode. The question is sealed here and only ciphertext leaves.
//
// One question's way: learn from the bot where to seal it and how long an answer the balance
// pays for (api/prepare), verify the gateway's bundle against the operator keys pinned in this
// page, build the chat (the question after the newest turns of the device history that fit
// the model's window as the bundle states it, at most the bot's limit: context.js), seal, send
// the sealed bytes with what the bot needs to bill (api/relay), open the chunks as they stream
// in, check the signed receipt, keep the exchange in the device history. A reasoning model's
// thinking is shown apart, folded above the answer, and never kept: its REASONING records, or
// a <think>…</think> opening the answer's text (a model served without a reasoning parser,
// think.js). Stop sends the cancel
// proof, which only this page can make, for the bot to forward. Every text is set with
// textContent: no answer is ever parsed as HTML.

import {
  ChunkOpener,
  SealedError,
  b64d,
  b64e,
  cancelProof,
  encodeInner,
  newRequestSecrets,
  receiptProof,
  sealRequest,
  toHex,
  verifyBundle,
  verifyReceipt,
} from "./protocol.js";
import {
  ClientStorage,
  applyTheme,
  installBridge,
  launchParams,
  onEvent,
  postEvent,
} from "./telegram.js";
import { History } from "./history.js";
import { DEFAULT_MIN_ANSWER, contextRefusal, fitContext, modelWindow } from "./context.js";
import { textsFor } from "./texts.js";
import { ThinkTags, isBlank, strip } from "./think.js";

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
// A stop that found no answer at the bot while the sealed question is still on its way there is
// sent again after this long, until the bot has taken the question (see stop()).
const STOP_AGAIN_MS = 1000;
const DISCARD = new Set([
  "ChunkTampered",
  "ChunkOutOfOrder",
  "StreamSpliced",
  "TrailingData",
  "MalformedMessage",
]);

// The bot's refusal codes (handlers/webapp.py) to the page's texts; any other is told by status.
const BOT_CODES = {
  unauthorized: "unauthorized",
  stale: "stale",
  bot_clock: "bot_clock",
  insufficient_credit: "insufficient",
  busy: "busy",
  untrusted: "untrusted",
  reopen: "reopen",
  device_clock: "device_clock",
  keys_out_of_time: "keys_out_of_time",
  unavailable: "unavailable",
  body_timeout: "network",
  too_large: "too_large",
  request_id_taken: "request_id_taken",
  stopped: "unanswered",
  bad_request: "mismatch",
  not_found: "mismatch",
  method_not_allowed: "mismatch",
  ledger: "server",
  error: "server",
};
// The gateway's refusal codes (gateway/refusals.py) that have a text of their own; the rest
// are told as the model server refusing, with the code.
const GATEWAY_CODES = {
  unknown_key: "unknown_key",
  stale_request: "stale_request",
  unknown_model: "unknown_model",
  unauthenticated: "unauthenticated",
  too_large: "too_large",
};

const $ = (id) => document.getElementById(id);

/** Whether the turns ``all`` begin with the turns ``part``. */
function startsWith(all, part) {
  return (
    part.length <= all.length &&
    part.every((turn, i) => turn.role === all[i].role && turn.content === all[i].content)
  );
}

/** A gateway's refusal that another gateway, or the same one later, may not give. */
function temporaryRefusal(error) {
  const refused = error.body?.error || {};
  return (
    error.code === "gateway_refused" &&
    (RETRY_STATUSES.has(refused.gateway_status) || refused.gateway_code === "unreachable")
  );
}

/**
 * A refusal the next gateway offered may not give: a temporary one, or a gateway whose clock
 * disagrees with the bot's (``stale_request``: it ran nothing; another's clock may agree, as
 * the bot's own chat fails over on it). Told as itself when every gateway gives it.
 */
function anotherMayTake(error) {
  return (
    error instanceof ApiError &&
    (temporaryRefusal(error) ||
      (error.code === "gateway_refused" && error.body.error?.gateway_code === "stale_request"))
  );
}

function config() {
  const value = JSON.parse($("veil-config").textContent);
  return { operatorKeys: value.operator_keys.map(b64d), scriptSha256: value.script_sha256 };
}

/** Stop was pressed before the sealed question left the page: nothing was sent or held. */
class Unsent extends Error {}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.code || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || "error";
    this.body = body || {};
  }
}

class App {
  constructor() {
    this.launch = launchParams();
    this.t = textsFor(this.launch.user?.language_code);
    this.config = config();
    this.history = new History(new ClientStorage("secure", this.launch.version), this.launch.user?.id ?? 0);
    this.running = null; // {requestId, responseKey, stopRequested, stopTaken, answering, forgotten}
    this.forgetting = null; // while Forget erases the history: its promise
    this.shown = null; // the history the screen shows: its key and Forget's mark read with it
    this.shownTurns = []; // the history's turns the screen shows (what goes as context)
    this.account = null;
    this.loadingAccount = false; // while a question waits for the account the page started without
    this.takingIn = false; // while another page's exchanges are read in (takeInOthers)
    this.clockOffset = 0; // seconds the bot's clock is ahead of this device's
  }

  /**
   * Now, in seconds, by the bot's clock as its last reply's Date header gave it: what the
   * sealed request's timestamp needs (the gateway allows two minutes of skew, and a phone's
   * clock set by hand can be further off). The bundle's validity is still judged by this
   * device's own clock.
   */
  serverNow() {
    return Math.floor(Date.now() / 1000 + this.clockOffset);
  }

  learnClock(response) {
    const served = Date.parse(response.headers.get("Date") ?? "");
    if (Number.isFinite(served)) this.clockOffset = (served - Date.now()) / 1000;
  }

  url(path) {
    return new URL(path, window.location.href).toString();
  }

  async api(path, { method = "GET", body, headers = {} } = {}) {
    const response = await fetch(this.url(path), {
      method,
      body,
      headers: { Authorization: `tma ${this.launch.initData}`, ...headers },
      cache: "no-store",
    });
    if (!response.ok) {
      let payload = null;
      try {
        payload = await response.json();
      } catch {
        payload = null;
      }
      throw new ApiError(response.status, payload);
    }
    return response;
  }

  // -- the page ------------------------------------------------------------------------------

  async start() {
    installBridge();
    applyTheme(this.launch.theme);
    onEvent("theme_changed", (data) => applyTheme(data?.theme_params));
    postEvent("web_app_ready");
    postEvent("web_app_expand");
    postEvent("web_app_set_header_color", { color_key: "bg_color" });
    document.documentElement.lang = this.t.language;
    this.renderStatic();
    $("send").addEventListener("click", () => (this.running ? this.stop() : this.ask()));
    $("forget").addEventListener("click", () => this.forget());
    $("question").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) this.ask();
    });
    const kept = await this.history.open();
    this.shown = this.showing(); // the history whose exchanges the screen shows
    let told = this.history.silent ? "history_keychain_silent" : "history_not_kept";
    if (this.history.forgetPending) told = "forgotten_key_kept";
    if (!this.history.local) told = "history_storage_blocked"; // (the browser's own setting)
    this.note(this.t(kept ? "history_kept" : told), "history");
    if (this.history.unreadable) $("notice").textContent += ` ${this.t("history_unreadable")}`;
    this.showKept();
    // Another page of the device kept an exchange: shown here too, as it is this page's context;
    // or a page of an older bundle forgot (``watches``): nothing of it stays.
    window.addEventListener("storage", (event) => {
      if (this.history.watches(event.key)) this.takeInOthers();
    });
    await this.refreshAccount();
    // Told with whatever the opening ends in (a balance that could not be fetched writes its
    // own notice), and taken only then: it is told once, so it must not be written over.
    if (await this.history.takeLost()) $("notice").textContent += ` ${this.t("answer_lost")}`;
    document.body.dataset.ready = "true";
  }

  renderStatic() {
    const t = this.t;
    document.title = t("title");
    $("title").textContent = t("title");
    $("model-label").textContent = t("model");
    $("question").placeholder = t("placeholder");
    $("send").textContent = t("send");
    $("forget").textContent = t("forget");
    $("about-title").textContent = t("about");
    $("protects").textContent = t("protects");
    $("not-protects").textContent = t("not_protects");
    $("page-hash").textContent = t("page_hash", { hash: this.config.scriptSha256 });
    $("pinned").textContent = t("pinned", { keys: this.config.operatorKeys.map(b64e).join(", ") });
  }

  /**
   * Show the balance and the models. ``afterAnswer``: the notice holds how the answer ended
   * (its verified receipt, a stop, an error), which a failed refresh must not replace; the
   * balance says instead that it could not be updated.
   */
  async refreshAccount({ afterAnswer = false } = {}) {
    try {
      const account = await (await this.api("api/account")).json();
      this.account = account;
      delete $("balance").dataset.stale;
      $("balance").textContent = this.t("balance", {
        balance: account.balance,
        free: account.free_tokens_left,
      });
      const select = $("model");
      const chosen = select.value || this.history.local?.getItem("veil:model") || account.default_model;
      select.replaceChildren(
        ...account.models.map((name) => {
          const option = document.createElement("option");
          option.value = name;
          option.textContent = name;
          return option;
        }),
      );
      if (account.models.includes(chosen)) select.value = chosen;
    } catch (error) {
      if (!afterAnswer) {
        this.fail(error);
        return;
      }
      $("balance").textContent = this.t("balance_stale");
      $("balance").dataset.stale = "true";
    }
  }

  note(text, kind = "info") {
    const notice = $("notice");
    notice.textContent = text;
    notice.dataset.kind = kind;
  }

  bubble(role, text) {
    const item = document.createElement("div");
    item.className = `bubble ${role}`;
    item.dir = "auto"; // an answer in Arabic or Hebrew reads right to left
    item.textContent = text;
    $("messages").append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  /** A folded place for a reasoning model's thinking, just before the answer's bubble. */
  thought(answer) {
    const item = document.createElement("details");
    item.className = "bubble assistant thinking";
    const summary = document.createElement("summary");
    summary.textContent = `💭 ${this.t("thinking")}`;
    const body = document.createElement("div");
    body.dir = "auto";
    item.append(summary, body);
    answer.before(item);
    return body;
  }

  fail(error) {
    let key = "network";
    let values = {};
    if (error instanceof SealedError) {
      if (error.kind.startsWith("Bundle") || error.kind === "UnsupportedSuite") key = "untrusted";
      else if (error.kind === "RequestTooLarge") key = "too_large";
      else key = this.t(error.kind) === error.kind ? "MalformedMessage" : error.kind;
    }
    else if (error instanceof ApiError) {
      const sent = error.body?.error?.code;
      if (error.code === "gateway_refused") {
        // The model server's own refusal: its code told as what it means where the page can
        // say so, else as a refusal naming the code.
        const code = error.body.error.gateway_code;
        key = GATEWAY_CODES[code] || "refused";
        values = { code };
      } else {
        // The bot's refusals by their codes; a reply with none (a proxy in front of the bot
        // answering for it) by its status: its trouble when 5xx or 429, else a request the
        // bot's side could not take. Neither is the model server refusing.
        const own = error.status >= 500 || error.status === 429 ? "server" : "mismatch";
        key = (sent && BOT_CODES[sent]) || own;
        values = { code: sent || `HTTP ${error.status}`, off: error.body?.error?.off };
      }
      // A gateway that is busy or down for now is not a refusal: say so, and when to try again
      // if it said (its Retry-After, passed on by the bot).
      if (temporaryRefusal(error)) {
        const seconds = error.body.error.retry_after;
        key = Number.isInteger(seconds) && seconds > 0 ? "busy_retry" : "unavailable";
        values = { seconds };
      }
    }
    this.note(this.t(key, values), "error");
    $("notice").dataset.error = error instanceof SealedError ? error.kind : error.code || "network";
  }

  // -- asking --------------------------------------------------------------------------------

  /**
   * The chat to seal for ``question``: the history that fits ``stated`` (the bundle's window).
   *
   * A question too long by its bytes for the answer's room (a long paste: bytes are only the
   * tokens' ceiling) is still asked with the room, as the bot asks its own; if the model server
   * finds it too long, the page asks once more (``refitted``).
   */
  chat(request, stated, answerTokens) {
    const { fit, room, maxAnswer } = this.fit(request, stated);
    return {
      model: request.model,
      messages: fit.messages,
      cache_salt: this.history.cacheSalt,
      max_completion_tokens: Math.min(answerTokens ?? maxAnswer, Math.max(fit.maxAnswer, room)),
    };
  }

  /** What of the history fits ``stated`` for ``request`` (``fitContext``), and the room kept. */
  fit(request, stated) {
    const account = this.account || {};
    const maxAnswer = account.max_answer_tokens || 1024;
    const window = modelWindow(stated, account.context_tokens);
    const fit = fitContext(this.history.turns, request.question, {
      window,
      maxAnswer,
      minAnswer: account.min_answer_tokens || DEFAULT_MIN_ANSWER,
    });
    return { fit, room: Math.min(maxAnswer, Math.floor(window / 2)), maxAnswer };
  }

  /**
   * The chat to ask again after the model server refused ``chat`` as too long: the answer
   * fitted to the prompt's count its refusal states, or, where it states none exactly (a later
   * vLLM counts only one token past the room), what the question's bytes leave, as before the
   * room was asked for. Null when there is nothing to ask again (another failure, text already
   * shown, no room worth an answer, or no less than was asked).
   */
  refitted(request, stated, chat, result, shown) {
    if (result.error?.kind !== "context_length" || shown) return null;
    const refusal = contextRefusal(result.error.message);
    const tokens = refusal ? refusal.window - refusal.prompt : this.fit(request, stated).fit.maxAnswer;
    const floor = (this.account || {}).min_answer_tokens || DEFAULT_MIN_ANSWER;
    if (tokens < floor || tokens >= chat.max_completion_tokens) return null;
    return { ...chat, max_completion_tokens: tokens };
  }

  async ask() {
    const question = $("question").value.trim();
    if (!question || this.running) {
      if (!question) this.note(this.t("empty"));
      return;
    }
    if (!this.account) {
      // The page started without its account (the network down, the bot restarting): it
      // knows no model to ask yet. Learn them now; if that fails too, it says why and the
      // question stays where it was typed.
      if (this.loadingAccount) return;
      this.loadingAccount = true;
      try {
        await this.refreshAccount();
      } finally {
        this.loadingAccount = false;
      }
      if (!this.account || this.running) return;
    }
    const model = $("model").value;
    try {
      this.history.local?.setItem("veil:model", model);
    } catch {
      // a full storage: the choice is not remembered, the question still goes
    }
    const request = { model, question };
    $("question").value = "";
    const asked = this.bubble("user", question);
    const answer = this.bubble("assistant", "");
    answer.id = "answer";
    for (const old of document.querySelectorAll("#answer")) if (old !== answer) old.removeAttribute("id");
    this.note(this.t("sealing"), "progress");
    delete $("notice").dataset.error;
    delete $("notice").dataset.status;
    delete $("notice").dataset.cut;
    this.setRunning({
      requestId: null,
      responseKey: null,
      stopRequested: false,
      stopTaken: null, // the request id of the stop the bot took
      answering: false,
    });
    let text = "";
    let thought = ""; // the thinking so far
    let thinking = null; // where it is shown, once it shows more than blanks
    let unshown = ""; // the thinking since what is shown: blanks that may yet end it
    const running = this.running;
    const forgotten = () => running.forgotten === true; // Forget pressed while it was written
    try {
      // Forget was pressed just before: the question waits for the new history (its key, its
      // cache salt), so nothing of the erased one goes with it or is shown over it.
      if (this.forgetting) await this.forgetting.catch(() => {});
      // Another page's exchanges since, for the context too. After Forget on another page
      // (found now, or when an answer was to be kept), nothing of the erased history stays on
      // this screen either.
      await this.history.reload();
      if (this.history.key !== this.shown.key || this.history.epoch !== this.shown.epoch) {
        $("messages").replaceChildren(asked, answer);
        this.shown = this.showing();
        this.shownTurns = [];
      }
      this.showKept(asked);
      const on = {
        shown: () => text !== "" || thinking !== null,
        // Each piece is added to what is shown, never the whole text set again: a long answer
        // costs the page its length, not its length squared.
        delta: (delta) => {
          text += delta;
          answer.append(delta);
        },
        // Shown as the chat shows it: without its opening and closing blanks, and not at all
        // when it is blanks alone (Qwen3's "<think>\n\n</think>" when it does not think).
        // Blanks as the chat's str.strip() counts them (think.js), not as trim() does. Until
        // it shows, the thinking so far is blanks: only the new piece needs reading.
        // Added piece by piece too: the blanks at its end so far wait (``unshown``) until text
        // follows them.
        reasoning: (piece) => {
          thought += piece;
          if (thinking === null && isBlank(piece)) return;
          thinking ??= this.thought(answer);
          unshown += piece;
          const core = strip(unshown);
          if (!core) return;
          const end = unshown.indexOf(core) + core.length;
          thinking.append(thinking.firstChild ? unshown.slice(0, end) : core);
          unshown = unshown.slice(end);
        },
      };
      let result;
      try {
        result = await this.send(request, on);
      } catch (error) {
        // The gateway rotated its key since the bot last fetched it: the bot has the new
        // bundle now, so prepare and seal once more.
        if (!(error instanceof ApiError && error.body?.error?.gateway_status === 410)) throw error;
        result = await this.send(request, on);
      }
      const receipt = result.receipt?.receipt;
      // The model only thought (a <think> never closed, or a parser's REASONING alone: it ran
      // out of room) and wrote no answer. The bot bills the receipt, thinking and all, as it
      // bills any: the page says so, keeps nothing, and gives the question back to be sent
      // again; the thinking stays shown, the answer's bubble (blanks at most) goes.
      const thoughtOnly = receipt?.status === "complete" && thought !== "" && !text.trim();
      if (result.error) {
        // A busy model server that said how long to wait: told when to try again.
        const seconds = result.error.retryAfter;
        const busy = result.error.kind === "unavailable" && seconds > 0;
        this.note(busy ? this.t("busy_retry", { seconds }) : this.t(result.error.kind), "error");
        $("notice").dataset.error = result.error.kind;
      } else if (receipt?.status === "complete" && receipt.completionTokens === 0) {
        // The model finished without a word: as in the chat, that costs nothing (the bot does
        // not charge it), and the question goes back to be sent again.
        this.takeBack(asked, answer, question);
        this.note(this.t("backend"), "error");
        $("notice").dataset.status = "empty";
      } else if (thoughtOnly) {
        const counts = { prompt: receipt.promptTokens, completion: receipt.completionTokens };
        this.note(this.t("thought_only", counts), "error");
        $("notice").dataset.status = "thought_only";
        answer.textContent = "";
        if (!$("question").value) $("question").value = question;
      } else if (receipt) {
        const counts = {
          prompt: receipt.promptTokens,
          completion: receipt.completionTokens,
          status: receipt.status,
        };
        const stopped = receipt.status === "stopped" ? `${this.t("stopped")} ` : "";
        // The model ran out of the answer's room (vLLM's finish_reason "length"): as in the
        // chat, the user hears that the answer was cut there, not that it is whole.
        const cut = receipt.status === "complete" && result.finishReason === "length";
        this.note(stopped + this.t("receipt", counts) + (cut ? ` ${this.t("answer_cut")}` : ""), "done");
        $("notice").dataset.status = receipt.status;
        if (cut) $("notice").dataset.cut = "length";
      }
      const kept = !result.error && text && !thoughtOnly && !forgotten();
      if (kept) await this.keep(question, text, asked);
    } catch (error) {
      if (error instanceof Unsent) {
        // Stopped before it was sent: as if never asked, the question back where it was typed.
        this.takeBack(asked, answer, question);
        this.note(this.t("unsent"), "info");
        $("notice").dataset.status = "unsent";
        return;
      }
      if (error instanceof ApiError && error.code === "stopped") {
        // Stopped while the model server had not begun the answer (stalled, or the question
        // held on its way): the bot stopped waiting for it. As if unsent; but a server that
        // had begun after all (its reply slow on the way back) is charged from its receipt,
        // which the bot says (or that it is still finding out): the user is told what was
        // charged, not "nothing".
        this.takeBack(asked, answer, question);
        const charged = error.body.error?.charged;
        const counts = { prompt: charged?.prompt_tokens, completion: charged?.completion_tokens };
        const told = error.body.error?.settling ? "unanswered_settling" : "unanswered";
        this.note(charged ? this.t("unanswered_charged", counts) : this.t(told), "info");
        $("notice").dataset.status = "unanswered";
        return;
      }
      // Stopped, and the bot hung up for the stop (it never reached the model server): the
      // stream ends without its receipt. What was shown is genuine, and kept as a stop's is.
      const cut =
        error instanceof SealedError && (error.kind === "StreamTruncated" || error.kind === "TimeLimit");
      if (cut && this.running.stopRequested) {
        this.note(this.t("stopped"), "done");
        $("notice").dataset.status = "stopped";
        if (text && !forgotten()) await this.keep(question, text, asked);
        return;
      }
      // The connection broke while the answer came (a phone's network going dark): what came
      // is genuine (every chunk checked) and billed, so it is kept as a stopped answer's is,
      // and the question goes back into the input to be sent again.
      if (cut) {
        this.fail(error);
        // No text came (thinking at most): nothing is kept, and the note does not say it is.
        if (!text) {
          const told = error.kind === "TimeLimit" ? "time_limit_before_text" : "cut_before_text";
          this.note(this.t(told), "error");
        }
        if (text && !forgotten()) await this.keep(question, text, asked);
        if (!$("question").value) $("question").value = question;
        return;
      }
      // What did not authenticate is not shown; text that did (before a cut, or with a receipt
      // that failed) is genuine and stays.
      if (error instanceof SealedError && DISCARD.has(error.kind)) {
        answer.textContent = "";
        thinking?.parentElement.remove();
      }
      this.fail(error);
      // Refused before any answer began (no credit, busy, the launch data too old, the bot or
      // the network failing): no answer came, so the question goes back to be sent again.
      if (!this.running.answering) this.takeBack(asked, answer, question);
    } finally {
      if (!answer.textContent) answer.remove(); // no "…" left waiting for an answer that ended
      // Forget on another page erased what this one held (found before the question went, or
      // as its exchange was to be kept): nothing of it, nor this exchange, was kept or sent.
      const dropped = this.history.takeDropped();
      if (dropped) $("notice").textContent += ` ${this.t(dropped)}`;
      this.history.answered();
      this.setRunning(null);
      await this.refreshAccount({ afterAnswer: true });
    }
  }

  /** The history now shown: its key and the mark of the Forget before it (``History.epoch``). */
  showing() {
    return { key: this.history.key, epoch: this.history.epoch };
  }

  /** Keep an exchange in the device history; the screen shows what other pages kept meanwhile. */
  async keep(question, text, asked) {
    if (!(await this.history.add(question, text))) {
      $("notice").textContent += ` ${this.t("history_full")}`;
    }
    const [last, answered] = this.history.turns.slice(-2);
    this.showKept(asked, last?.content === question && answered?.content === text ? 2 : 0);
  }

  /**
   * Show the history's exchanges this screen does not show yet (kept by another page of this
   * user on the device since), before ``before`` (at the end when null); ``own``: the newest
   * turns are this page's, shown already. Two pages share one history and each sends it as the
   * context of its next question: the screen shows what the model is sent, as one page would.
   */
  showKept(before = null, own = 0) {
    const turns = this.history.turns;
    const known = this.shownTurns;
    const others = turns.slice(0, turns.length - own);
    // The oldest turns the history may have dropped since (its limit, a full storage).
    let dropped = 0;
    while (dropped < known.length && !startsWith(others, known.slice(dropped))) dropped += 2;
    const fresh = others.slice(known.length - dropped);
    for (let i = 0; i + 1 < fresh.length; i += 2) {
      for (const turn of fresh.slice(i, i + 2)) {
        const item = this.bubble(turn.role, turn.content);
        if (before) before.before(item);
      }
    }
    this.shownTurns = turns.slice();
  }

  /** Another page kept an exchange (its storage event): show it, unless a question is on. */
  async takeInOthers() {
    if (this.running || this.forgetting || this.takingIn) return;
    this.takingIn = true;
    try {
      await this.history.reload();
      if (this.running || this.forgetting) return; // a question took over: it shows them
      if (this.history.key !== this.shown.key || this.history.epoch !== this.shown.epoch) {
        $("messages").replaceChildren(); // forgotten on another page: nothing of it stays
        this.shown = this.showing();
        this.shownTurns = [];
      }
      const dropped = this.history.takeDropped();
      if (dropped) this.note(this.t(dropped), "history");
      this.showKept();
    } finally {
      this.takingIn = false;
    }
  }

  /** As if never asked: its bubbles gone, the question back where it was typed. */
  takeBack(asked, answer, question) {
    asked.remove();
    answer.remove();
    if (!$("question").value) $("question").value = question;
  }

  setRunning(running) {
    this.running = running;
    $("send").textContent = running ? this.t("stop") : this.t("send");
    $("send").dataset.state = running ? "stop" : "send";
  }

  /** Prepare, seal to the first gateway that takes it, relay and open the stream. */
  async send(request, on) {
    // The size to prepare for: the history as the bot's limit allows; a bundle stating a
    // smaller window for the model makes the sealed chat smaller still.
    const size = encodeInner(this.chat(request, null), {
      requestId: new Uint8Array(16),
      responseKey: new Uint8Array(32),
      timestamp: Math.floor(Date.now() / 1000),
    }).length;
    const prepared = await this.api("api/prepare", {
      method: "POST",
      body: JSON.stringify({ model: request.model, size }),
      headers: { "Content-Type": "application/json" },
    });
    this.learnClock(prepared);
    const offer = await prepared.json();
    let lastError = new SealedError("BundleUnpinned", "no gateway");
    let verifiedAny = false;
    const unverified = []; // the offers whose bundles failed the pinned keys
    for (const offered of offer.gateways) {
      const { gateway, bundle: wire } = offered;
      let verified;
      try {
        verified = verifyBundle(wire, this.config.operatorKeys, Math.floor(Date.now() / 1000));
      } catch (error) {
        lastError = error;
        unverified.push(offered);
        continue;
      }
      if (verified.bundle.suite !== 1 || !verified.bundle.models.includes(request.model)) continue;
      verifiedAny = true;
      const stated = verified.bundle.windows[request.model] ?? null;
      const chat = this.chat(request, stated, offer.max_completion_tokens);
      try {
        const result = await this.relay(gateway, verified.bundle, chat, on);
        const again = this.refitted(request, stated, chat, result, on.shown());
        return again ? await this.relay(gateway, verified.bundle, again, on) : result;
      } catch (error) {
        if (!anotherMayTake(error)) throw error;
        lastError = error;
      }
    }
    if (!verifiedAny) {
      // The operator may have rotated its key since this page was opened: the page keeps the
      // keys it was opened with (the ones it shows), so reopening it is what helps then. Only
      // a bundle that failed those keys tells so: one that verified but that the page cannot
      // use (suite 2, which it does not seal to) is the same in a reopened page.
      const reopen = await this.reopenWouldVerify(unverified);
      throw new ApiError(503, { error: reopen ? { code: "reopen" } : this.outOfTime(unverified) });
    }
    throw lastError;
  }

  /**
   * Why no bundle of ``gateways`` verified, when it is time and not the keys: ``device_clock``
   * (with how far) where one verifies by the bot's clock, so this device's clock and the bot's
   * disagree (most likely this device's, set by hand); ``keys_out_of_time`` where every bundle
   * failed only on its validity window by both clocks (a gateway's clock is off); else
   * ``untrusted``. The bot's clock only names the trouble: a bundle is still used only when this
   * device's clock finds it valid, as the bot could make its Date header say anything.
   */
  outOfTime(gateways) {
    const verifies = (bundle, now) => {
      try {
        verifyBundle(bundle, this.config.operatorKeys, now);
        return null;
      } catch (error) {
        return error;
      }
    };
    const here = Math.floor(Date.now() / 1000);
    const expired = ({ bundle }) => verifies(bundle, here)?.kind === "BundleExpired";
    if (!gateways.length || !gateways.every(expired)) return { code: "untrusted" };
    if (gateways.some(({ bundle }) => verifies(bundle, this.serverNow()) === null)) {
      return { code: "device_clock", off: this.timeOff(Math.abs(this.clockOffset)) };
    }
    return { code: "keys_out_of_time" };
  }

  /** ``seconds`` as the page says how far a clock is off: minutes, hours or days. */
  timeOff(seconds) {
    const minutes = Math.max(1, Math.round(seconds / 60));
    const hours = Math.round(minutes / 60);
    if (minutes < 120) return this.t("minutes_off", { n: minutes });
    if (hours < 48) return this.t("hours_off", { n: hours });
    return this.t("days_off", { n: Math.round(hours / 24) });
  }

  /**
   * Whether the page the bot serves now pins an operator key that one of ``gateways``' bundles
   * verifies under (read, never adopted: this page trusts only the keys it was opened with).
   */
  async reopenWouldVerify(gateways) {
    if (!gateways.length) return false;
    try {
      const here = new URL(window.location.href);
      here.hash = "";
      const response = await fetch(here.toString(), { cache: "no-store" });
      if (!response.ok) return false;
      const served = new DOMParser().parseFromString(await response.text(), "text/html");
      const keys = JSON.parse(served.getElementById("veil-config").textContent).operator_keys.map(b64d);
      const now = Math.floor(Date.now() / 1000);
      return gateways.some(({ bundle }) => {
        try {
          verifyBundle(bundle, keys, now);
          return true;
        } catch {
          return false;
        }
      });
    } catch {
      return false; // no page, or not one that pins keys: nothing to say about reopening
    }
  }

  /**
   * Relay the sealed chat; ``on.delta`` and ``on.reasoning`` get the texts as they open. A
   * ``<think>`` opening the answer's text is thinking (``ThinkTags``), given to
   * ``on.reasoning`` as a REASONING record's would be; what it held back at the end (a tag's
   * possible start, or thinking never closed) is given out once the stream ends or breaks.
   */
  async relay(gateway, bundle, chat, on) {
    const { requestId, responseKey } = newRequestSecrets();
    const body = await sealRequest(bundle, chat, {
      requestId,
      responseKey,
      timestamp: this.serverNow(),
    });
    // Stop pressed while the page was still preparing: the question does not leave it.
    if (this.running.stopRequested) throw new Unsent("stopped before sending");
    Object.assign(this.running, { requestId, responseKey });
    this.history.asking(); // until the answer ends here: a page closed meanwhile is told of
    const response = await this.api("api/relay", {
      method: "POST",
      body,
      headers: {
        "Content-Type": "application/vnd.veil.sealed-request",
        "Veil-Gateway": String(gateway),
        "Veil-Request-Id": toHex(requestId),
        // Percent-encoded (the bot decodes it): a header holds Latin-1 at most, and fetch refuses
        // a model name beyond it before anything is sent.
        "Veil-Model": encodeURIComponent(chat.model),
        "Veil-Max-Tokens": String(chat.max_completion_tokens),
        "Veil-Proof": b64e(receiptProof(responseKey, requestId)),
        // The page reads a busy model server's wait in its error record (docs/protocol.md):
        // the bot asks the gateway for it, and the page tells when to try again.
        "Veil-Accept": "retry_after",
      },
    });
    this.running.answering = true; // the bot took it: from here on it may be charged
    this.note(this.t("writing"), "progress");
    // Stop was pressed while the sealed question was still on its way to the bot, and the stop
    // got there first (the bot had no such answer yet): send it again now the answer runs.
    if (this.running.stopRequested && this.running.stopTaken !== requestId) this.stop();
    const opener = new ChunkOpener(responseKey);
    const reader = response.body.getReader();
    const tags = new ThinkTags();
    const show = (pieces) => {
      for (const [kind, piece] of pieces) on[kind === "text" ? "delta" : "reasoning"](piece);
    };
    let final = null;
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch {
          show(tags.end()); // what came is genuine: shown as the rest of it
          throw new SealedError("StreamTruncated", "the connection broke");
        }
        if (chunk.done) break;
        for (const record of await opener.feed(chunk.value)) {
          if (record.type === "final") final = record;
          else if (record.type === "delta") show(record.text ? tags.feed(record.text) : []);
          else if (record.text) on[record.type](record.text);
        }
      }
    } catch (error) {
      // A stream that failed its checks is not read on: the page hangs up, so the bot hangs up
      // on the gateway, which stops the model (charged what it generated, not the whole answer
      // relayed to a page that shows none of it), and the next question finds it ended.
      reader.cancel().catch(() => {});
      throw error;
    }
    show(tags.end());
    opener.close(); // (the bot's cut at its time limit: TimeLimit, as the bot says)
    if (final.receipt === null) throw new SealedError("ReceiptInvalid", "no receipt");
    verifyReceipt(final.receipt, bundle.receiptKey, requestId, chat.model);
    return final;
  }

  async stop(running = this.running) {
    if (!running) return;
    running.stopRequested = true; // before sending, relay() sees it and sends nothing
    if (!running.requestId) return;
    const requestId = running.requestId;
    try {
      await this.api("api/stop", {
        method: "POST",
        body: JSON.stringify({
          request_id: toHex(requestId),
          proof: b64e(cancelProof(running.responseKey, requestId)),
        }),
        headers: { "Content-Type": "application/json" },
      });
      running.stopTaken = requestId; // the bot has it (or holds it until the gateway has it)
    } catch (error) {
      // 404: no such answer runs (yet, if the question is still on its way: relay() sends
      // the stop again once the bot has taken it; or no longer: it ended meanwhile).
      if (!(error instanceof ApiError && error.status === 404)) {
        this.fail(error);
      } else if (this.running === running && running.requestId === requestId && !running.answering) {
        // The bot answers the question only once the gateway has begun it: one that never
        // does (stalled, or the question held on its way there) is given up on only for a
        // stop the bot holds. Sent again until the bot has the question (or it is over).
        setTimeout(() => {
          if (this.running === running && !running.answering) this.stop(running);
        }, STOP_AGAIN_MS);
      }
    }
  }

  /**
   * Forget this device's history. As /forget does in the chat, the answer being written is
   * stopped first and nothing of the erased conversation is kept afterwards. It leaves the
   * screen at once; a question asked before the new history's key is made waits for it.
   */
  forget() {
    $("messages").replaceChildren();
    this.shownTurns = [];
    if (this.forgetting) return this.forgetting;
    const running = this.running;
    this.forgetting = (async () => {
      try {
        if (running) {
          running.forgotten = true;
          await this.stop();
        }
        const destroyed = await this.history.forget();
        this.note(this.t(destroyed ? "forgotten" : "forgotten_key_kept"), "forgotten");
      } catch (error) {
        this.fail(error); // (the stop's own failures are told by stop())
      } finally {
        this.forgetting = null;
      }
    })();
    return this.forgetting;
  }
}

export function startApp() {
  const app = new App();
  globalThis.veilApp = app;
  app.start().catch((error) => app.fail(error));
}
