// The playground page: Telegram-like chats fed by the emulator's server-sent events.
// Message bodies arrive as HTML the server rendered and escaped ("html" fields); every other
// string (names, button labels, titles, commands, quotes) is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

const PANES = ["private", "group", "guest"];

const state = {
  chat: "private", // the open chat: private, group (the bot is a member) or guest (it is not)
  lang: localStorage.getItem("playground.lang") || "en",
  userId: 0, // the play user: the private chat is always theirs
  viewer: 0, // who the page plays in the two groups
  users: [],
  bot: { name: "Veil", username: "bot" },
  chats: {},
  messages: new Map(), // chat id -> Map(key -> message), in the order they came
  commands: {},
  invoiceLinks: {},
  drafts: new Map(), // draft_id -> element
  typingUntil: new Map(), // chat id -> time
  inlineSeq: 0,
  lastQuery: "",
  replyTo: null, // {pane, message_id, name, text}
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

function paneOf(chatId) {
  return PANES.find((pane) => state.chats[pane] && state.chats[pane].id === chatId) || null;
}

function listOf(pane) {
  return $(`messages-${pane}`);
}

function viewerOf(pane) {
  return pane === "private" ? state.userId : state.viewer;
}

function userName(id) {
  const user = state.users.find((u) => u.id === id);
  return user ? user.name : String(id);
}

// Message bodies.

function body(html, photo) {
  const bubble = el("div", photo ? "bubble with-photo" : "bubble");
  if (photo) {
    const img = el("img", "photo");
    img.src = photo.url;
    img.alt = "photo";
    img.width = Math.min(photo.width, 320);
    bubble.append(img);
  }
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
      const b = el("button", button.url ? "url" : button.web_app ? "web-app" : "", button.text);
      b.type = "button";
      b.addEventListener("click", () => press(button));
      line.append(b);
    }
    box.append(line);
  }
  return box;
}

function pressOf(m, pane) {
  return (button) => {
    if (button.callback_data !== undefined && m.ephemeral) {
      toast("Buttons on ephemeral messages are not emulated.");
    } else if (button.callback_data !== undefined) {
      const target = m.inline_message_id
        ? { inline_message_id: m.inline_message_id }
        : { message_id: m.message_id, chat: pane };
      post("press", { ...target, data: button.callback_data, lang: state.lang, as: viewerOf(pane) })
        .catch((e) => toast(e.message));
    } else if (button.url) {
      openUrl(button.url);
    } else if (button.web_app && pane === "private") {
      miniApp.open("inline", button.web_app.url, { message_id: m.message_id }); // miniapp.js
    }
  };
}

