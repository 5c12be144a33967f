// The playground's Mini App host: the bot's menu button, its reply keyboard, and the client's
// side of the Mini App bridge, as Telegram's web client plays it.
//
// A web_app button (the menu button, an inline button, a reply keyboard button) asks the
// playground for the launch URL (/ui/webapp: the page's URL with tgWebAppData signed by the
// emulator with the bot token, tgWebAppVersion, tgWebAppPlatform, tgWebAppThemeParams) and
// opens it in an iframe. The page inside talks to this host with
// window.parent.postMessage({eventType, eventData}); the host answers with postMessage to the
// frame, as web.telegram.org does: ready, expand and the viewport, the theme, the main and back
// buttons, close, header and background colours, links, and the SecureStorage and
// DeviceStorage requests, which the emulator answers from the play user's stores
// (/ui/webapp_event). Everything the page sent is kept in window.miniAppEvents, in order.
// Texts are set with textContent only.
"use strict";

window.miniAppEvents = [];

const miniApp = (() => {
  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const host = {
    menu: { type: "commands" },
    keyboard: null, // rows of the reply keyboard the bot shows in the private chat
    chat: "private",
    frame: null,
    url: "",
    origin: "",
    theme: {},
    mainButton: { is_visible: false },
  };

  // The panel Telegram's web client shows a Mini App in.
  const panel = make("div", "miniapp hidden");
  panel.id = "miniapp";
  const head = make("div", "miniapp-head");
  const back = make("button", "plain miniapp-back hidden", "‹ Back");
  back.id = "miniapp-back";
  back.type = "button";
  const title = make("div", "miniapp-title", "");
  title.id = "miniapp-title";
  const reload = make("button", "plain", "↻");
  reload.id = "miniapp-reload";
  reload.type = "button";
  reload.title = "Reload the Mini App";
  const close = make("button", "plain", "✕");
  close.id = "miniapp-close";
  close.type = "button";
  close.title = "Close the Mini App";
  head.append(back, title, reload, close);
  const body = make("div", "miniapp-body");
  const main = make("button", "miniapp-main hidden", "");
  main.id = "miniapp-main";
  main.type = "button";
  panel.append(head, body, main);
  document.body.append(panel);

  // The composer's menu button for a web_app menu, and the reply keyboard above the composer.
  const menuButton = make("button", "menu-button webapp-menu hidden", "");
  menuButton.id = "webapp-menu";
  menuButton.type = "button";
  document.getElementById("menu").after(menuButton);
  const keyboardBox = make("div", "reply-keyboard hidden");
  keyboardBox.id = "reply-keyboard";
  document.querySelector(".composer").before(keyboardBox);

  async function post(action, payload) {
    const reply = await fetch(`/ui/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    const data = await reply.json();
    if (!reply.ok) throw new Error(data.error || reply.statusText);
    return data;
  }

  function language() {
    return document.getElementById("lang").value || "en";
  }

  function render() {
    const inPrivate = host.chat === "private";
    const webMenu = host.menu.type === "web_app";
    menuButton.textContent = webMenu ? host.menu.text : "";
    menuButton.classList.toggle("hidden", !(inPrivate && webMenu));
    keyboardBox.replaceChildren();
    for (const row of host.keyboard || []) {
      const line = make("div", "keyboard-row");
      for (const button of row) {
        const b = make("button", button.web_app ? "web-app" : "", button.text);
        b.type = "button";
        b.addEventListener("click", () => {
          if (button.web_app) open("keyboard", button.web_app.url);
          else sendText(button.text); // app.js: the button's text, as the user's message
        });
        line.append(b);
      }
      keyboardBox.append(line);
    }
    keyboardBox.classList.toggle("hidden", !(inPrivate && host.keyboard && host.keyboard.length));
  }

  // Opening and closing.

  async function open(source, url, extra = {}) {
    let launch;
    try {
      launch = await post("webapp", { source, url, lang: language(), ...extra });
    } catch (error) {
      toast(error.message, true); // app.js
      return;
    }
    host.url = launch.url;
    host.origin = new URL(launch.url).origin;
    const params = new URLSearchParams(new URL(launch.url).hash.slice(1));
    try {
      host.theme = JSON.parse(params.get("tgWebAppThemeParams") || "{}");
    } catch {
      host.theme = {};
    }
    title.textContent = launch.title;
    panel.dataset.source = source;
    panel.style.background = host.theme.bg_color || "";
    head.style.background = host.theme.header_bg_color || "";
    mount();
    panel.classList.remove("hidden");
  }

  /** A fresh iframe at the launch URL: the page loads from scratch, as after a reload. */
  function mount() {
    if (host.frame) host.frame.remove();
    setMain({ is_visible: false });
    back.classList.add("hidden");
    delete panel.dataset.ready;
    delete panel.dataset.expanded;
    const frame = make("iframe", "miniapp-frame");
    frame.id = "miniapp-frame";
    frame.title = "Mini App";
    frame.setAttribute(
      "sandbox",
      "allow-scripts allow-same-origin allow-popups allow-forms allow-modals allow-storage-access-by-user-activation",
    );
    frame.setAttribute("allow", "clipboard-write");
    frame.src = host.url;
    host.frame = frame;
    body.append(frame);
  }

  function closeApp() {
    if (host.frame) host.frame.remove();
    host.frame = null;
    panel.classList.add("hidden");
    delete panel.dataset.ready;
  }

  // The bridge.

  function send(eventType, eventData) {
    if (!host.frame || !host.frame.contentWindow) return;
    host.frame.contentWindow.postMessage(JSON.stringify({ eventType, eventData }), host.origin);
  }

  function viewport() {
    const height = body.clientHeight;
    send("viewport_changed", { height, is_state_stable: true, is_expanded: true });
  }

  function setMain(params) {
    host.mainButton = params || { is_visible: false };
    const visible = Boolean(host.mainButton.is_visible && host.mainButton.text);
    main.classList.toggle("hidden", !visible);
    main.textContent = host.mainButton.text || "";
    main.disabled = host.mainButton.is_active === false;
    main.style.background = hex(host.mainButton.color) || host.theme.button_color || "";
    main.style.color = hex(host.mainButton.text_color) || host.theme.button_text_color || "";
  }

  // A colour the app gives, as Telegram takes one: #RRGGBB only (never url(...) or other CSS).
  const hex = (value) => (typeof value === "string" && /^#[0-9a-f]{6}$/i.test(value) ? value : "");
  const colorOf = (data) => (data && (hex(data.color) || host.theme[data.color_key])) || "";

  async function storage(type, data) {
    try {
      const reply = await post("webapp_event", { method: type, data: data || {} });
      if (reply.event) send(reply.event, reply.data);
    } catch (error) {
      toast(error.message, true);
    }
  }

  const events = {
    web_app_ready: () => {
      panel.dataset.ready = "true";
    },
    web_app_expand: () => {
      panel.dataset.expanded = "true";
      viewport();
    },
    web_app_request_viewport: viewport,
    web_app_request_theme: () => send("theme_changed", { theme_params: host.theme }),
    web_app_setup_main_button: setMain,
    web_app_setup_back_button: (data) => back.classList.toggle("hidden", !(data && data.is_visible)),
    web_app_close: closeApp,
    web_app_set_header_color: (data) => {
      head.style.background = colorOf(data);
    },
    web_app_set_background_color: (data) => {
      panel.style.background = colorOf(data);
    },
    web_app_open_link: (data) => {
      if (data && /^https?:\/\//i.test(data.url)) window.open(data.url, "_blank", "noopener,noreferrer");
    },
    web_app_data_send: () => toast("Sending data to the bot is not emulated."),
  };

  window.addEventListener("message", (event) => {
    if (!host.frame || event.source !== host.frame.contentWindow) return;
    let message;
    try {
      message = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
    } catch {
      return;
    }
    if (!message || typeof message.eventType !== "string") return;
    const type = message.eventType;
    const data = message.eventData === undefined ? null : message.eventData;
    window.miniAppEvents.push([type, data]);
    if (/^web_app_(secure|device)_storage_/.test(type)) storage(type, data);
    else if (events[type]) events[type](data);
  });

  main.addEventListener("click", () => send("main_button_pressed"));
  back.addEventListener("click", () => send("back_button_pressed"));
  close.addEventListener("click", closeApp);
  reload.addEventListener("click", mount);
  menuButton.addEventListener("click", () => {
    if (host.menu.type === "web_app") open("menu", host.menu.web_app.url);
  });

  return {
    open,
    close: closeApp,
    /** The snapshot's menu button and reply keyboard. */
    snapshot(s) {
      host.menu = s.menu_button || { type: "commands" };
      host.keyboard = s.reply_keyboard || null;
      render();
    },
    setMenu(button) {
      host.menu = button || { type: "commands" };
      render();
    },
    setKeyboard(event) {
      if (event.chat_id !== Number(document.getElementById("user-id").textContent)) return;
      host.keyboard = event.keyboard;
      render();
    },
    onChat(chat) {
      host.chat = chat;
      render();
    },
  };
})();
