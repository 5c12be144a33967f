// The page's side of Telegram's Mini App bridge, without Telegram's script.
//
// The page does not load telegram-web-app.js: that would run code the page's hash does not
// cover, fetched from elsewhere, in the one place the question exists in clear. What the page
// needs of the bridge is small and documented (core.telegram.org/api/web-events):
// - launch parameters in the URL fragment: tgWebAppData (the signed initData, sent to the bot
//   as is), tgWebAppThemeParams (JSON colours), tgWebAppVersion, tgWebAppPlatform;
// - events to the client: TelegramWebviewProxy.postEvent(type, JSON) in the mobile and desktop
//   apps, window.parent.postMessage({eventType, eventData}) in the web ones;
// - events from the client: window.Telegram.WebView.receiveEvent(type, data), or a message
//   from the parent frame;
// - SecureStorage (the device keychain) and DeviceStorage, both since Bot API 9.0, as request
//   events answered by the client with the same req_id.

const listeners = new Map(); // event type -> set of callbacks
let requestCounter = 0;

export function launchParams(hash = globalThis.location ? globalThis.location.hash : "") {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  let theme = {};
  try {
    theme = JSON.parse(params.get("tgWebAppThemeParams") || "{}") || {};
  } catch {
    theme = {};
  }
  const initData = params.get("tgWebAppData") || "";
  let user = null;
  try {
    user = JSON.parse(new URLSearchParams(initData).get("user") || "null");
  } catch {
    user = null;
  }
  return {
    initData,
    user,
    theme,
    version: params.get("tgWebAppVersion") || "6.0",
    platform: params.get("tgWebAppPlatform") || "unknown",
  };
}

/** True when ``version`` is at least ``wanted`` ("9.0" style). */
export function versionAtLeast(version, wanted) {
  const have = String(version).split(".").map(Number);
  const need = wanted.split(".").map(Number);
  for (let i = 0; i < Math.max(have.length, need.length); i++) {
    const a = have[i] || 0;
    const b = need[i] || 0;
    if (a !== b) return a > b;
  }
  return true;
}

function inFrame() {
  try {
    return window.parent != null && window.parent !== window;
  } catch {
    return true;
  }
}

/** Send an event to the Telegram client; false when there is no client to send it to. */
export function postEvent(type, data) {
  const proxy = window.TelegramWebviewProxy;
  if (proxy !== undefined && typeof proxy.postEvent === "function") {
    proxy.postEvent(type, data === undefined ? "" : JSON.stringify(data));
    return true;
  }
  if (window.external && "notify" in window.external) {
    window.external.notify(JSON.stringify({ eventType: type, eventData: data }));
    return true;
  }
  if (inFrame()) {
    window.parent.postMessage(JSON.stringify({ eventType: type, eventData: data }), "*");
    return true;
  }
  return false;
}

export function onEvent(type, callback) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(callback);
  return () => listeners.get(type).delete(callback);
}

function receiveEvent(type, data) {
  for (const callback of listeners.get(type) || []) {
    try {
      callback(data);
    } catch (error) {
      console.error("veil: event handler failed", type, error);
    }
  }
}

/** Install the receiving side once: the client calls it, or posts to the frame. */
export function installBridge() {
  const telegram = (window.Telegram = window.Telegram || {});
  const webView = (telegram.WebView = telegram.WebView || {});
  webView.receiveEvent = receiveEvent;
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    let message;
    try {
      message = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
    } catch {
      return;
    }
    if (message && typeof message.eventType === "string") receiveEvent(message.eventType, message.eventData);
  });
}

/** One request event answered by one of ``answers`` with the same req_id (or a timeout). */
function request(method, params, answers, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const reqId = `veil${Date.now().toString(36)}${(requestCounter++).toString(36)}`;
    const undo = [];
    const finish = (fn, value) => {
      clearTimeout(timer);
      for (const off of undo) off();
      fn(value);
    };
    for (const [event, ok] of Object.entries(answers)) {
      undo.push(
        onEvent(event, (data) => {
          if (!data || data.req_id !== reqId) return;
          if (ok) finish(resolve, data);
          else finish(reject, new Error(String(data.error || event)));
        }),
      );
    }
    const timer = setTimeout(() => finish(reject, new Error("no answer from Telegram")), timeoutMs);
    if (!postEvent(method, { req_id: reqId, ...params })) finish(reject, new Error("not in Telegram"));
  });
}

/** A key-value store of the client's, SecureStorage (``secure``) or DeviceStorage. */
export class ClientStorage {
  constructor(kind, version) {
    this.kind = kind; // "secure" or "device"
    this.available = versionAtLeast(version, "9.0");
  }

  async get(key) {
    const data = await request(
      `web_app_${this.kind}_storage_get_key`,
      { key },
      { [`${this.kind}_storage_key_received`]: true, [`${this.kind}_storage_failed`]: false },
    );
    return typeof data.value === "string" ? data.value : null;
  }

  async set(key, value) {
    await request(
      `web_app_${this.kind}_storage_save_key`,
      { key, value },
      { [`${this.kind}_storage_key_saved`]: true, [`${this.kind}_storage_failed`]: false },
    );
  }

  async remove(key) {
    await this.set(key, null);
  }
}

/** Apply Telegram's theme parameters as CSS variables (--tg-theme-bg-color and so on). */
export function applyTheme(theme, root = document.documentElement) {
  for (const [name, value] of Object.entries(theme || {})) {
    if (typeof value === "string" && /^#[0-9a-fA-F]{3,8}$/.test(value)) {
      root.style.setProperty(`--tg-theme-${name.replace(/_/g, "-")}`, value);
    }
  }
}