function openUrl(url) {
  const invoice = state.invoiceLinks[url];
  if (invoice) {
    paySheet(invoice, { link: url });
  } else if (/^https:\/\/app\.tonkeeper\.com\/transfer\//.test(url)) {
    toast("No wallet here: pay with “Simulate payment” under the invoice.");
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

function messageNode(m, pane) {
  if (m.topic_event) return Topics.serviceNode(m);
  if (m.payment) {
    const service = el("div", "service", `You paid ${stars(m.payment.total_amount)} (play money)`);
    service.dataset.key = m.key;
    return service;
  }
  const outgoing = !m.is_bot && m.from_id === viewerOf(pane);
  const node = el("div", outgoing ? "msg out" : "msg in");
  node.dataset.key = m.key;
  node.dataset.id = m.message_id;
  if (m.inline_message_id) node.dataset.inline = m.inline_message_id;
  const bubble = m.invoice ? invoiceCard(m) : body(m.html, m.photo);
  const content = bubble.querySelector(".content") || bubble.querySelector(".inv-body");
  if (m.rich) content.replaceChildren(VeilRich.render(m.rich, sendText)); // rich.js
  VeilRich.enhance(content, sendText);
  const head = [];
  if (pane !== "private" && !outgoing) head.push(el("div", "sender", m.from_name));
  if (m.via_bot) head.push(el("div", "via", `via @${m.via_bot}`));
  if (m.reply_to) {
    const quote = el("div", "quote");
    quote.append(el("div", "quote-name", m.reply_to.from_name), el("div", "quote-text", m.reply_to.text));
    head.push(quote);
  }
  content.prepend(...head);
  if (m.ephemeral) {
    node.classList.add("ephemeral");
    node.dataset.receiver = m.ephemeral.receiver_id;
    content.append(el("div", "only-you", "only you can see this"));
  }
  const meta = el("span", "meta", (m.edited ? "edited " : "") + time(m.date) + (outgoing ? " ✓✓" : ""));
  content.append(meta);
  const row = el("div", "msg-row");
  row.append(bubble);
  if (pane !== "private" && !m.ephemeral) {
    const reply = el("button", "reply-button", "↩");
    reply.type = "button";
    reply.title = "Reply";
    reply.addEventListener("click", () => startReply(pane, m));
    row.append(reply);
  }
  node.append(row);
  if (m.buttons && m.buttons.length) node.append(keyboard(m.buttons, pressOf(m, pane)));
  if (m.ton_invoice && pane === "private") node.append(simulatePayment(m));
  return node;
}

// A Gram (or USDT) invoice: pay it from a play wallet on the emulated toncenter, exact amount
// and comment; the bot's watcher finds the transaction and credits it.
function simulatePayment(m) {
  const box = el("div", "keyboard simulate");
  const what = m.ton_invoice.asset === "gram" ? "play Gram" : "play jettons";
  const button = el("button", "simulate-pay", `Simulate payment (${what})`);
  button.type = "button";
  if (m.ton_invoice.paid) {
    button.textContent = "Payment sent ✓";
    button.disabled = true;
  }
  button.title = `Sends the exact amount with the comment ${m.ton_invoice.comment} to the emulated toncenter`;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await post("ton_pay", { message_id: m.message_id });
      button.textContent = "Payment sent ✓ (waiting for the bot)";
    } catch (e) {
      toast(e.message, true);
      button.disabled = false;
    }
  });
  box.append(button);
  return box;
}

function visible(m, pane) {
  return (!m.ephemeral || m.ephemeral.receiver_id === viewerOf(pane)) && (pane !== "private" || Topics.shows(m));
}

function remember(m) {
  if (!state.messages.has(m.chat_id)) state.messages.set(m.chat_id, new Map());
  state.messages.get(m.chat_id).set(m.key, m);
}

function showMessage(m, replace) {
  const pane = paneOf(m.chat_id);
  if (!pane) return;
  const known = state.messages.get(m.chat_id);
  if (replace && !(known && known.has(m.key))) return;
  remember(m);
  const list = listOf(pane);
  const node = messageNode(m, pane);
  node.classList.toggle("hidden", !visible(m, pane));
  const old = list.querySelector(`[data-key="${m.key}"]`);
  if (old) {
    old.replaceWith(node);
  } else {
    if (pane === "private" && m.is_bot) clearDrafts();
    list.insertBefore(node, pane === "private" ? list.querySelector(".draft") : null);
    scrollDown(list);
    if (m.is_bot) setTyping(m.chat_id, false);
  }
  if (!visible(m, pane) || m.payment) return;
  const preview = m.invoice ? m.invoice.title : plainText(m);
  if (pane === "private" && m.is_bot) $("private-preview").textContent = preview.slice(0, 60);
  if (pane !== "private") $(`${pane}-preview`).textContent = `${m.from_name}: ${preview}`.slice(0, 60);
}

function removeMessage(chatId, key) {
  const pane = paneOf(chatId);
  if (!pane) return;
  const known = state.messages.get(chatId);
  if (known) known.delete(key);
  const node = listOf(pane).querySelector(`[data-key="${key}"]`);
  if (node) node.remove();
  if (state.replyTo && state.replyTo.pane === pane && `m${state.replyTo.message_id}` === key) cancelReply();
}

function renderPane(pane) {
  const list = listOf(pane);
  for (const node of list.querySelectorAll("[data-key]")) node.remove();
  const known = state.messages.get(state.chats[pane].id) || new Map();
  for (const m of known.values()) {
    const node = messageNode(m, pane);
    node.classList.toggle("hidden", !visible(m, pane));
    list.insertBefore(node, pane === "private" ? list.querySelector(".draft") : null);
  }
  scrollDown(list);
}

