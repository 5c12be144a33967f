// Runs the Mini App's shipped bundle (webapp/static/veil.js) in Node for
// tests/test_webapp_crypto.py: reads one JSON job on stdin, prints one JSON result.
//
//   {"bundle": PATH, "job": "vectors", "vectors": {...docs/protocol.md...}, "stream": HEX,
//    "moved_16": HEX (a chunk sealed at seq 16, its header claiming seq 0)}
//   {"bundle": PATH, "job": "seal", "wire": {...}, "pinned": [b64], "now": N, "chat": {...}}
//   {"bundle": PATH, "job": "open", "response_key": HEX, "stream": HEX, "request_id": HEX,
//    "receipt_key": b64, "model": NAME}
//   {"bundle": PATH, "job": "fit", "cases": [{"turns", "question", "stated", "bot_limit",
//    "max_answer", "min_answer"}, ...]}: the history the page sends (webapp/src/context.js)
//   {"bundle": PATH, "job": "parse", "finals": [{...}], "b64": [TEXT], "refusals": [TEXT]}:
//    "ok" or the error's kind for each final record's payload and each base64url text, and
//    the {window, prompt} each model server's "too long" refusal states (or null)
//   {"bundle": PATH, "job": "think", "answers": [[DELTA, ...], ...]}: each answer's
//    {text, thought} as the page's splitter reads it (webapp/src/think.js), record by record
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(0, "utf8"));
await import(pathToFileURL(job.bundle).href);
const P = globalThis.VeilProtocol;
const hex = (text) => P.fromHex(text);

async function kindOf(fn) {
  try {
    await fn();
    return "ok";
  } catch (error) {
    return error instanceof P.SealedError ? error.kind : `${error.name}: ${error.message}`;
  }
}

async function openAll(responseKey, bytes, pieces = 1) {
  const opener = new P.ChunkOpener(responseKey);
  const records = [];
  const step = Math.max(1, Math.ceil(bytes.length / pieces));
  for (let i = 0; i < bytes.length; i += step) records.push(...(await opener.feed(bytes.subarray(i, i + step))));
  opener.close();
  return records;
}

