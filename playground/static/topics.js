// Topics in the private chat (Bot API 9.3+), where the emulated bot has them: a bar of the
// chat's topics above its messages ("General" is the chat itself); picking one shows only its
// messages and drafts and writes into it; "+" makes a topic as the user. Renames by the bot
// arrive as "topics" events. Loaded before app.js, whose hooks call it; the functions it uses
// from app.js ($, el, post, toast, state, renderPane, selectChat...) are looked up when called.
// Names and titles are inserted as text, never as HTML.
"use strict";

const Topics = {
  enabled: false,
  list: [], // [{thread_id, name, icon_color}], oldest first
  current: null, // the thread id shown (null: the chat itself, "General")

  // The snapshot's or an event's {enabled, list}.
  load(topics) {
    this.enabled = Boolean(topics && topics.enabled);
    this.list = (topics && topics.list) || [];
    if (this.current !== null && !this.list.some((t) => t.thread_id === this.current)) this.current = null;
    this.render();
    if (typeof renderPane === "function" && state.chats.private) renderPane("private");
  },

  // Whether a private-chat message (or a draft event) belongs to the topic shown.
  shows(m) {
    if (!this.enabled) return true;
    return (m.thread_id ?? null) === this.current;
  },

  // A send's or a stop's body, into the topic shown.
  into(body) {
    if (this.enabled && this.current !== null && body.chat !== "group" && body.chat !== "guest") {
      body.thread_id = this.current;
    }
    return body;
  },

  pick(threadId) {
    this.current = threadId;
    this.render();
    renderPane("private");
    for (const node of state.drafts.values()) {
      node.classList.toggle("hidden", (Number(node.dataset.thread) || null) !== this.current);
    }
    $("input").focus();
  },

  async create() {
    const name = window.prompt("Topic name", "My topic");
    if (!name || !name.trim()) return;
    try {
      const reply = await post("topic", { name: name.trim(), lang: state.lang });
      this.current = reply.thread_id;
    } catch (e) {
      toast(e.message);
    }
  },

  // A topic's service message: created or renamed, centred like Telegram's.
  serviceNode(m) {
    const what = m.topic_event.kind === "created" ? "Topic created" : "Topic renamed to";
    const node = el("div", "service topic-service");
    node.append(`${what} `, el("b", "", m.topic_event.name));
    node.dataset.key = m.key;
    return node;
  },

  bar() {
    let bar = $("topics-bar");
    if (!bar) {
      bar = el("nav", "topics-bar hidden");
      bar.id = "topics-bar";
      bar.setAttribute("aria-label", "Topics");
      $("messages-private").before(bar);
    }
    return bar;
  },

  render() {
    const bar = this.bar();
    bar.classList.toggle("hidden", !this.enabled || state.chat !== "private");
    const chip = (label, threadId, color) => {
      const item = el("button", "topic-chip", label);
      item.type = "button";
      item.dataset.thread = threadId === null ? "" : String(threadId);
      item.classList.toggle("active", threadId === this.current);
      if (color) item.style.setProperty("--topic-color", `#${color.toString(16).padStart(6, "0")}`);
      item.addEventListener("click", () => this.pick(threadId));
      return item;
    };
    const add = el("button", "topic-chip topic-add", "+");
    add.type = "button";
    add.title = "New topic (as you, in your app)";
    add.addEventListener("click", () => this.create());
    bar.replaceChildren(
      chip("General", null, 0),
      ...this.list.map((t) => chip(t.name, t.thread_id, t.icon_color)),
      add,
    );
  },
};