// Replies.

function plainText(m) {
  const text = new DOMParser().parseFromString(m.html, "text/html").body.textContent || "";
  return m.photo ? `Photo ${text}`.trim() : text;
}

function startReply(pane, m) {
  const text = plainText(m);
  state.replyTo = { pane, message_id: m.message_id, name: m.from_name };
  $("reply-name").textContent = `Reply to ${m.from_name}`;
  $("reply-text").textContent = text.slice(0, 80);
  $("reply-bar").classList.remove("hidden");
  $("input").focus();
}

function cancelReply() {
  state.replyTo = null;
  $("reply-bar").classList.add("hidden");
}

// Drafts, typing and the stop button (drafts are for the private chat only).

function showDraft(event) {
  if (event.chat_id !== state.userId) return;
  const list = listOf("private");
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
    if (event.rich) content.replaceChildren(VeilRich.render(event.rich, sendText)); // rich.js
    VeilRich.enhance(content, sendText);
    bubble.replaceChildren(content);
  }
  node.dataset.canStop = event.can_stop ? "1" : "";
  node.dataset.thread = event.thread_id ?? "";
  node.classList.toggle("hidden", !Topics.shows(event));
  setTyping(event.chat_id, false);
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

function setTyping(chatId, on) {
  state.typingUntil.set(chatId, on ? Date.now() + 5000 : 0);
  renderStatus();
}