async function vectors() {
  const v = job.vectors;
  const inputs = v.inputs;
  const operatorKey = hex(v.operator_verify_key);
  const wire = {
    bundle: P.b64e(P.utf8(v.bundle_body)),
    signature: P.b64e(hex(v.bundle_signature)),
    operator_key: P.b64e(operatorKey),
  };
  const verified = P.verifyBundle(wire, [operatorKey], inputs.timestamp);
  // The same bundle stating its model's context window: verified, the window read.
  const withWindows = P.verifyBundle(
    {
      bundle: P.b64e(P.utf8(v.bundle_windows_body)),
      signature: P.b64e(hex(v.bundle_windows_signature)),
      operator_key: P.b64e(operatorKey),
    },
    [operatorKey],
    inputs.timestamp,
  );
  const windowsAs = (windows) =>
    kindOf(() => P.parseBundle(P.utf8(v.bundle_windows_body.replace(/"windows":\{[^}]*\}/, `"windows":${windows}`))));
  const responseKey = hex(inputs.response_key);
  const requestId = hex(inputs.request_id);
  const inner = P.encodeInner(inputs.chat, { requestId, responseKey, timestamp: inputs.timestamp });
  const opened = await P.openRequest(hex(v.sealed_request), hex(inputs.gateway_x25519_private));
  const stream = hex(job.stream);
  const records = await openAll(responseKey, stream);
  const final = records[records.length - 1];
  P.verifyReceipt(final.receipt, verified.bundle.receiptKey, requestId, inputs.chat.model);
  const split = await openAll(responseKey, stream, 97); // many small network reads
  const chunk0 = hex(v.chunk0_delta);
  const chunk1 = hex(v.chunk1_delta);
  const rest = stream.subarray(chunk0.length + chunk1.length);
  const flipped = stream.slice();
  flipped[chunk0.length + 40] ^= 0x01;
  const flagged = chunk0.slice();
  flagged[4 + 12] ^= 0x01; // a delta marked final on the way: tampering, not reordering
  const otherStream = await (async () => {
    const other = new P.ChunkOpener(new Uint8Array(32).fill(7));
    return other.feed(chunk0);
  });
  const wrongRequest = new Uint8Array(16);
  // A reasoning model's stream: a REASONING record, then the answer's first DELTA.
  const thinker = new P.ChunkOpener(responseKey);
  const thought = await thinker.feed(P.concat(hex(v.reasoning_chunk0), hex(v.reasoning_chunk1_delta)));
  return {
    key_id: P.toHex(verified.bundle.keyId),
    bundle_models: verified.bundle.models,
    bundle_windows: [verified.bundle.windows, withWindows.bundle.windows],
    hybrid_key_id: P.toHex(P.keyIdFor(2, hex(job.hybrid_public_key))),
    request_inner_json: P.fromUtf8(P.unpad(inner)),
    request_plaintext_length: inner.length,
    request_plaintext_sha256: P.sha256Hex(inner),
    opened_request_json: P.fromUtf8(opened),
    stream_id: P.toHex(P.streamIdFor(responseKey)),
    cancel_proof: P.toHex(P.cancelProof(responseKey, requestId)),
    receipt_proof: P.toHex(P.receiptProof(responseKey, requestId)),
    client_id: P.clientId(hex(v.client_verify_key)),
    deltas: records.filter((r) => r.type === "delta").map((r) => r.text),
    split_deltas: split.filter((r) => r.type === "delta").map((r) => r.text),
    reasoning_records: thought.map((r) => [r.type, r.text]),
    finish_reason: final.finishReason,
    receipt_body: P.fromUtf8(final.receipt.body),
    receipt_signature: P.toHex(final.receipt.signature),
    receipt_tokens: [final.receipt.receipt.promptTokens, final.receipt.receipt.completionTokens],
    checks: {
      unpinned: await kindOf(() => P.verifyBundle(wire, [new Uint8Array(32)], inputs.timestamp)),
      unsigned: await kindOf(() => P.verifyBundle({ ...wire, signature: "" }, [operatorKey], inputs.timestamp)),
      bad_signature: await kindOf(() =>
        P.verifyBundle({ ...wire, bundle: P.b64e(P.utf8(v.bundle_body.replace("veil-test", "veil-tesx"))) }, [operatorKey], inputs.timestamp),
      ),
      expired: await kindOf(() => P.verifyBundle(wire, [operatorKey], inputs.not_after + 121)),
      not_yet: await kindOf(() => P.verifyBundle(wire, [operatorKey], inputs.not_before - 121)),
      in_skew: await kindOf(() => P.verifyBundle(wire, [operatorKey], inputs.not_after + 119)),
      tampered: await kindOf(() => openAll(responseKey, flipped)),
      reordered: await kindOf(() => openAll(responseKey, P.concat(chunk1, chunk0, rest))),
      flag_flipped: await kindOf(() => openAll(responseKey, flagged)),
      moved_16: await kindOf(() => openAll(responseKey, hex(job.moved_16))),
      spliced: await kindOf(otherStream),
      truncated: await kindOf(() => openAll(responseKey, stream.subarray(0, stream.length - 1))),
      final_missing: await kindOf(() => openAll(responseKey, P.concat(chunk0, chunk1))),
      trailing: await kindOf(() => openAll(responseKey, P.concat(stream, new Uint8Array(1)))),
      // The bot's mark of an answer it cut at its time limit: four zero bytes after whole chunks.
      time_limit: await kindOf(() => openAll(responseKey, P.concat(chunk0, chunk1, new Uint8Array(4)), 7)),
      after_time_limit: await kindOf(() =>
        openAll(responseKey, P.concat(chunk0, new Uint8Array(4), chunk1)),
      ),
      time_limit_after_final: await kindOf(() => openAll(responseKey, P.concat(stream, new Uint8Array(4)))),
      receipt_other_request: await kindOf(() =>
        P.verifyReceipt(final.receipt, verified.bundle.receiptKey, wrongRequest, inputs.chat.model),
      ),
      receipt_other_model: await kindOf(() =>
        P.verifyReceipt(final.receipt, verified.bundle.receiptKey, requestId, "other"),
      ),
      receipt_other_key: await kindOf(() =>
        P.verifyReceipt(final.receipt, operatorKey, requestId, inputs.chat.model),
      ),
      windows_ok: await windowsAs('{"veil-test":1073741824}'),
      windows_unlisted_model: await windowsAs('{"other":2048}'),
      windows_zero: await windowsAs('{"veil-test":0}'),
      windows_too_large: await windowsAs('{"veil-test":1073741825}'),
      windows_not_integer: await windowsAs('{"veil-test":"2048"}'),
      windows_not_object: await windowsAs("[2048]"),
      b64_padding_inside: await kindOf(() => P.b64d("ab=c")),
      canonical_non_ascii: P.canonicalJson({ b: "é\u007f😀", a: [1, "\n"] }),
    },
  };
}

