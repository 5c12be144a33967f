// The playground page: a Telegram-like chat fed by the emulator's server-sent events.
// Message bodies arrive as HTML the server rendered and escaped ("html" fields); every other
// string (button labels, titles, commands) is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

const state = {
  chat: "private",
  lang: localStorage.getItem("playground.lang") || "en",
  userId: 0,
  bot: { name: "Veil", username: "bot" },
  commands: {},
  invoiceLinks: {},
  drafts: new Map(), // draft_id -> element
  typingUntil: 0,
  inlineSeq: 0,
  lastQuery: "",
};

async function post(action, body) {
  const reply = await fetch(`/ui/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

function toast(text, alert) {
  const box = $("toast");
  box.textContent = text;
  box.className = alert ? "toast alert" : "toast";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.add("hidden"), alert ? 4000 : 2200);
}

function time(date) {
  const d = date ? new Date(date * 1000) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function scrollDown(list) {
  list.scrollTop = list.scrollHeight;
}

// Message bodies.

function body(html) {
  const bubble = el("div", "bubble");
  const content = el("div", "content");
  content.innerHTML = html; // rendered and escaped by the server (playground/render.py)
  bubble.append(content);
  return bubble;
}

function keyboard(rows, press) {
  const box = el("div", "keyboard");
  for (const row of rows || []) {
    const line = el("div", "keyboard-row");
    for (const button of row) {
      const b = el("button", button.url ? "url" : "", button.text);
      b.type = "button";
      b.addEventListener("click", () => press(button));
      line.append(b);
    }
    box.append(line);
  }
  return box;
}

function pressPrivate(messageId) {
  return (button) => {
    if (button.callback_data !== undefined) {
      post("press", { message_id: messageId, data: button.callback_data, lang: state.lang })
        .catch((e) => toast(e.message));
    } else if (button.url) {
      openUrl(button.url);
    }
  };
}

function openUrl(url) {
  const invoice = state.invoiceLinks[url];
  if (invoice) {
    paySheet(invoice, { link: url });
  } else if (/^https?:\/\//i.test(url)) {
    window.open(url, "_blank", "noopener,noreferrer");
  }
}

function stars(n) {
  return `${n} ⭐`;
}

function invoiceCard(m) {
  const inv = m.invoice;
  const bubble = el("div", "bubble invoice");
  const inner = el("div", "inv-body");
  inner.append(el("div", "inv-title", inv.title), el("div", "inv-desc", inv.description));
  inner.append(el("div", "inv-price", stars(inv.total_amount)), el("div", "inv-note", "Play money: nothing is charged."));
  const pay = el("button", "pay", `Pay ${stars(inv.total_amount)}`);
  pay.type = "button";
  pay.addEventListener("click", () => pay_(pay, { message_id: m.message_id }));
  bubble.append(inner, pay);
  return bubble;
}

async function pay_(button, target) {
  button.disabled = true;
  const label = button.textContent;
  button.textContent = "Paying…";
  try {
    const result = await post("pay", target);
    if (result.paid) {
      button.textContent = "Paid ✓";
      return true;
    }
    toast(result.error || "The bot declined the payment.", true);
  } catch (e) {
    toast(e.message, true);
  }
  button.disabled = false;
  button.textContent = label;
  return false;
}

function paySheet(invoice, target) {
  $("sheet-title").textContent = invoice.title;
  $("sheet-description").textContent = invoice.description;
  const pay = $("sheet-pay");
  pay.disabled = false;
  pay.textContent = invoice.subscription
    ? `Subscribe for ${stars(invoice.total_amount)} / month`
    : `Pay ${stars(invoice.total_amount)}`;
  pay.onclick = async () => {
    if (await pay_(pay, target)) setTimeout(() => $("sheet").classList.add("hidden"), 400);
  };
  $("sheet").classList.remove("hidden");
}

function messageNode(m) {
  const node = el("div", m.outgoing ? "msg out" : "msg in");
  node.dataset.id = m.message_id;
  if (m.payment) {
    const service = el("div", "service", `You paid ${stars(m.payment.total_amount)} (play money)`);
    service.dataset.id = m.message_id;
    return service;
  }
  const bubble = m.invoice ? invoiceCard(m) : body(m.html);
  const meta = el("span", "meta", (m.edited ? "edited " : "") + time(m.date) + (m.outgoing ? " ✓✓" : ""));
  (bubble.querySelector(".content") || bubble.querySelector(".inv-body")).append(meta);
  node.append(bubble);
  if (m.buttons && m.buttons.length) node.append(keyboard(m.buttons, pressPrivate(m.message_id)));
  return node;
}

function showMessage(m, replace) {
  if (m.chat_id !== state.userId) return;
  const list = $("messages-private");
  const node = messageNode(m);
  const old = list.querySelector(`[data-id="${m.message_id}"]`);
  if (old) {
    old.replaceWith(node);
  } else if (!replace) {
    if (!m.outgoing) clearDrafts();
    const firstDraft = list.querySelector(".draft");
    list.insertBefore(node, firstDraft); // drafts stay below what is final
    scrollDown(list);
    if (!m.outgoing) setTyping(false);
  }
  if (!m.outgoing && !m.payment) $("private-preview").textContent = m.invoice ? m.invoice.title : node.textContent.slice(0, 60);
}

// Drafts, typing and the stop button.

function showDraft(event) {
  if (event.chat_id !== state.userId) return;
  const list = $("messages-private");
  let node = state.drafts.get(event.draft_id);
  if (!node) {
    node = el("div", "msg in draft");
    node.append(el("div", "bubble"));
    state.drafts.set(event.draft_id, node);
    list.append(node);
  }
  const bubble = node.querySelector(".bubble");
  if (event.empty) {
    bubble.replaceChildren(el("span", "thinking", "Thinking…"));
  } else {
    const content = el("div", "content");
    content.innerHTML = event.html; // rendered and escaped by the server
    bubble.replaceChildren(content);
  }
  node.dataset.canStop = event.can_stop ? "1" : "";
  setTyping(false);
  updateStop();
  scrollDown(list);
}

function clearDrafts() {
  for (const node of state.drafts.values()) node.remove();
  state.drafts.clear();
  updateStop();
}

function updateStop() {
  const live = state.chat === "private" && [...state.drafts.values()].some((n) => n.dataset.canStop);
  $("stop").classList.toggle("hidden", !live);
  $("send").classList.toggle("hidden", live);
}

function setTyping(on) {
  state.typingUntil = on ? Date.now() + 5000 : 0;
  renderStatus();
}

function renderStatus() {
  const status = $("status");
  if (state.chat === "group") {
    status.textContent = `2 members: you and @${state.bot.username}`;
    status.classList.remove("typing");
    return;
  }
  const typing = Date.now() < state.typingUntil;
  status.textContent = typing ? "typing…" : "bot";
  status.classList.toggle("typing", typing);
}
setInterval(renderStatus, 1000);

// Commands menu.

function currentCommands() {
  return state.commands[state.lang] || state.commands[""] || [];
}

function renderCommands() {
  const box = $("commands");
  box.replaceChildren();
  const commands = currentCommands();
  if (!commands.length) box.append(el("div", "item desc", "The bot has not set any commands."));
  for (const c of commands) {
    const item = el("div", "item");
    item.append(el("span", "cmd", `/${c.command}`), el("span", "desc", c.description));
    item.addEventListener("click", () => {
      box.classList.add("hidden");
      sendText(`/${c.command}`);
    });
    box.append(item);
  }
}

// Sending.

async function sendText(text) {
  if (state.chat === "group") return sendGroup(text);
  try {
    await post("send", { text, lang: state.lang });
  } catch (e) {
    toast(e.message);
  }
}

function groupList() {
  return $("messages-group");
}

function mentionQuery(text) {
  const prefix = `@${state.bot.username}`;
  if (!text.toLowerCase().startsWith(prefix.toLowerCase())) return null;
  const rest = text.slice(prefix.length);
  if (rest && !/^\s/.test(rest)) return null;
  return rest.trim();
}

function sendGroup(text) {
  const query = mentionQuery(text);
  if (query !== null) return inlineQuery(query);
  const node = el("div", "msg out");
  const bubble = el("div", "bubble");
  bubble.append(el("span", "meta", time()), document.createTextNode(text));
  node.append(bubble);
  groupList().append(node);
  groupList().append(el("div", "service", `@${state.bot.username} reads only inline queries here.`));
  scrollDown(groupList());
}

async function inlineQuery(query) {
  const seq = ++state.inlineSeq;
  const box = $("inline-results");
  box.replaceChildren(el("div", "empty", "Asking the bot…"));
  box.classList.remove("hidden");
  let reply;
  try {
    reply = await post("inline", { query, lang: state.lang });
  } catch (e) {
    box.replaceChildren(el("div", "empty", e.message));
    return;
  }
  if (seq !== state.inlineSeq) return;
  state.lastQuery = query;
  box.replaceChildren();
  if (!reply.results.length) {
    box.append(el("div", "empty", "No results"));
    return;
  }
  for (const r of reply.results) {
    const item = el("div", "item");
    item.append(el("span", "title", r.title));
    if (r.description) item.append(el("span", "desc", r.description));
    item.addEventListener("click", () => choose(query, r.id));
    box.append(item);
  }
}

async function choose(query, resultId) {
  $("inline-results").classList.add("hidden");
  $("input").value = "";
  try {
    await post("choose", { query, result_id: resultId });
  } catch (e) {
    toast(e.message);
  }
}

function inlineNode(item) {
  const node = el("div", "msg out");
  node.dataset.inline = item.inline_message_id;
  const bubble = body(item.html);
  const content = bubble.querySelector(".content");
  content.prepend(el("div", "via", `via @${state.bot.username}`));
  content.append(el("span", "meta", time()));
  node.append(bubble);
  if (item.buttons && item.buttons.length) {
    node.append(keyboard(item.buttons, (button) => {
      if (button.callback_data !== undefined) {
        post("press", { inline_message_id: item.inline_message_id, data: button.callback_data, lang: state.lang })
          .catch((e) => toast(e.message));
      } else if (button.url) {
        openUrl(button.url);
      }
    }));
  }
  return node;
}

function showInline(item) {
  const list = groupList();
  const node = inlineNode(item);
  const old = list.querySelector(`[data-inline="${CSS.escape(item.inline_message_id)}"]`);
  if (old) old.replaceWith(node);
  else list.append(node);
  scrollDown(list);
}

// Tabs.

function selectChat(chat) {
  state.chat = chat;
  $("tab-private").classList.toggle("active", chat === "private");
  $("tab-group").classList.toggle("active", chat === "group");
  $("messages-private").classList.toggle("hidden", chat !== "private");
  $("messages-group").classList.toggle("hidden", chat !== "group");
  $("menu").classList.toggle("hidden", chat !== "private");
  $("commands").classList.add("hidden");
  $("inline-results").classList.add("hidden");
  const group = chat === "group";
  $("head-title").textContent = group ? $("group-title").textContent : state.bot.name;
  $("head-avatar").textContent = group ? "P" : state.bot.name.slice(0, 1);
  $("head-avatar").className = group ? "avatar group-avatar" : "avatar";
  $("input").placeholder = group ? `Message, or @${state.bot.username} question` : "Message";
  renderStatus();
  updateStop();
  $("input").focus();
}

// The event stream.

function applySnapshot(s) {
  state.userId = s.user_id;
  state.bot = s.bot;
  state.commands = s.commands;
  state.invoiceLinks = s.invoice_links || {};
  $("bot-name").textContent = s.bot.name;
  $("group-title").textContent = s.group.title;
  $("user-id").textContent = String(s.user_id);
  for (const span of document.querySelectorAll(".bot-username")) span.textContent = s.bot.username;
  const list = $("messages-private");
  list.replaceChildren();
  state.drafts.clear();
  for (const m of s.messages) showMessage(m);
  for (const item of groupList().querySelectorAll("[data-inline]")) item.remove();
  for (const item of s.group_items) showInline(item);
  renderCommands();
  selectChat(state.chat);
}

const handlers = {
  snapshot: applySnapshot,
  message: (e) => showMessage(e.message),
  edit: (e) => showMessage(e.message, true),
  delete: (e) => {
    if (e.chat_id !== state.userId) return;
    const node = $("messages-private").querySelector(`[data-id="${e.message_id}"]`);
    if (node) node.remove();
  },
  draft: showDraft,
  action: (e) => { if (e.chat_id === state.userId && e.action === "typing") setTyping(true); },
  callback_answer: (e) => { if (e.text) toast(e.text, e.show_alert); },
  commands: (e) => { state.commands = e.commands; renderCommands(); },
  invoice_link: (e) => { state.invoiceLinks[e.url] = e.invoice; },
  inline_message: (e) => showInline(e.item),
  inline_edit: (e) => showInline(e.item),
};

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; };
  source.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn"; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const handler = handlers[event.type];
    if (handler) handler(event);
  };
}

// Wiring.

function submit() {
  const input = $("input");
  const text = input.value.trim();
  if (!text) return;
  if (state.chat === "group" && mentionQuery(text) !== null) {
    inlineQuery(mentionQuery(text));
    return;
  }
  input.value = "";
  sendText(text);
}

let inlineTimer = 0;
$("input").addEventListener("input", () => {
  if (state.chat !== "group") return;
  clearTimeout(inlineTimer);
  const query = mentionQuery($("input").value);
  if (query === null) {
    $("inline-results").classList.add("hidden");
    return;
  }
  inlineTimer = setTimeout(() => { if (query !== state.lastQuery) inlineQuery(query); }, 500);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    submit();
  }
});
$("send").addEventListener("click", submit);
$("stop").addEventListener("click", () => {
  for (const [draftId, node] of state.drafts) {
    if (node.dataset.canStop) post("stop", { draft_id: draftId }).catch((e) => toast(e.message));
    node.dataset.canStop = "";
  }
  updateStop();
});
$("menu").addEventListener("click", () => { renderCommands(); $("commands").classList.toggle("hidden"); });
$("tab-private").addEventListener("click", () => selectChat("private"));
$("tab-group").addEventListener("click", () => selectChat("group"));
$("sheet-cancel").addEventListener("click", () => $("sheet").classList.add("hidden"));
$("lang").value = state.lang;
$("lang").addEventListener("change", () => {
  state.lang = $("lang").value;
  localStorage.setItem("playground.lang", state.lang);
  renderCommands();
});
document.addEventListener("click", (e) => {
  const target = e.target;
  if (target.classList && target.classList.contains("spoiler")) target.classList.toggle("revealed");
  if (target.classList && target.classList.contains("command") && state.chat === "private") sendText(target.textContent.split("@")[0]);
});
connect();