function renderStatus() {
  const status = $("status");
  const chat = state.chats[state.chat];
  const typing = chat && Date.now() < (state.typingUntil.get(chat.id) || 0);
  let text = "bot";
  if (state.chat === "group") text = `${state.users.length + 1} members: ${state.users.map((u) => u.name).join(", ")} and @${state.bot.username}`;
  if (state.chat === "guest") text = `${state.users.length} members: ${state.users.map((u) => u.name).join(", ")}`;
  status.textContent = typing ? `${state.chat === "private" ? "" : `${state.bot.name} is `}typing…` : text;
  status.classList.toggle("typing", Boolean(typing));
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

// Sending, inline queries and choosing a result.

async function sendText(text) {
  const body = Topics.into({ text, lang: state.lang, chat: state.chat, as: viewerOf(state.chat) });
  if (state.replyTo && state.replyTo.pane === state.chat) body.reply_to = state.replyTo.message_id;
  cancelReply();
  try {
    await post("send", body);
  } catch (e) {
    toast(e.message);
  }
}

function mentionQuery(text) {
  const prefix = `@${state.bot.username}`;
  if (!text.toLowerCase().startsWith(prefix.toLowerCase())) return null;
  const rest = text.slice(prefix.length);
  if (rest && !/^\s/.test(rest)) return null;
  return rest.trim();
}

async function inlineQuery(query) {
  const seq = ++state.inlineSeq;
  const pane = state.chat;
  const box = $("inline-results");
  box.replaceChildren(el("div", "empty", "Asking the bot…"));
  box.classList.remove("hidden");
  let reply;
  try {
    reply = await post("inline", { query, lang: state.lang, chat: pane, as: viewerOf(pane) });
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
    item.addEventListener("click", () => choose(pane, query, r.id));
    box.append(item);
  }
}

function closeInline() {
  clearTimeout(inlineTimer);
  state.inlineSeq += 1; // an answer still on its way is not shown
  state.lastQuery = "";
  $("inline-results").classList.add("hidden");
}

async function choose(pane, query, resultId) {
  closeInline();
  $("input").value = "";
  try {
    await post("choose", { query, result_id: resultId, chat: pane, as: viewerOf(pane) });
  } catch (e) {
    toast(e.message);
  }
}

// Tabs and who the page plays.

function selectChat(chat) {
  state.chat = chat;
  for (const pane of PANES) {
    $(`tab-${pane}`).classList.toggle("active", pane === chat);
    listOf(pane).classList.toggle("hidden", pane !== chat);
  }
  $("menu").classList.toggle("hidden", chat !== "private");
  $("viewer-box").classList.toggle("hidden", chat === "private");
  $("commands").classList.add("hidden");
  closeInline();
  if (state.replyTo && state.replyTo.pane !== chat) cancelReply();
  const title = chat === "private" ? state.bot.name : (state.chats[chat] || {}).title || "";
  $("head-title").textContent = title;
  $("head-avatar").textContent = title.slice(0, 1);
  $("head-avatar").className = { private: "avatar", group: "avatar group-avatar", guest: "avatar guest-avatar" }[chat];
  $("input").placeholder = chat === "private" ? "Message" : `Message, or @${state.bot.username} question`;
  Topics.render();
  renderStatus();
  updateStop();
  miniApp.onChat(chat);
  scrollDown(listOf(chat));
  $("input").focus();
}

function selectViewer(userId) {
  state.viewer = userId;
  $("viewer").value = String(userId);
  renderPane("group");
  renderPane("guest");
  renderStatus();
}

// The event stream.

function applySnapshot(s) {
  state.userId = s.user_id;
  state.viewer = state.viewer || s.user_id;
  state.users = s.users;
  state.bot = s.bot;
  state.chats = s.chats;
  state.commands = s.commands;
  state.invoiceLinks = s.invoice_links || {};
  Topics.load(s.topics);
  $("bot-name").textContent = s.bot.name;
  $("group-title").textContent = s.chats.group.title;
  $("guest-title").textContent = s.chats.guest.title;
  $("user-id").textContent = String(s.user_id);
  for (const span of document.querySelectorAll(".bot-username")) span.textContent = s.bot.username;
  const viewer = $("viewer");
  viewer.replaceChildren(...s.users.map((u) => {
    const option = el("option", "", u.id === s.user_id ? `${u.name} (you)` : u.name);
    option.value = String(u.id);
    return option;
  }));
  viewer.value = String(state.viewer);
  state.messages.clear();
  for (const m of s.messages) remember(m);
  state.drafts.clear();
  for (const node of listOf("private").querySelectorAll(".draft")) node.remove();
  for (const pane of PANES) renderPane(pane);
  renderCommands();
  miniApp.snapshot(s); // the menu button and the reply keyboard (miniapp.js)
  selectChat(state.chat);
}

const handlers = {
  snapshot: applySnapshot,
  message: (e) => showMessage(e.message, false),
  edit: (e) => showMessage(e.message, true),
  delete: (e) => removeMessage(e.chat_id, e.key),
  draft: showDraft,
  action: (e) => { if (e.action === "typing") setTyping(e.chat_id, true); },
  callback_answer: (e) => {
    if (!e.text) return;
    const to = e.user_id === state.userId ? "" : `(to ${userName(e.user_id)}) `;
    toast(to + e.text, e.show_alert);
  },
  commands: (e) => { state.commands = e.commands; renderCommands(); },
  invoice_link: (e) => { state.invoiceLinks[e.url] = e.invoice; },
  topics: (e) => Topics.load(e.topics),
  menu_button: (e) => miniApp.setMenu(e.button),
  reply_keyboard: (e) => miniApp.setKeyboard(e),
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
  closeInline(); // Enter sends the text as a message, as in Telegram
  input.value = "";
  sendText(text);
}

let inlineTimer = 0;
$("input").addEventListener("input", () => {
  if (state.chat === "private") return;
  clearTimeout(inlineTimer);
  const query = mentionQuery($("input").value);
  if (query === null) {
    closeInline();
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
    if (node.dataset.canStop) post("stop", Topics.into({ draft_id: draftId })).catch((e) => toast(e.message));
    node.dataset.canStop = "";
  }
  updateStop();
});
$("menu").addEventListener("click", () => { renderCommands(); $("commands").classList.toggle("hidden"); });
for (const pane of PANES) $(`tab-${pane}`).addEventListener("click", () => selectChat(pane));
$("viewer").addEventListener("change", () => selectViewer(Number($("viewer").value)));
$("reply-cancel").addEventListener("click", cancelReply);
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
