// What the page sends of the device history: the newest turns that fit the model's window.
//
// The rule is the bot's own for ordinary chats (services/fitting.py, Fitter.context and
// answer_cap; services/tokens.py), so both modes agree and tests/test_webapp_context.py checks
// this code against it: every token is at least one UTF-8 byte of its text, each message costs
// MESSAGE_OVERHEAD more and a request REQUEST_OVERHEAD, so the counts are ceilings in every
// language. The window is the one the verified bundle states for the model, at most the bot's
// own limit (api/account's context_tokens) when the page knows it. The answer keeps its room
// (the bot's answer cap, at most half the window); the earlier turns fill the rest, newest
// first, and never open with an orphaned answer. The answer may then have what is left.

export const MESSAGE_OVERHEAD = 8;
export const REQUEST_OVERHEAD = 32;
export const DEFAULT_WINDOW = 4096; // the bot's VEIL_CONTEXT_TOKENS default
export const DEFAULT_MIN_ANSWER = 64; // the bot's VEIL_MIN_ANSWER_TOKENS default

const encoder = new TextEncoder();

/** The most tokens ``text`` can be: its UTF-8 bytes. */
export function textTokens(text) {
  return encoder.encode(text).length;
}

/** The most tokens one chat message can take: its text plus the template's share. */
export function messageTokens(content) {
  return textTokens(content) + MESSAGE_OVERHEAD;
}

function positive(value) {
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

/** The window to fit: the bundle's for the model, at most the bot's limit; either alone. */
export function modelWindow(stated, botLimit) {
  const window = positive(stated);
  const limit = positive(botLimit);
  if (window !== null && limit !== null) return Math.min(window, limit);
  return window ?? limit ?? DEFAULT_WINDOW;
}

/**
 * The messages to seal for ``question`` after ``turns`` (the device history, oldest first),
 * within ``window`` tokens with room for an answer of ``maxAnswer`` tokens.
 *
 * Returns ``{messages, tokens, maxAnswer, dropped}``: ``tokens`` the prompt's ceiling,
 * ``maxAnswer`` the most answer tokens to ask for (what the prompt leaves of the window, at
 * least ``minAnswer``, at most ``maxAnswer``), ``dropped`` the earlier turns left out.
 */
export function fitContext(turns, question, { window, maxAnswer, minAnswer = DEFAULT_MIN_ANSWER }) {
  const room = Math.min(maxAnswer, Math.floor(window / 2));
  const budget = window - room;
  let used = REQUEST_OVERHEAD + messageTokens(question);
  const kept = [];
  for (let i = turns.length - 1; i >= 0; i--) {
    const cost = messageTokens(turns[i].content);
    if (used + cost > budget) break;
    used += cost;
    kept.push({ role: turns[i].role, content: turns[i].content });
  }
  kept.reverse();
  while (kept.length && kept[0].role === "assistant") used -= messageTokens(kept.shift().content);
  const floor = Math.min(minAnswer, maxAnswer);
  return {
    messages: [...kept, { role: "user", content: question }],
    tokens: used,
    maxAnswer: Math.max(floor, Math.min(maxAnswer, window - used)),
    dropped: turns.length - kept.length,
  };
}

const WINDOW_STATED = /maximum context length is (\d+) tokens|available context size \((\d+) tokens\)/;
const PROMPT_STATED = /request has (\d+) input tokens|\((\d+) in the messages|request \((\d+) tokens\) exceeds/;

/**
 * ``{window, prompt}`` a model server's "too long" refusal states (vLLM's and llama.cpp's, as
 * services/fitting.py's ``context_refusal`` reads them), or null where it states neither.
 */
export function contextRefusal(message) {
  const window = WINDOW_STATED.exec(message || "");
  const prompt = PROMPT_STATED.exec(message || "");
  if (!window || !prompt) return null;
  const stated = (match) => Number(match.slice(1).find((group) => group !== undefined));
  return { window: stated(window), prompt: stated(prompt) };
}
