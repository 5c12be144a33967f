// The Veil sealed protocol, version 2, in the browser: the page's side of docs/protocol.md.
//
// What the page does with it: verify a gateway's key bundle against the operator keys pinned in
// the page itself, seal a chat request to the bundle's HPKE key (suite 1: X25519 / HKDF-SHA256 /
// ChaCha20-Poly1305, RFC 9180 base mode), open the sealed chunk stream with every check the
// bot's own client makes (truncation, reordering, splicing, tampering, trailing bytes), verify
// the signed usage receipt, and make the cancel and receipt-fetch proofs. It mirrors the Python
// reference (sealed/), whose test vectors it reproduces (tests/test_webapp_crypto.py).
//
// Libraries (pinned in package-lock.json, bundled at build time, never fetched at run time):
// @hpke/core with @hpke/dhkem-x25519 and @hpke/chacha20poly1305 for HPKE and the chunk AEAD,
// @noble/curves for Ed25519, @noble/hashes for SHA-256 and HMAC.

import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { CipherSuite } from "@hpke/core";
import { DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/dhkem-x25519";
import { ed25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const PROTOCOL_VERSION = 2;
export const MAX_JSON_INT = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const REQUEST_BUCKETS = Array.from({ length: 11 }, (_, i) => 1024 << i); // 1 KiB … 1 MiB
export const RECORD_BUCKETS = [64, 256, 1024, 4096, 16384, 65536];
export const SUITE_LABELS = {
  1: "X25519-HKDF-SHA256-ChaCha20Poly1305",
  2: "MLKEM768X25519-HKDF-SHA256-ChaCha20Poly1305",
};
export const RECORD_DELTA = 1;
export const RECORD_DONE = 2;
export const RECORD_ERROR = 3;
export const RECORD_REASONING = 4;
export const ERROR_KINDS = ["unavailable", "context_length", "stalled", "backend"];
export const RECEIPT_STATUSES = ["complete", "stopped", "error"];

const HEADER_SIZE = 14;
const KEY_ID_SIZE = 8;
const REQUEST_ID_SIZE = 16;
const RESPONSE_KEY_SIZE = 32;
const TAG = 16;
const CHUNK_HEAD = 13; // stream id (8) + seq (4) + flags (1)
const MIN_CHUNK = CHUNK_HEAD + RECORD_BUCKETS[0] + TAG;
const MAX_CHUNK = CHUNK_HEAD + RECORD_BUCKETS[RECORD_BUCKETS.length - 1] + TAG;
const FLAG_FINAL = 0x01;
const REORDER_WINDOW = 16;
const MAX_MODEL_NAME = 256;
const MAX_WINDOW = 2 ** 30; // the largest context window a bundle may state, in tokens
const MAX_ERROR_MESSAGE = 1024;
const MAX_FINISH_REASON = 64;
// An error record's ``retry_after``: whole seconds, at most this (sealed/stream.py).
const MAX_RETRY_AFTER = 300;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const utf8 = (text) => encoder.encode(text);
const BUNDLE_CONTEXT = utf8("veil/bundle/v2\0");
const REQUEST_INFO = utf8("veil/request/v2\0");
const RESPONSE_AAD = utf8("veil/response/v2\0");
const STREAM_ID_CONTEXT = utf8("veil/stream-id/v2");
const RECEIPT_CONTEXT = utf8("veil/receipt/v2\0");
const CONTROL_KEY_CONTEXT = utf8("veil/control-key/v2");
const CANCEL_CONTEXT = utf8("veil/cancel/v2\0");
const RECEIPT_FETCH_CONTEXT = utf8("veil/receipt-fetch/v2\0");

/** A protocol failure; ``kind`` names it as docs/protocol.md and the Python code do. */
export class SealedError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = kind;
    this.kind = kind;
  }
}

const malformed = (message) => new SealedError("MalformedMessage", message);

