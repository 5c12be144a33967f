// The Veil Mini App's one script (static/veil.js is this file bundled; see build.mjs).
//
// In a browser it starts the page; anywhere it also exposes the protocol functions as
// globalThis.VeilProtocol, which is how tests/test_webapp_crypto.py runs this very bundle in
// Node against the Python reference implementation and docs/protocol.md's vectors.

import * as protocol from "./protocol.js";
import * as history from "./history.js";
import * as context from "./context.js";
import { ThinkTags } from "./think.js";
import { startApp } from "./app.js";
import { CATALOGS } from "./texts.js";

globalThis.VeilProtocol = {
  ...protocol,
  sealHistory: history.sealHistory,
  openHistory: history.openHistory,
  slotFor: history.slotFor,
  fitContext: context.fitContext,
  modelWindow: context.modelWindow,
  contextRefusal: context.contextRefusal,
  ThinkTags,
  catalogs: CATALOGS,
};

if (typeof document !== "undefined" && document.getElementById("veil-config")) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startApp);
  else startApp();
}
