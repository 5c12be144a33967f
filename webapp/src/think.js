// A reasoning model's <think>…</think> in the answer's own text, taken out as its thinking.
//
// The page's side of services/think_tags.py, by the same rules (tests/think_tags_cases.json
// holds the cases both are tested on). A model served without a reasoning parser writes its
// thinking into the answer's text, between <think> and </think>, before the answer: shown as
// it came, the user read the tags and the monologue as the answer, and the device history kept
// them and sent them back to the model. The page reads it as a parser would: the thinking goes
// where REASONING records go (folded, never kept), the answer is what follows.
//
// Only a <think> that opens the answer (after blanks, a byte order mark U+FEFF counted as one
// there) is one: a tag later in the answer is text the model wrote about it. A tag may arrive split across records ("<thi" then "nk>"): the few
// characters that may begin one are held until the next record says. A <think> never closed is
// thinking to the end, as a parser streams it: the answer is then empty. After </think> only
// the blank lines before the text are dropped: its first line keeps its indentation. A lone
// </think> with no <think> before it is not recognised: telling it from text needs the whole
// answer.

export const OPEN = "<think>";
export const CLOSE = "</think>";

/** Blanks as Python's str.strip() counts them (JavaScript's trim() also takes U+FEFF). */
const BLANKS = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const ONLY_BLANKS = new RegExp(`^${BLANKS}*$`);
const BLANK = new RegExp(`^${BLANKS}$`);
/** Blanks that may open an answer: those and a byte order mark (U+FEFF). */
const OPENING_BLANKS = `${BLANKS.slice(0, -1)}\\ufeff]`;
const OPENING = new RegExp(`^${OPENING_BLANKS}+`);
const ONLY_OPENING = new RegExp(`^${OPENING_BLANKS}*$`);
/** What parts lines: Python's str.splitlines (\r\n is a \r then a \n). */
const LINE_BREAKS = /[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]/g;
const BOMS = /\ufeff/g;

/** Whether ``text`` is blanks alone (or nothing), as Python's ``not text.strip()`` says. */
export function isBlank(text) {
  return ONLY_BLANKS.test(text);
}

/** ``text`` without the blanks around it, as Python's str.strip() takes them (trim() differs). */
export function strip(text) {
  let start = 0;
  let end = text.length;
  while (start < end && BLANK.test(text[start])) start++;
  while (end > start && BLANK.test(text[end - 1])) end--;
  return text.slice(start, end);
}

/** Splits an answer's text records into its text and its thinking, as they stream. */
export class ThinkTags {
  constructor() {
    this.state = "start"; // "start", "thinking", "after" (the thinking closed) or "text"
    this.held = ""; // what may still turn out to be (the start of) a tag
    this.blanks = []; // blank records opening the answer, kept aside and joined once
    // After the thinking, before the text: the blanks since the last line break (the text's
    // first line's indentation, kept), once a line break came (blanks before one: dropped).
    this.indent = null;
  }

  /** The pieces of text and thinking ``delta`` completes: [kind, text], empty ones left out. */
  feed(delta) {
    if (this.state === "text") return delta ? [["text", delta]] : [];
    if (this.state === "start") return this.opening(delta);
    const held = this.held + delta;
    this.held = "";
    return this.afterOpening(held);
  }

  /** Before the answer's first non-blank: is it a <think>? */
  opening(delta) {
    if (!this.held && ONLY_OPENING.test(delta)) {
      this.blanks.push(delta); // blanks: the next record says
      return [];
    }
    const held = this.held + delta;
    this.held = "";
    const opening = held.replace(OPENING, "");
    if (OPEN.startsWith(opening) && opening !== OPEN) {
      this.held = held; // the start of a tag: the next record says
      return [];
    }
    const blanks = this.blanks.join("");
    this.blanks = [];
    if (!opening.startsWith(OPEN)) {
      this.state = "text";
      return [["text", blanks + held]];
    }
    this.state = "thinking";
    return this.afterOpening(opening.slice(OPEN.length));
  }

  /** Inside the thinking, or after it before the text: what ``held`` completes. */
  afterOpening(held) {
    const pieces = [];
    if (this.state === "thinking") {
      const end = held.indexOf(CLOSE);
      if (end < 0) {
        const keep = partialClose(held);
        this.held = held.slice(held.length - keep);
        const thought = held.slice(0, held.length - keep);
        return thought ? [["thought", thought]] : [];
      }
      if (end) pieces.push(["thought", held.slice(0, end)]);
      this.state = "after";
      held = held.slice(end + CLOSE.length);
    }
    return pieces.concat(this.afterThinking(held));
  }

  /** After the thinking: blank lines before the text dropped, its indentation kept. */
  afterThinking(held) {
    const text = held.replace(OPENING, "");
    const blanks = held.slice(0, held.length - text.length);
    const lineBreak = lastLineBreak(blanks);
    if (lineBreak >= 0) this.indent = [blanks.slice(lineBreak + 1).replace(BOMS, "")];
    else if (this.indent !== null) this.indent.push(blanks.replace(BOMS, ""));
    // else: blanks on the line of </think>, not the text's
    if (!text) return [];
    const indent = (this.indent || []).join("");
    this.indent = null;
    this.state = "text";
    return [["text", indent + text]];
  }

  /** What was held at the end of the answer: text it was, or thinking never closed. */
  end() {
    const held = this.blanks.join("") + this.held;
    this.blanks = [];
    this.indent = null; // blanks after the thinking alone: no text
    this.held = "";
    if (!held) return [];
    return [[this.state === "thinking" ? "thought" : "text", held]];
  }
}

/** Where the last line break in ``text`` is (-1 when none), as Python's str.splitlines parts. */
function lastLineBreak(text) {
  let at = -1;
  for (const found of text.matchAll(LINE_BREAKS)) at = found.index;
  return at;
}

/** How many characters at the end of ``text`` may begin </think> (0 when none). */
function partialClose(text) {
  for (let length = Math.min(text.length, CLOSE.length - 1); length > 0; length--) {
    if (CLOSE.startsWith(text.slice(-length))) return length;
  }
  return 0;
}