// -- bytes ------------------------------------------------------------------------------------

export function fromUtf8(bytes) {
  try {
    return decoder.decode(bytes);
  } catch {
    throw malformed("not UTF-8");
  }
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text, size) {
  if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) throw malformed("bad hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  if (size !== undefined && out.length !== size) throw malformed("hex of the wrong size");
  return out;
}

/** Base64url without padding. */
export function b64e(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Base64url with or without padding; ``MalformedMessage`` for anything else. */
export function b64d(text) {
  // Unpadded, or with exactly the padding that completes the last group of four.
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw malformed("bad base64url");
  }
  const bare = text.replace(/=+$/, "");
  const padding = (4 - (bare.length % 4)) % 4;
  if (bare.length % 4 === 1 || (text.length !== bare.length && text.length !== bare.length + padding)) {
    throw malformed("bad base64url");
  }
  const padded = bare.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat(padding);
  let binary;
  try {
    binary = atob(padded);
  } catch {
    throw malformed("bad base64url");
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function randomBytes(size) {
  return globalThis.crypto.getRandomValues(new Uint8Array(size));
}

// -- JSON -------------------------------------------------------------------------------------

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
}

/** Canonical JSON: sorted keys, no spaces, everything outside printable ASCII as \uXXXX. */
export function canonicalJson(value) {
  return JSON.stringify(sortKeys(value)).replace(
    /[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

export function parseJsonObject(bytes) {
  let value;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch (error) {
    if (error instanceof SealedError) throw error;
    throw malformed("not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw malformed("JSON value is not an object");
  }
  return value;
}

function jsonInt(value, low = 0, high = MAX_JSON_INT) {
  if (!Number.isSafeInteger(value) || value < low || value > high) {
    throw malformed("expected an integer in range");
  }
  return value;
}

function jsonStr(value, maxLength = 4096) {
  if (typeof value !== "string" || [...value].length > maxLength) throw malformed("expected a string");
  return value;
}

function exactFields(value, required, optional = []) {
  const keys = Object.keys(value);
  const allowed = new Set([...required, ...optional]);
  if (!required.every((k) => k in value) || !keys.every((k) => allowed.has(k))) {
    throw malformed("fields missing or unknown");
  }
}

// -- padding ----------------------------------------------------------------------------------

export function bucketFor(size, buckets) {
  return buckets.find((b) => size <= b);
}

export function pad(payload, buckets) {
  const target = bucketFor(4 + payload.length, buckets);
  if (target === undefined) throw new SealedError("RequestTooLarge", "larger than the last bucket");
  const out = new Uint8Array(target);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

export function unpad(padded) {
  if (padded.length < 4) throw malformed("padded value shorter than its length prefix");
  const length = new DataView(padded.buffer, padded.byteOffset).getUint32(0);
  const end = 4 + length;
  if (end > padded.length || padded.subarray(end).some((b) => b !== 0)) throw malformed("bad padding");
  return padded.subarray(4, end);
}

// -- key bundles ------------------------------------------------------------------------------

export function keyIdFor(suite, publicKey) {
  return sha256(concat(Uint8Array.of(suite), publicKey)).subarray(0, KEY_ID_SIZE);
}

function suiteFromLabel(label) {
  for (const [id, name] of Object.entries(SUITE_LABELS)) if (name === label) return Number(id);
  throw malformed("unknown suite");
}

const BUNDLE_FIELDS = ["v", "suite", "public_key", "key_id", "not_before", "not_after", "models", "receipt_key"];

/** The optional ``windows`` object: each key a listed model, each value in [1, MAX_WINDOW]. */
function parseWindows(value, models) {
  if (value === undefined) return {};
  if (
    value === null ||
    typeof value !== "object" ||
    Array.isArray(value) ||
    !Object.keys(value).every((model) => models.includes(model))
  ) {
    throw malformed("bad windows: not an object of listed models");
  }
  return Object.fromEntries(Object.entries(value).map(([model, size]) => [model, jsonInt(size, 1, MAX_WINDOW)]));
}

/**
 * A bundle body parsed strictly (unknown fields and wrong types are MalformedMessage).
 * ``windows`` holds the served models' context windows the bundle states (tokens), if any.
 */
export function parseBundle(body) {
  const value = parseJsonObject(body);
  exactFields(value, BUNDLE_FIELDS, ["attestation", "windows"]);
  if (jsonInt(value.v) !== PROTOCOL_VERSION) throw malformed("unsupported bundle version");
  const models = value.models;
  if (
    !Array.isArray(models) ||
    !models.every((m) => typeof m === "string" && m.length > 0 && [...m].length <= MAX_MODEL_NAME)
  ) {
    throw malformed("bad models list");
  }
  const bundle = {
    suite: suiteFromLabel(jsonStr(value.suite, 128)),
    publicKey: b64d(jsonStr(value.public_key)),
    keyId: fromHex(jsonStr(value.key_id, 2 * KEY_ID_SIZE), KEY_ID_SIZE),
    notBefore: jsonInt(value.not_before),
    notAfter: jsonInt(value.not_after),
    models: [...models],
    receiptKey: b64d(jsonStr(value.receipt_key, 64)),
    attestation: value.attestation === undefined ? null : jsonStr(value.attestation, 65536),
    windows: parseWindows(value.windows, models),
  };
  const publicLength = bundle.suite === 1 ? 32 : 1216;
  if (bundle.publicKey.length !== publicLength) throw malformed("bad public key length");
  if (bundle.receiptKey.length !== 32) throw malformed("bad receipt key");
  return bundle;
}

function verifyEd25519(signature, message, key) {
  try {
    return signature.length === 64 && ed25519.verify(signature, message, key, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Check a served bundle ({bundle, signature, operator_key}) against the pinned operator keys;
 * the checks and their order are docs/protocol.md §2's. Returns {bundle, body, operatorKey}.
 */
export function verifyBundle(wire, pinned, now, skew = 120) {
  if (wire === null || typeof wire !== "object") throw malformed("bundle reply is not an object");
  if (typeof wire.signature !== "string" || !wire.signature) {
    throw new SealedError("BundleUnsigned", "bundle has no signature");
  }
  if (typeof wire.bundle !== "string" || typeof wire.operator_key !== "string") {
    throw malformed("bundle fields missing");
  }
  const operatorKey = b64d(wire.operator_key);
  if (!pinned.some((key) => equalBytes(key, operatorKey))) {
    throw new SealedError("BundleUnpinned", "signed by an operator key that is not pinned");
  }
  const body = b64d(wire.bundle);
  if (!verifyEd25519(b64d(wire.signature), concat(BUNDLE_CONTEXT, body), operatorKey)) {
    throw new SealedError("BundleBadSignature", "bundle signature does not verify");
  }
  const bundle = parseBundle(body);
  if (!equalBytes(keyIdFor(bundle.suite, bundle.publicKey), bundle.keyId)) {
    throw new SealedError("BundleKeyMismatch", "key id does not match the public key");
  }
  if (now + skew < bundle.notBefore || now - skew >= bundle.notAfter) {
    throw new SealedError("BundleExpired", "bundle is outside its validity window");
  }
  return { bundle, body, operatorKey };
}

// -- sealed requests --------------------------------------------------------------------------

const suiteOne = () =>
  new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Chacha20Poly1305(),
  });

export function requestHeader(bundle) {
  return concat(utf8("VEIL"), Uint8Array.of(PROTOCOL_VERSION, bundle.suite), bundle.keyId);
}

/** The padded plaintext of a request (deterministic: the vectors check it). */
export function encodeInner(chat, { requestId, responseKey, timestamp }) {
  const inner = {
    v: PROTOCOL_VERSION,
    request_id: toHex(requestId),
    ts: timestamp,
    response_key: b64e(responseKey),
    chat,
  };
  return pad(utf8(canonicalJson(inner)), REQUEST_BUCKETS);
}

/** A fresh random request id and response key. */
export function newRequestSecrets() {
  return { requestId: randomBytes(REQUEST_ID_SIZE), responseKey: randomBytes(RESPONSE_KEY_SIZE) };
}

/** Seal ``chat`` to the bundle's key: only the gateway holding its private key can open it. */
export async function sealRequest(bundle, chat, { requestId, responseKey, timestamp }) {
  if (bundle.suite !== 1) throw new SealedError("UnsupportedSuite", "the page seals to suite 1 only");
  const header = requestHeader(bundle);
  const plaintext = encodeInner(chat, { requestId, responseKey, timestamp });
  const suite = suiteOne();
  const recipientPublicKey = await suite.kem.deserializePublicKey(bundle.publicKey);
  const { enc, ct } = await suite.seal(
    { recipientPublicKey, info: concat(REQUEST_INFO, header) },
    plaintext,
  );
  return concat(header, new Uint8Array(enc), new Uint8Array(ct));
}

/** Open a sealed request with an X25519 private key (the gateway's side; the vectors use it). */
export async function openRequest(data, privateKey) {
  const suite = suiteOne();
  const recipientKey = await suite.kem.deserializePrivateKey(privateKey);
  const plaintext = await suite.open(
    {
      recipientKey,
      enc: data.slice(HEADER_SIZE, HEADER_SIZE + 32),
      info: concat(REQUEST_INFO, data.subarray(0, HEADER_SIZE)),
    },
    data.slice(HEADER_SIZE + 32),
  );
  return unpad(new Uint8Array(plaintext));
}

// -- the response stream ----------------------------------------------------------------------

export function streamIdFor(responseKey) {
  return sha256(concat(STREAM_ID_CONTEXT, responseKey)).subarray(0, 8);
}

function nonce(seq) {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(8, seq); // 4 zero bytes, then seq as 8 bytes (< 2^32 here)
  return out;
}

function chunkHead(streamId, seq, flags) {
  const head = new Uint8Array(CHUNK_HEAD);
  head.set(streamId, 0);
  new DataView(head.buffer).setUint32(8, seq);
  head[12] = flags;
  return head;
}

/** A receipt body parsed strictly. */
export function parseReceipt(body) {
  const value = parseJsonObject(body);
  const fields = ["v", "request_id", "model", "prompt_tokens", "completion_tokens", "status", "estimated", "client"];
  exactFields(value, fields);
  if (jsonInt(value.v) !== PROTOCOL_VERSION) throw malformed("unsupported receipt version");
  if (typeof value.estimated !== "boolean") throw malformed("estimated is not a boolean");
  if (!RECEIPT_STATUSES.includes(jsonStr(value.status, 16))) throw malformed("unknown receipt status");
  fromHex(jsonStr(value.client, 16), 8);
  return {
    requestId: fromHex(jsonStr(value.request_id, 32), REQUEST_ID_SIZE),
    model: jsonStr(value.model, MAX_MODEL_NAME),
    promptTokens: jsonInt(value.prompt_tokens),
    completionTokens: jsonInt(value.completion_tokens),
    status: value.status,
    estimated: value.estimated,
    client: value.client,
  };
}

function signedReceipt(value) {
  const body = b64d(jsonStr(value.receipt, 4096));
  const signature = b64d(jsonStr(value.signature, 128));
  if (signature.length !== 64) throw malformed("receipt signature has the wrong length");
  return { receipt: parseReceipt(body), body, signature };
}

/**
 * A final record's payload (DONE or ERROR) parsed strictly: exactly ``finish_reason`` or
 * ``error`` (``kind``, ``status``, ``message``, and the model server's wait ``retry_after``, an
 * int of seconds up to ``MAX_RETRY_AFTER``, which the page asks for: ``Veil-Accept``), with
 * ``receipt`` and ``signature`` both or neither, as sealed/stream.py's ``Final.from_payload``
 * reads it. ``retryAfter`` is null when the record has none.
 */
export function parseFinal(value) {
  const done = !("error" in value);
  exactFields(value, [done ? "finish_reason" : "error"], ["receipt", "signature"]);
  if (("receipt" in value) !== ("signature" in value)) throw malformed("receipt without its signature");
  const receipt = "receipt" in value ? signedReceipt(value) : null;
  if (done) {
    return { receipt, finishReason: jsonStr(value.finish_reason, MAX_FINISH_REASON), error: null };
  }
  const error = value.error;
  if (error === null || typeof error !== "object" || Array.isArray(error)) throw malformed("bad error record");
  exactFields(error, ["kind", "status", "message"], ["retry_after"]);
  const kind = jsonStr(error.kind, 32);
  return {
    receipt,
    finishReason: null,
    error: {
      kind: ERROR_KINDS.includes(kind) ? kind : "backend",
      status: error.status === null ? null : jsonInt(error.status, 100, 599),
      message: jsonStr(error.message, MAX_ERROR_MESSAGE),
      // When sent, an int (null is malformed).
      retryAfter: "retry_after" in error ? jsonInt(error.retry_after, 0, MAX_RETRY_AFTER) : null,
    },
  };
}

/**
 * Check a receipt: the receipt key signed these exact bytes, for this request and model.
 * ``ReceiptInvalid`` otherwise.
 */
export function verifyReceipt(signed, receiptKey, requestId, model) {
  if (!verifyEd25519(signed.signature, concat(RECEIPT_CONTEXT, signed.body), receiptKey)) {
    throw new SealedError("ReceiptInvalid", "usage receipt signature does not verify");
  }
  if (!equalBytes(signed.receipt.requestId, requestId)) {
    throw new SealedError("ReceiptInvalid", "receipt names another request");
  }
  if (model !== undefined && signed.receipt.model !== model) {
    throw new SealedError("ReceiptInvalid", "receipt names another model");
  }
}

/**
 * The client's side of a sealed stream: feed it the bytes as they come (in order, awaiting
 * each call); it returns the records they complete, {type: "delta", text} (the answer),
 * {type: "reasoning", text} (a reasoning model's thinking, never part of the answer) or
 * {type: "final", ...parseFinal}, and throws a SealedError for any chunk that must not be
 * believed. Call close() at the end of the bytes.
 */
export class ChunkOpener {
  constructor(responseKey) {
    this.aead = new Chacha20Poly1305().createEncryptionContext(responseKey.slice().buffer);
    this.streamId = streamIdFor(responseKey);
    this.seq = 0;
    this.buffer = new Uint8Array(0);
    this.finished = false;
    this.timeLimit = false; // the bot said it cut the answer at its time limit
  }

  async feed(data) {
    if ((this.finished || this.timeLimit) && data.length) {
      throw new SealedError("TrailingData", "bytes after the final chunk");
    }
    this.buffer = concat(this.buffer, data);
    const records = [];
    while (this.buffer.length >= 4) {
      const length = new DataView(this.buffer.buffer, this.buffer.byteOffset).getUint32(0);
      if (length === 0 && !this.finished) {
        // The bot's mark (not the gateway's, so not sealed): it cut the answer at its time
        // limit for one answer. Nothing may follow it.
        this.timeLimit = true;
        if (this.buffer.length > 4) throw new SealedError("TrailingData", "bytes after the mark");
        this.buffer = new Uint8Array(0);
        break;
      }
      if (length < MIN_CHUNK || length > MAX_CHUNK) throw malformed("chunk length out of range");
      if (this.buffer.length < 4 + length) break;
      const body = this.buffer.slice(4, 4 + length);
      this.buffer = this.buffer.slice(4 + length);
      records.push(await this.open(body));
      if (this.finished && this.buffer.length) {
        throw new SealedError("TrailingData", "bytes after the final chunk");
      }
    }
    return records;
  }

  close() {
    if (this.finished) return;
    if (this.timeLimit) throw new SealedError("TimeLimit", "cut at the bot's time limit");
    throw new SealedError("StreamTruncated", "stream ended before its final chunk");
  }

  async decrypt(seq, ciphertext, head) {
    try {
      return new Uint8Array(await this.aead.open(nonce(seq), ciphertext, concat(RESPONSE_AAD, head)));
    } catch {
      return null;
    }
  }

  async open(body) {
    const streamId = body.subarray(0, 8);
    const view = new DataView(body.buffer, body.byteOffset);
    const seq = view.getUint32(8);
    const flags = body[12];
    if (!equalBytes(streamId, this.streamId)) {
      throw new SealedError("StreamSpliced", "chunk belongs to another response stream");
    }
    if (seq !== this.seq) throw new SealedError("ChunkOutOfOrder", "chunk arrived at the wrong position");
    const ciphertext = body.subarray(CHUNK_HEAD);
    const plaintext = await this.decrypt(seq, ciphertext, body.subarray(0, CHUNK_HEAD));
    if (plaintext === null) {
      if (await this.opensElsewhere(ciphertext)) {
        throw new SealedError("ChunkOutOfOrder", "chunk was sealed for another position");
      }
      throw new SealedError("ChunkTampered", "chunk fails authentication");
    }
    this.seq += 1;
    const record = unpad(plaintext);
    if (!record.length) throw malformed("empty record");
    const kind = record[0];
    const final = Boolean(flags & FLAG_FINAL);
    if (kind === RECORD_DELTA && !final) return { type: "delta", text: fromUtf8(record.subarray(1)) };
    if (kind === RECORD_REASONING && !final) {
      return { type: "reasoning", text: fromUtf8(record.subarray(1)) };
    }
    if ((kind === RECORD_DONE || kind === RECORD_ERROR) && final) {
      this.finished = true;
      const result = parseFinal(parseJsonObject(record.subarray(1)));
      if ((kind === RECORD_ERROR) !== (result.error !== null)) {
        throw malformed("record type does not match its payload");
      }
      return { type: "final", ...result };
    }
    throw malformed("record type and final flag disagree");
  }

  /** Whether the chunk was sealed for another seq within the window, either side (not for
   *  its own seq under the other flag: a flipped final flag is tampering). */
  async opensElsewhere(ciphertext) {
    const low = Math.max(0, this.seq - REORDER_WINDOW);
    for (let seq = low; seq <= this.seq + REORDER_WINDOW; seq++) {
      if (seq === this.seq) continue;
      for (const flags of [0, FLAG_FINAL]) {
        if ((await this.decrypt(seq, ciphertext, chunkHead(this.streamId, seq, flags))) !== null) {
          return true;
        }
      }
    }
    return false;
  }
}

// -- control proofs and ids -------------------------------------------------------------------

function controlKey(responseKey) {
  return sha256(concat(CONTROL_KEY_CONTEXT, responseKey));
}

/** The proof that a cancel of ``requestId`` comes from its asker. */
export function cancelProof(responseKey, requestId) {
  return hmac(sha256, controlKey(responseKey), concat(CANCEL_CONTEXT, requestId));
}

/** The proof that a receipt fetch for ``requestId`` comes from its asker. */
export function receiptProof(responseKey, requestId) {
  return hmac(sha256, controlKey(responseKey), concat(RECEIPT_FETCH_CONTEXT, requestId));
}

/** A client key's id as receipts name it. */
export function clientId(verifyKey) {
  return toHex(sha256(verifyKey).subarray(0, 8));
}

export function sha256Hex(bytes) {
  return toHex(sha256(bytes));
}