async function seal() {
  const pinned = job.pinned.map((k) => P.b64d(k));
  const { bundle } = P.verifyBundle(job.wire, pinned, job.now);
  const { requestId, responseKey } = P.newRequestSecrets();
  const body = await P.sealRequest(bundle, job.chat, { requestId, responseKey, timestamp: job.now });
  return {
    body: P.toHex(body),
    request_id: P.toHex(requestId),
    response_key: P.toHex(responseKey),
    receipt_key: P.b64e(bundle.receiptKey),
  };
}

async function open() {
  const records = await openAll(hex(job.response_key), hex(job.stream), 5);
  const final = records[records.length - 1];
  P.verifyReceipt(final.receipt, P.b64d(job.receipt_key), hex(job.request_id), job.model);
  return {
    text: records.filter((r) => r.type === "delta").map((r) => r.text).join(""),
    reasoning: records.filter((r) => r.type === "reasoning").map((r) => r.text).join(""),
    records: records.length,
    finish_reason: final.finishReason,
    status: final.receipt.receipt.status,
    completion_tokens: final.receipt.receipt.completionTokens,
  };
}

async function history() {
  const key = P.randomBytes(32);
  const turns = [{ role: "user", content: "Ключ? 🔑" }, { role: "assistant", content: "Yes." }];
  const sealed = await P.sealHistory(key, turns);
  const back = await P.openHistory(key, sealed);
  const wrong = await kindOf(() => P.openHistory(P.randomBytes(32), sealed));
  return { sealed, back, wrong, plaintext_visible: sealed.includes("Yes") };
}

async function texts() {
  return P.catalogs;
}

function fit() {
  return job.cases.map((c) => {
    const window = P.modelWindow(c.stated, c.bot_limit);
    const fitted = P.fitContext(c.turns, c.question, {
      window,
      maxAnswer: c.max_answer,
      minAnswer: c.min_answer,
    });
    return { window, ...fitted };
  });
}

async function parse() {
  return {
    finals: await Promise.all(job.finals.map((payload) => kindOf(() => P.parseFinal(payload)))),
    b64: await Promise.all(job.b64.map((text) => kindOf(() => P.b64d(text)))),
    refusals: (job.refusals || []).map((message) => P.contextRefusal(message)),
  };
}

function think() {
  return job.answers.map((deltas) => {
    const tags = new P.ThinkTags();
    const pieces = deltas.flatMap((delta) => tags.feed(delta)).concat(tags.end());
    const joined = (kind) => pieces.filter(([k]) => k === kind).map(([, piece]) => piece).join("");
    return { text: joined("text"), thought: joined("thought") };
  });
}

const jobs = { vectors, seal, open, history, texts, fit, parse, think };
process.stdout.write(JSON.stringify(await jobs[job.job]()));
