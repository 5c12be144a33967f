// Veil Mini App: built from webapp/src with esbuild; see docs/miniapp.md. Do not edit.
(() => {
  var __create = Object.create;
  var __defProp = Object.defineProperty;
  var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
  var __getOwnPropNames = Object.getOwnPropertyNames;
  var __getProtoOf = Object.getPrototypeOf;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
  var __require = /* @__PURE__ */ ((x) => typeof require !== "undefined" ? require : typeof Proxy !== "undefined" ? new Proxy(x, {
    get: (a, b) => (typeof require !== "undefined" ? require : a)[b]
  }) : x)(function(x) {
    if (typeof require !== "undefined") return require.apply(this, arguments);
    throw Error('Dynamic require of "' + x + '" is not supported');
  });
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };
  var __copyProps = (to, from, except, desc) => {
    if (from && typeof from === "object" || typeof from === "function") {
      for (let key of __getOwnPropNames(from))
        if (!__hasOwnProp.call(to, key) && key !== except)
          __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
    }
    return to;
  };
  var __toESM = (mod3, isNodeMode, target) => (target = mod3 != null ? __create(__getProtoOf(mod3)) : {}, __copyProps(
    // If the importer is in node compatibility mode or this is not an ESM
    // file that has been converted to a CommonJS file using a Babel-
    // compatible transform (i.e. "__esModule" has not been set), then set
    // "default" to the CommonJS "module.exports" for node compatibility.
    isNodeMode || !mod3 || !mod3.__esModule ? __defProp(target, "default", { value: mod3, enumerable: true }) : target,
    mod3
  ));
  var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

  // src/protocol.js
  var protocol_exports = {};
  __export(protocol_exports, {
    ChunkOpener: () => ChunkOpener,
    ERROR_KINDS: () => ERROR_KINDS,
    MAX_JSON_INT: () => MAX_JSON_INT,
    PROTOCOL_VERSION: () => PROTOCOL_VERSION,
    RECEIPT_STATUSES: () => RECEIPT_STATUSES,
    RECORD_BUCKETS: () => RECORD_BUCKETS,
    RECORD_DELTA: () => RECORD_DELTA,
    RECORD_DONE: () => RECORD_DONE,
    RECORD_ERROR: () => RECORD_ERROR,
    RECORD_REASONING: () => RECORD_REASONING,
    REQUEST_BUCKETS: () => REQUEST_BUCKETS,
    SUITE_LABELS: () => SUITE_LABELS,
    SealedError: () => SealedError,
    b64d: () => b64d,
    b64e: () => b64e,
    bucketFor: () => bucketFor,
    cancelProof: () => cancelProof,
    canonicalJson: () => canonicalJson,
    clientId: () => clientId,
    concat: () => concat2,
    encodeInner: () => encodeInner,
    equalBytes: () => equalBytes2,
    fromHex: () => fromHex,
    fromUtf8: () => fromUtf8,
    keyIdFor: () => keyIdFor,
    newRequestSecrets: () => newRequestSecrets,
    openRequest: () => openRequest,
    pad: () => pad,
    parseBundle: () => parseBundle,
    parseFinal: () => parseFinal,
    parseJsonObject: () => parseJsonObject,
    parseReceipt: () => parseReceipt,
    randomBytes: () => randomBytes3,
    receiptProof: () => receiptProof,
    requestHeader: () => requestHeader,
    sealRequest: () => sealRequest,
    sha256Hex: () => sha256Hex,
    streamIdFor: () => streamIdFor,
    toHex: () => toHex,
    unpad: () => unpad,
    utf8: () => utf8,
    verifyBundle: () => verifyBundle,
    verifyReceipt: () => verifyReceipt
  });

  // node_modules/@hpke/common/esm/src/errors.js
  var HpkeError = class extends Error {
    constructor(e) {
      let message;
      if (e instanceof Error) {
        message = e.message;
      } else if (typeof e === "string") {
        message = e;
      } else {
        message = "";
      }
      super(message);
      this.name = this.constructor.name;
    }
  };
  var InvalidParamError = class extends HpkeError {
  };
  var SerializeError = class extends HpkeError {
  };
  var DeserializeError = class extends HpkeError {
  };
  var EncapError = class extends HpkeError {
  };
  var DecapError = class extends HpkeError {
  };
  var ExportError = class extends HpkeError {
  };
  var SealError = class extends HpkeError {
  };
  var OpenError = class extends HpkeError {
  };
  var MessageLimitReachedError = class extends HpkeError {
  };
  var DeriveKeyPairError = class extends HpkeError {
  };
  var NotSupportedError = class extends HpkeError {
  };

  // node_modules/@hpke/common/esm/_dnt.shims.js
  var dntGlobals = {};
  var dntGlobalThis = createMergeProxy(globalThis, dntGlobals);
  function createMergeProxy(baseObj, extObj) {
    return new Proxy(baseObj, {
      get(_target, prop, _receiver) {
        if (prop in extObj) {
          return extObj[prop];
        } else {
          return baseObj[prop];
        }
      },
      set(_target, prop, value) {
        if (prop in extObj) {
          delete extObj[prop];
        }
        baseObj[prop] = value;
        return true;
      },
      deleteProperty(_target, prop) {
        let success = false;
        if (prop in extObj) {
          delete extObj[prop];
          success = true;
        }
        if (prop in baseObj) {
          delete baseObj[prop];
          success = true;
        }
        return success;
      },
      ownKeys(_target) {
        const baseKeys = Reflect.ownKeys(baseObj);
        const extKeys = Reflect.ownKeys(extObj);
        const extKeysSet = new Set(extKeys);
        return [...baseKeys.filter((k) => !extKeysSet.has(k)), ...extKeys];
      },
      defineProperty(_target, prop, desc) {
        if (prop in extObj) {
          delete extObj[prop];
        }
        Reflect.defineProperty(baseObj, prop, desc);
        return true;
      },
      getOwnPropertyDescriptor(_target, prop) {
        if (prop in extObj) {
          return Reflect.getOwnPropertyDescriptor(extObj, prop);
        } else {
          return Reflect.getOwnPropertyDescriptor(baseObj, prop);
        }
      },
      has(_target, prop) {
        return prop in extObj || prop in baseObj;
      }
    });
  }

  // node_modules/@hpke/common/esm/src/algorithm.js
  async function loadSubtleCrypto() {
    if (dntGlobalThis !== void 0 && globalThis.crypto !== void 0) {
      return globalThis.crypto.subtle;
    }
    try {
      const { webcrypto } = await import("crypto");
      return webcrypto.subtle;
    } catch (e) {
      throw new NotSupportedError(e);
    }
  }
  var NativeAlgorithm = class {
    constructor() {
      Object.defineProperty(this, "_api", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
    }
    async _setup() {
      if (this._api !== void 0) {
        return;
      }
      this._api = await loadSubtleCrypto();
    }
  };

  // node_modules/@hpke/common/esm/src/identifiers.js
  var Mode = {
    Base: 0,
    Psk: 1,
    Auth: 2,
    AuthPsk: 3
  };
  var KemId = {
    NotAssigned: 0,
    DhkemP256HkdfSha256: 16,
    DhkemP384HkdfSha384: 17,
    DhkemP521HkdfSha512: 18,
    DhkemSecp256k1HkdfSha256: 19,
    DhkemX25519HkdfSha256: 32,
    DhkemX448HkdfSha512: 33,
    HybridkemX25519Kyber768: 48,
    MlKem512: 64,
    MlKem768: 65,
    MlKem1024: 66,
    XWing: 25722
  };
  var KdfId = {
    HkdfSha256: 1,
    HkdfSha384: 2,
    HkdfSha512: 3,
    Sha3256: 4,
    Sha3384: 5,
    Sha3512: 6,
    Shake128: 16,
    Shake256: 17,
    TurboShake128: 18,
    TurboShake256: 19
  };
  var AeadId = {
    Aes128Gcm: 1,
    Aes256Gcm: 2,
    Chacha20Poly1305: 3,
    ExportOnly: 65535
  };

  // node_modules/@hpke/common/esm/src/consts.js
  var INPUT_LENGTH_LIMIT = 8192;
  var INFO_LENGTH_LIMIT = 268435456;
  var MINIMUM_PSK_LENGTH = 32;
  var EMPTY = /* @__PURE__ */ new Uint8Array(0);
  var N_0 = 0n;
  var N_1 = 1n;
  var N_2 = 2n;

  // node_modules/@hpke/common/esm/src/interfaces/kemInterface.js
  var SUITE_ID_HEADER_KEM = /* @__PURE__ */ new Uint8Array([
    75,
    69,
    77,
    0,
    0
  ]);

  // node_modules/@hpke/common/esm/src/kdfs/hkdf.js
  var HPKE_VERSION = /* @__PURE__ */ new Uint8Array([
    72,
    80,
    75,
    69,
    45,
    118,
    49
  ]);
  function toUint8Array(input) {
    return new Uint8Array(toArrayBuffer(input));
  }
  function toArrayBuffer(input) {
    if (input instanceof ArrayBuffer) {
      return input;
    }
    if (ArrayBuffer.isView(input)) {
      return new Uint8Array(input.buffer, input.byteOffset, input.byteLength).slice().buffer;
    }
    return new Uint8Array(input).slice().buffer;
  }
  var HkdfNative = class extends NativeAlgorithm {
    constructor() {
      super();
      Object.defineProperty(this, "id", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: KdfId.HkdfSha256
      });
      Object.defineProperty(this, "hashSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "_suiteId", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: EMPTY
      });
      Object.defineProperty(this, "algHash", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: {
          name: "HMAC",
          hash: "SHA-256",
          length: 256
        }
      });
    }
    init(suiteId) {
      this._suiteId = suiteId;
    }
    buildLabeledIkm(label, ikm) {
      this._checkInit();
      const ret = new Uint8Array(7 + this._suiteId.byteLength + label.byteLength + ikm.byteLength);
      ret.set(HPKE_VERSION, 0);
      ret.set(this._suiteId, 7);
      ret.set(label, 7 + this._suiteId.byteLength);
      ret.set(ikm, 7 + this._suiteId.byteLength + label.byteLength);
      return ret;
    }
    buildLabeledInfo(label, info, len) {
      this._checkInit();
      const ret = new Uint8Array(9 + this._suiteId.byteLength + label.byteLength + info.byteLength);
      ret.set(new Uint8Array([0, len]), 0);
      ret.set(HPKE_VERSION, 2);
      ret.set(this._suiteId, 9);
      ret.set(label, 9 + this._suiteId.byteLength);
      ret.set(info, 9 + this._suiteId.byteLength + label.byteLength);
      return ret;
    }
    async extract(salt, ikm) {
      await this._setup();
      const saltBuf = salt.byteLength === 0 ? new ArrayBuffer(this.hashSize) : toArrayBuffer(salt);
      if (saltBuf.byteLength !== this.hashSize) {
        throw new InvalidParamError("The salt length must be the same as the hashSize");
      }
      const ikmBuf = toArrayBuffer(ikm);
      const key = await this._api.importKey("raw", saltBuf, this.algHash, false, [
        "sign"
      ]);
      return await this._api.sign("HMAC", key, ikmBuf);
    }
    async expand(prk, info, len) {
      await this._setup();
      const prkBuf = toArrayBuffer(prk);
      const key = await this._api.importKey("raw", prkBuf, this.algHash, false, [
        "sign"
      ]);
      const okm = new ArrayBuffer(len);
      const okmBytes = new Uint8Array(okm);
      let prev = EMPTY;
      const mid = toUint8Array(info);
      const tail = new Uint8Array(1);
      if (len > 255 * this.hashSize) {
        throw new Error("Entropy limit reached");
      }
      const tmp = new Uint8Array(this.hashSize + mid.length + 1);
      for (let i = 1, cur = 0; cur < okmBytes.length; i++) {
        tail[0] = i;
        tmp.set(prev, 0);
        tmp.set(mid, prev.length);
        tmp.set(tail, prev.length + mid.length);
        prev = new Uint8Array(await this._api.sign("HMAC", key, tmp.slice(0, prev.length + mid.length + 1)));
        if (okmBytes.length - cur >= prev.length) {
          okmBytes.set(prev, cur);
          cur += prev.length;
        } else {
          okmBytes.set(prev.slice(0, okmBytes.length - cur), cur);
          cur += okmBytes.length - cur;
        }
      }
      return okm;
    }
    async extractAndExpand(salt, ikm, info, len) {
      await this._setup();
      const ikmBuf = toArrayBuffer(ikm);
      const baseKey = await this._api.importKey("raw", ikmBuf, "HKDF", false, ["deriveBits"]);
      return await this._api.deriveBits({
        name: "HKDF",
        hash: this.algHash.hash,
        salt: toArrayBuffer(salt),
        info: toArrayBuffer(info)
      }, baseKey, len * 8);
    }
    async labeledExtract(salt, label, ikm) {
      return await this.extract(salt, this.buildLabeledIkm(label, ikm));
    }
    async labeledExpand(prk, label, info, len) {
      return await this.expand(prk, this.buildLabeledInfo(label, info, len), len);
    }
    _checkInit() {
      if (this._suiteId === EMPTY) {
        throw new Error("Not initialized. Call init()");
      }
    }
  };
  var HkdfSha256Native = class extends HkdfNative {
    constructor() {
      super(...arguments);
      Object.defineProperty(this, "id", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: KdfId.HkdfSha256
      });
      Object.defineProperty(this, "hashSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
      Object.defineProperty(this, "algHash", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: {
          name: "HMAC",
          hash: "SHA-256",
          length: 256
        }
      });
    }
  };

  // node_modules/@hpke/common/esm/src/utils/misc.js
  var isCryptoKeyPair = (x) => typeof x === "object" && x !== null && typeof x.privateKey === "object" && typeof x.publicKey === "object";
  function i2Osp(n, w) {
    if (w <= 0) {
      throw new Error("i2Osp: too small size");
    }
    if (n >= 256 ** w) {
      throw new Error("i2Osp: too large integer");
    }
    const ret = new Uint8Array(w);
    for (let i = 0; i < w && n; i++) {
      ret[w - (i + 1)] = n % 256;
      n = Math.floor(n / 256);
    }
    return ret;
  }
  function concat(a, b) {
    const ret = new Uint8Array(a.length + b.length);
    ret.set(a, 0);
    ret.set(b, a.length);
    return ret;
  }
  function base64UrlToBytes(v) {
    const base64 = v.replace(/-/g, "+").replace(/_/g, "/");
    const byteString = atob(base64);
    const ret = new Uint8Array(byteString.length);
    for (let i = 0; i < byteString.length; i++) {
      ret[i] = byteString.charCodeAt(i);
    }
    return ret;
  }
  async function loadCrypto() {
    if (typeof dntGlobalThis !== "undefined" && globalThis.crypto !== void 0) {
      return globalThis.crypto;
    }
    try {
      const { webcrypto } = await import("crypto");
      return webcrypto;
    } catch (_e) {
      throw new Error("failed to load Crypto");
    }
  }
  function xor(a, b) {
    if (a.byteLength !== b.byteLength) {
      throw new Error("xor: different length inputs");
    }
    const buf = new Uint8Array(a.byteLength);
    for (let i = 0; i < a.byteLength; i++) {
      buf[i] = a[i] ^ b[i];
    }
    return buf;
  }

  // node_modules/@hpke/common/esm/src/kems/dhkem.js
  var LABEL_EAE_PRK = /* @__PURE__ */ new Uint8Array([
    101,
    97,
    101,
    95,
    112,
    114,
    107
  ]);
  var LABEL_SHARED_SECRET = /* @__PURE__ */ new Uint8Array([
    115,
    104,
    97,
    114,
    101,
    100,
    95,
    115,
    101,
    99,
    114,
    101,
    116
  ]);
  function concat3(a, b, c) {
    const ret = new Uint8Array(a.length + b.length + c.length);
    ret.set(a, 0);
    ret.set(b, a.length);
    ret.set(c, a.length + b.length);
    return ret;
  }
  var Dhkem = class {
    constructor(id, prim, kdf) {
      Object.defineProperty(this, "id", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "secretSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "encSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "publicKeySize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "privateKeySize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "_prim", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_kdf", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this.id = id;
      this._prim = prim;
      this._kdf = kdf;
      const suiteId = new Uint8Array(SUITE_ID_HEADER_KEM);
      suiteId.set(i2Osp(this.id, 2), 3);
      this._kdf.init(suiteId);
    }
    async serializePublicKey(key) {
      return await this._prim.serializePublicKey(key);
    }
    async deserializePublicKey(key) {
      return await this._prim.deserializePublicKey(toArrayBuffer(key));
    }
    async serializePrivateKey(key) {
      return await this._prim.serializePrivateKey(key);
    }
    async deserializePrivateKey(key) {
      return await this._prim.deserializePrivateKey(toArrayBuffer(key));
    }
    async importKey(format, key, isPublic = true) {
      return await this._prim.importKey(format, key, isPublic);
    }
    async generateKeyPair() {
      return await this._prim.generateKeyPair();
    }
    async deriveKeyPair(ikm) {
      const rawIkm = toArrayBuffer(ikm);
      if (rawIkm.byteLength > INPUT_LENGTH_LIMIT) {
        throw new InvalidParamError("Too long ikm");
      }
      return await this._prim.deriveKeyPair(rawIkm);
    }
    async encap(params) {
      let ke;
      if (params.ekm === void 0) {
        ke = await this.generateKeyPair();
      } else if (isCryptoKeyPair(params.ekm)) {
        ke = params.ekm;
      } else {
        ke = await this.deriveKeyPair(params.ekm);
      }
      const enc = await this._prim.serializePublicKey(ke.publicKey);
      const pkrm = await this._prim.serializePublicKey(params.recipientPublicKey);
      try {
        let dh;
        if (params.senderKey === void 0) {
          dh = new Uint8Array(await this._prim.dh(ke.privateKey, params.recipientPublicKey));
        } else {
          const sks = isCryptoKeyPair(params.senderKey) ? params.senderKey.privateKey : params.senderKey;
          const dh1 = new Uint8Array(await this._prim.dh(ke.privateKey, params.recipientPublicKey));
          const dh2 = new Uint8Array(await this._prim.dh(sks, params.recipientPublicKey));
          dh = concat(dh1, dh2);
        }
        let kemContext;
        if (params.senderKey === void 0) {
          kemContext = concat(new Uint8Array(enc), new Uint8Array(pkrm));
        } else {
          const pks = isCryptoKeyPair(params.senderKey) ? params.senderKey.publicKey : await this._prim.derivePublicKey(params.senderKey);
          const pksm = await this._prim.serializePublicKey(pks);
          kemContext = concat3(new Uint8Array(enc), new Uint8Array(pkrm), new Uint8Array(pksm));
        }
        const sharedSecret = await this._generateSharedSecret(dh, kemContext);
        return {
          enc,
          sharedSecret
        };
      } catch (e) {
        throw new EncapError(e);
      }
    }
    async decap(params) {
      const enc = toArrayBuffer(params.enc);
      const pke = await this._prim.deserializePublicKey(enc);
      const skr = isCryptoKeyPair(params.recipientKey) ? params.recipientKey.privateKey : params.recipientKey;
      const pkr = isCryptoKeyPair(params.recipientKey) ? params.recipientKey.publicKey : await this._prim.derivePublicKey(params.recipientKey);
      const pkrm = await this._prim.serializePublicKey(pkr);
      try {
        let dh;
        if (params.senderPublicKey === void 0) {
          dh = new Uint8Array(await this._prim.dh(skr, pke));
        } else {
          const dh1 = new Uint8Array(await this._prim.dh(skr, pke));
          const dh2 = new Uint8Array(await this._prim.dh(skr, params.senderPublicKey));
          dh = concat(dh1, dh2);
        }
        let kemContext;
        if (params.senderPublicKey === void 0) {
          kemContext = concat(new Uint8Array(enc), new Uint8Array(pkrm));
        } else {
          const pksm = await this._prim.serializePublicKey(params.senderPublicKey);
          kemContext = new Uint8Array(enc.byteLength + pkrm.byteLength + pksm.byteLength);
          kemContext.set(new Uint8Array(enc), 0);
          kemContext.set(new Uint8Array(pkrm), enc.byteLength);
          kemContext.set(new Uint8Array(pksm), enc.byteLength + pkrm.byteLength);
        }
        return await this._generateSharedSecret(dh, kemContext);
      } catch (e) {
        throw new DecapError(e);
      }
    }
    async _generateSharedSecret(dh, kemContext) {
      const labeledIkm = this._kdf.buildLabeledIkm(LABEL_EAE_PRK, dh);
      const labeledInfo = this._kdf.buildLabeledInfo(LABEL_SHARED_SECRET, kemContext, this.secretSize);
      return await this._kdf.extractAndExpand(EMPTY, labeledIkm, labeledInfo, this.secretSize);
    }
  };

  // node_modules/@hpke/common/esm/src/interfaces/dhkemPrimitives.js
  var KEM_USAGES = ["deriveBits"];
  var LABEL_DKP_PRK = /* @__PURE__ */ new Uint8Array([
    100,
    107,
    112,
    95,
    112,
    114,
    107
  ]);
  var LABEL_SK = /* @__PURE__ */ new Uint8Array([115, 107]);

  // node_modules/@hpke/common/esm/src/kems/dhkemPrimitives/ec.js
  var EC_P_521_PARAMS = {
    p: (1n << 521n) - 1n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    gx: 0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
    gy: 0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
    coordinateSize: 66
  };

  // node_modules/@hpke/common/esm/src/xCryptoKey.js
  var XCryptoKey = class {
    constructor(name, key, type, usages = []) {
      Object.defineProperty(this, "key", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "type", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "extractable", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: true
      });
      Object.defineProperty(this, "algorithm", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "usages", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this.key = key;
      this.type = type;
      this.algorithm = { name };
      this.usages = usages;
      if (type === "public") {
        this.usages = [];
      }
    }
  };

  // node_modules/@hpke/common/esm/src/kems/dhkemPrimitives/xCurve.js
  var XCurveDhkemPrimitives = class {
    constructor(algName, keySize, curve, hkdf) {
      Object.defineProperty(this, "_algName", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_curve", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_hkdf", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_nPk", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_nSk", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this._algName = algName;
      this._nPk = keySize;
      this._nSk = keySize;
      this._curve = curve;
      this._hkdf = hkdf;
    }
    serializePublicKey(key) {
      try {
        return Promise.resolve(key.key.buffer);
      } catch (e) {
        return Promise.reject(new SerializeError(e));
      }
    }
    async deserializePublicKey(key) {
      try {
        return await this._importRawKey(toArrayBuffer(key), true);
      } catch (e) {
        throw new DeserializeError(e);
      }
    }
    serializePrivateKey(key) {
      try {
        return Promise.resolve(key.key.buffer);
      } catch (e) {
        return Promise.reject(new SerializeError(e));
      }
    }
    async deserializePrivateKey(key) {
      try {
        return await this._importRawKey(toArrayBuffer(key), false);
      } catch (e) {
        throw new DeserializeError(e);
      }
    }
    async importKey(format, key, isPublic) {
      try {
        if (format === "raw") {
          return await this._importRawKey(key, isPublic);
        }
        if (key instanceof ArrayBuffer) {
          throw new Error("Invalid jwk key format");
        }
        return await this._importJWK(key, isPublic);
      } catch (e) {
        throw new DeserializeError(e);
      }
    }
    async generateKeyPair() {
      try {
        const rawSk = await this._curve.utils.randomSecretKey();
        const sk = new XCryptoKey(this._algName, rawSk, "private", KEM_USAGES);
        const pk = await this.derivePublicKey(sk);
        return { publicKey: pk, privateKey: sk };
      } catch (e) {
        throw new NotSupportedError(e);
      }
    }
    async deriveKeyPair(ikm) {
      try {
        const rawIkm = toArrayBuffer(ikm);
        const dkpPrk = await this._hkdf.labeledExtract(EMPTY.buffer, LABEL_DKP_PRK, new Uint8Array(rawIkm));
        const rawSk = await this._hkdf.labeledExpand(dkpPrk, LABEL_SK, EMPTY, this._nSk);
        const sk = new XCryptoKey(this._algName, new Uint8Array(rawSk), "private", KEM_USAGES);
        return {
          privateKey: sk,
          publicKey: await this.derivePublicKey(sk)
        };
      } catch (e) {
        throw new DeriveKeyPairError(e);
      }
    }
    derivePublicKey(key) {
      try {
        const pk = this._curve.getPublicKey(key.key);
        return Promise.resolve(new XCryptoKey(this._algName, pk, "public"));
      } catch (e) {
        return Promise.reject(new DeserializeError(e));
      }
    }
    dh(sk, pk) {
      try {
        return Promise.resolve(this._curve.getSharedSecret(sk.key, pk.key).buffer);
      } catch (e) {
        return Promise.reject(new SerializeError(e));
      }
    }
    _importRawKey(key, isPublic) {
      return new Promise((resolve, reject) => {
        if (isPublic && key.byteLength !== this._nPk) {
          reject(new Error("Invalid length of the key"));
        }
        if (!isPublic && key.byteLength !== this._nSk) {
          reject(new Error("Invalid length of the key"));
        }
        resolve(new XCryptoKey(this._algName, new Uint8Array(key), isPublic ? "public" : "private", isPublic ? [] : KEM_USAGES));
      });
    }
    _importJWK(key, isPublic) {
      return new Promise((resolve, reject) => {
        if (key.kty !== "OKP") {
          reject(new Error(`Invalid kty: ${key.kty}`));
        }
        if (key.crv !== this._algName) {
          reject(new Error(`Invalid crv: ${key.crv}`));
        }
        if (isPublic) {
          if (typeof key.d !== "undefined") {
            reject(new Error("Invalid key: `d` should not be set"));
          }
          if (typeof key.x !== "string") {
            reject(new Error("Invalid key: `x` not found"));
          }
          resolve(new XCryptoKey(this._algName, base64UrlToBytes(key.x), "public"));
        } else {
          if (typeof key.d !== "string") {
            reject(new Error("Invalid key: `d` not found"));
          }
          resolve(new XCryptoKey(this._algName, base64UrlToBytes(key.d), "private", KEM_USAGES));
        }
      });
    }
  };

  // node_modules/@hpke/common/esm/src/utils/noble.js
  function isBytes(a) {
    return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array";
  }
  function anumber(n, title = "") {
    if (!Number.isSafeInteger(n) || n < 0) {
      const prefix = title && `"${title}" `;
      throw new Error(`${prefix}expected integer >0, got ${n}`);
    }
  }
  function abytes(value, length, title = "") {
    const bytes = isBytes(value);
    const len = value?.length;
    const needsLen = length !== void 0;
    if (!bytes || needsLen && len !== length) {
      const prefix = title && `"${title}" `;
      const ofLen = needsLen ? ` of length ${length}` : "";
      const got = bytes ? `length=${len}` : `type=${typeof value}`;
      throw new Error(prefix + "expected Uint8Array" + ofLen + ", got " + got);
    }
    return value;
  }
  function aexists(instance, checkFinished = true) {
    if (instance.destroyed)
      throw new Error("Hash instance has been destroyed");
    if (checkFinished && instance.finished) {
      throw new Error("Hash#digest() has already been called");
    }
  }
  function aoutput(out, instance) {
    abytes(out, void 0, "digestInto() output");
    const min = instance.outputLen;
    if (out.length < min) {
      throw new Error('"digestInto() output" expected to be of length >=' + min);
    }
  }
  function abignumer(n) {
    if (typeof n === "bigint") {
      if (!isPosBig(n))
        throw new Error("positive bigint expected, got " + n);
    } else
      anumber(n);
    return n;
  }
  function u32(arr) {
    return new Uint32Array(arr.buffer, arr.byteOffset, Math.floor(arr.byteLength / 4));
  }
  function clean(...arrays) {
    for (let i = 0; i < arrays.length; i++) {
      arrays[i].fill(0);
    }
  }
  var _endianTestBuffer = /* @__PURE__ */ new Uint32Array([287454020]);
  var _endianTestBytes = /* @__PURE__ */ new Uint8Array(_endianTestBuffer.buffer);
  var isLE = _endianTestBytes[0] === 68;
  function createView(arr) {
    return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
  }
  function rotr(word, shift) {
    return word << 32 - shift | word >>> shift;
  }
  var hasHexBuiltin = /* @__PURE__ */ (() => (
    // @ts-ignore: to use toHex
    typeof Uint8Array.from([]).toHex === "function" && // @ts-ignore: to use fromHex
    typeof Uint8Array.fromHex === "function"
  ))();
  var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
  var HEX_TO_BIGINT = [
    0n,
    1n,
    2n,
    3n,
    4n,
    5n,
    6n,
    7n,
    8n,
    9n,
    10n,
    11n,
    12n,
    13n,
    14n,
    15n
  ];
  function bytesToHex(bytes) {
    abytes(bytes);
    if (hasHexBuiltin)
      return bytes.toHex();
    let hex = "";
    for (let i = 0; i < bytes.length; i++) {
      hex += hexes[bytes[i]];
    }
    return hex;
  }
  var asciis = { _0: 48, _9: 57, A: 65, F: 70, a: 97, f: 102 };
  function asciiToBase16(ch) {
    if (ch >= asciis._0 && ch <= asciis._9)
      return ch - asciis._0;
    if (ch >= asciis.A && ch <= asciis.F)
      return ch - (asciis.A - 10);
    if (ch >= asciis.a && ch <= asciis.f)
      return ch - (asciis.a - 10);
    return;
  }
  function hexToBytes(hex) {
    if (typeof hex !== "string") {
      throw new Error("hex string expected, got " + typeof hex);
    }
    if (hasHexBuiltin)
      return Uint8Array.fromHex(hex);
    const hl = hex.length;
    const al = hl / 2;
    if (hl % 2) {
      throw new Error("hex string expected, got unpadded hex of length " + hl);
    }
    const array = new Uint8Array(al);
    for (let ai = 0, hi = 0; ai < al; ai++, hi += 2) {
      const n1 = asciiToBase16(hex.charCodeAt(hi));
      const n2 = asciiToBase16(hex.charCodeAt(hi + 1));
      if (n1 === void 0 || n2 === void 0) {
        const char = hex[hi] + hex[hi + 1];
        throw new Error('hex string expected, got non-hex character "' + char + '" at index ' + hi);
      }
      array[ai] = n1 * 16 + n2;
    }
    return array;
  }
  function hexToNumber(hex) {
    if (typeof hex !== "string") {
      throw new Error("hex string expected, got " + typeof hex);
    }
    let out = N_0;
    for (let i = 0; i < hex.length; i++) {
      const n = asciiToBase16(hex.charCodeAt(i));
      if (n === void 0) {
        throw new Error('hex string expected, got non-hex character "' + hex[i] + '" at index ' + i);
      }
      out = out << 4n | HEX_TO_BIGINT[n];
    }
    return out;
  }
  function numberToBigint(num) {
    anumber(num, "numberToBigint");
    let n = num;
    let out = N_0;
    let bit = 1n;
    while (n > 0) {
      if (n % 2 === 1)
        out += bit;
      n = Math.floor(n / 2);
      bit <<= 1n;
    }
    return out;
  }
  function bytesToNumberLE(bytes) {
    return hexToNumber(bytesToHex(copyBytes(abytes(bytes)).reverse()));
  }
  function numberToBytesBE(n, len) {
    anumber(len);
    n = abignumer(n);
    const res = hexToBytes(n.toString(16).padStart(len * 2, "0"));
    if (res.length !== len)
      throw new Error("number too large");
    return res;
  }
  function numberToBytesLE(n, len) {
    return numberToBytesBE(n, len).reverse();
  }
  function copyBytes(bytes) {
    return Uint8Array.from(bytes);
  }
  function isPosBig(n) {
    return typeof n === "bigint" && N_0 <= n;
  }
  function inRange(n, min, max) {
    return isPosBig(n) && isPosBig(min) && isPosBig(max) && min <= n && n < max;
  }
  function aInRange(title, n, min, max) {
    if (!inRange(n, min, max)) {
      throw new Error("expected valid " + title + ": " + min + " <= n < " + max + ", got " + n);
    }
  }
  function validateObject(object, fields = {}, optFields = {}) {
    if (!object || typeof object !== "object") {
      throw new Error("expected valid options object");
    }
    function checkField(fieldName, expectedType, isOpt) {
      const val = object[fieldName];
      if (isOpt && val === void 0)
        return;
      const current = typeof val;
      if (current !== expectedType || val === null) {
        throw new Error(`param "${fieldName}" is invalid: expected ${expectedType}, got ${current}`);
      }
    }
    const iter = (f, isOpt) => Object.entries(f).forEach(([k, v]) => checkField(k, v, isOpt));
    iter(fields, false);
    iter(optFields, true);
  }
  async function randomBytesAsync(bytesLength = 32) {
    const api = await loadCrypto();
    const rnd = new Uint8Array(bytesLength);
    api.getRandomValues(rnd);
    return rnd;
  }
  function oidNist(suffix) {
    return {
      oid: Uint8Array.from([
        6,
        9,
        96,
        134,
        72,
        1,
        101,
        3,
        4,
        2,
        suffix
      ])
    };
  }

  // node_modules/@hpke/common/esm/src/hash/hash.js
  function ahash(h) {
    if (typeof h !== "function" || typeof h.create !== "function") {
      throw new Error("Hash must wrapped by utils.createHasher");
    }
    anumber(h.outputLen);
    anumber(h.blockLen);
  }
  function createHasher(hashCons, info = {}) {
    const hashFn = (msg, opts) => hashCons(opts).update(msg).digest();
    const tmp = hashCons(void 0);
    const hashC = Object.assign(hashFn, {
      outputLen: tmp.outputLen,
      blockLen: tmp.blockLen,
      create: (opts) => hashCons(opts),
      ...info
    });
    return Object.freeze(hashC);
  }

  // node_modules/@hpke/common/esm/src/hash/hmac.js
  var _HMAC = class {
    constructor(hash, key) {
      Object.defineProperty(this, "oHash", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "iHash", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "blockLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "outputLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "finished", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: false
      });
      Object.defineProperty(this, "destroyed", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: false
      });
      ahash(hash);
      abytes(key, void 0, "key");
      this.iHash = hash.create();
      if (typeof this.iHash.update !== "function") {
        throw new Error("Expected instance of class which extends utils.Hash");
      }
      this.blockLen = this.iHash.blockLen;
      this.outputLen = this.iHash.outputLen;
      const blockLen = this.blockLen;
      const pad2 = new Uint8Array(blockLen);
      pad2.set(key.length > blockLen ? hash.create().update(key).digest() : key);
      for (let i = 0; i < pad2.length; i++)
        pad2[i] ^= 54;
      this.iHash.update(pad2);
      this.oHash = hash.create();
      for (let i = 0; i < pad2.length; i++)
        pad2[i] ^= 54 ^ 92;
      this.oHash.update(pad2);
      clean(pad2);
    }
    update(buf) {
      aexists(this);
      this.iHash.update(buf);
      return this;
    }
    digestInto(out) {
      aexists(this);
      abytes(out, this.outputLen, "output");
      this.finished = true;
      this.iHash.digestInto(out);
      this.oHash.update(out);
      this.oHash.digestInto(out);
      this.destroy();
    }
    digest() {
      const out = new Uint8Array(this.oHash.outputLen);
      this.digestInto(out);
      return out;
    }
    _cloneInto(to) {
      to || (to = Object.create(Object.getPrototypeOf(this), {}));
      const { oHash, iHash, finished, destroyed, blockLen, outputLen } = this;
      to = to;
      to.finished = finished;
      to.destroyed = destroyed;
      to.blockLen = blockLen;
      to.outputLen = outputLen;
      to.oHash = oHash._cloneInto(to.oHash);
      to.iHash = iHash._cloneInto(to.iHash);
      return to;
    }
    clone() {
      return this._cloneInto();
    }
    destroy() {
      this.destroyed = true;
      this.oHash.destroy();
      this.iHash.destroy();
    }
  };
  var hmac = (hash, key, message) => new _HMAC(hash, key).update(message).digest();
  hmac.create = (hash, key) => new _HMAC(hash, key);

  // node_modules/@hpke/common/esm/src/hash/md.js
  function Chi(a, b, c) {
    return a & b ^ ~a & c;
  }
  function Maj(a, b, c) {
    return a & b ^ a & c ^ b & c;
  }
  var HashMD = class {
    constructor(blockLen, outputLen, padOffset, isLE2) {
      Object.defineProperty(this, "blockLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "outputLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "padOffset", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "isLE", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "buffer", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "view", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "finished", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: false
      });
      Object.defineProperty(this, "length", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "pos", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "destroyed", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: false
      });
      this.blockLen = blockLen;
      this.outputLen = outputLen;
      this.padOffset = padOffset;
      this.isLE = isLE2;
      this.buffer = new Uint8Array(blockLen);
      this.view = createView(this.buffer);
    }
    update(data) {
      aexists(this);
      abytes(data);
      const { view, buffer, blockLen } = this;
      const len = data.length;
      for (let pos = 0; pos < len; ) {
        const take = Math.min(blockLen - this.pos, len - pos);
        if (take === blockLen) {
          const dataView = createView(data);
          for (; blockLen <= len - pos; pos += blockLen) {
            this.process(dataView, pos);
          }
          continue;
        }
        buffer.set(data.subarray(pos, pos + take), this.pos);
        this.pos += take;
        pos += take;
        if (this.pos === blockLen) {
          this.process(view, 0);
          this.pos = 0;
        }
      }
      this.length += data.length;
      this.roundClean();
      return this;
    }
    digestInto(out) {
      aexists(this);
      aoutput(out, this);
      this.finished = true;
      const { buffer, view, blockLen, isLE: isLE2 } = this;
      let { pos } = this;
      buffer[pos++] = 128;
      clean(this.buffer.subarray(pos));
      if (this.padOffset > blockLen - pos) {
        this.process(view, 0);
        pos = 0;
      }
      for (let i = pos; i < blockLen; i++)
        buffer[i] = 0;
      view.setBigUint64(blockLen - 8, numberToBigint(this.length * 8), isLE2);
      this.process(view, 0);
      const oview = createView(out);
      const len = this.outputLen;
      if (len % 4)
        throw new Error("_sha2: outputLen must be aligned to 32bit");
      const outLen = len / 4;
      const state = this.get();
      if (outLen > state.length) {
        throw new Error("_sha2: outputLen bigger than state");
      }
      for (let i = 0; i < outLen; i++)
        oview.setUint32(4 * i, state[i], isLE2);
    }
    digest() {
      const { buffer, outputLen } = this;
      this.digestInto(buffer);
      const res = buffer.slice(0, outputLen);
      this.destroy();
      return res;
    }
    _cloneInto(to) {
      to || (to = new this.constructor());
      to.set(...this.get());
      const { blockLen, buffer, length, finished, destroyed, pos } = this;
      to.destroyed = destroyed;
      to.finished = finished;
      to.length = length;
      to.pos = pos;
      if (length % blockLen)
        to.buffer.set(buffer);
      return to;
    }
    clone() {
      return this._cloneInto();
    }
  };
  var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
    1779033703,
    3144134277,
    1013904242,
    2773480762,
    1359893119,
    2600822924,
    528734635,
    1541459225
  ]);

  // node_modules/@hpke/common/esm/src/hash/u64.js
  var U32_MASK64 = 0xffffffffn;
  var _32n = 32n;
  function fromBig(n, le = false) {
    if (le) {
      return { h: Number(n & U32_MASK64), l: Number(n >> _32n & U32_MASK64) };
    }
    return {
      h: Number(n >> _32n & U32_MASK64) | 0,
      l: Number(n & U32_MASK64) | 0
    };
  }
  function split(lst, le = false) {
    const len = lst.length;
    const Ah = new Uint32Array(len);
    const Al = new Uint32Array(len);
    for (let i = 0; i < len; i++) {
      const { h, l } = fromBig(lst[i], le);
      [Ah[i], Al[i]] = [h, l];
    }
    return [Ah, Al];
  }

  // node_modules/@hpke/common/esm/src/hash/sha2.js
  var SHA256_K = /* @__PURE__ */ Uint32Array.from([
    1116352408,
    1899447441,
    3049323471,
    3921009573,
    961987163,
    1508970993,
    2453635748,
    2870763221,
    3624381080,
    310598401,
    607225278,
    1426881987,
    1925078388,
    2162078206,
    2614888103,
    3248222580,
    3835390401,
    4022224774,
    264347078,
    604807628,
    770255983,
    1249150122,
    1555081692,
    1996064986,
    2554220882,
    2821834349,
    2952996808,
    3210313671,
    3336571891,
    3584528711,
    113926993,
    338241895,
    666307205,
    773529912,
    1294757372,
    1396182291,
    1695183700,
    1986661051,
    2177026350,
    2456956037,
    2730485921,
    2820302411,
    3259730800,
    3345764771,
    3516065817,
    3600352804,
    4094571909,
    275423344,
    430227734,
    506948616,
    659060556,
    883997877,
    958139571,
    1322822218,
    1537002063,
    1747873779,
    1955562222,
    2024104815,
    2227730452,
    2361852424,
    2428436474,
    2756734187,
    3204031479,
    3329325298
  ]);
  var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
  var SHA2_32B = class extends HashMD {
    constructor(outputLen) {
      super(64, outputLen, 8, false);
    }
    get() {
      const { A, B, C, D, E, F, G, H } = this;
      return [A, B, C, D, E, F, G, H];
    }
    set(A, B, C, D, E, F, G, H) {
      this.A = A | 0;
      this.B = B | 0;
      this.C = C | 0;
      this.D = D | 0;
      this.E = E | 0;
      this.F = F | 0;
      this.G = G | 0;
      this.H = H | 0;
    }
    process(view, offset) {
      for (let i = 0; i < 16; i++, offset += 4) {
        SHA256_W[i] = view.getUint32(offset, false);
      }
      for (let i = 16; i < 64; i++) {
        const W15 = SHA256_W[i - 15];
        const W2 = SHA256_W[i - 2];
        const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
        const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
        SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
      }
      let { A, B, C, D, E, F, G, H } = this;
      for (let i = 0; i < 64; i++) {
        const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
        const T1 = H + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
        const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
        const T2 = sigma0 + Maj(A, B, C) | 0;
        H = G;
        G = F;
        F = E;
        E = D + T1 | 0;
        D = C;
        C = B;
        B = A;
        A = T1 + T2 | 0;
      }
      A = A + this.A | 0;
      B = B + this.B | 0;
      C = C + this.C | 0;
      D = D + this.D | 0;
      E = E + this.E | 0;
      F = F + this.F | 0;
      G = G + this.G | 0;
      H = H + this.H | 0;
      this.set(A, B, C, D, E, F, G, H);
    }
    roundClean() {
      clean(SHA256_W);
    }
    destroy() {
      this.set(0, 0, 0, 0, 0, 0, 0, 0);
      clean(this.buffer);
    }
  };
  var _SHA256 = class extends SHA2_32B {
    constructor() {
      super(32);
      Object.defineProperty(this, "A", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[0] | 0
      });
      Object.defineProperty(this, "B", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[1] | 0
      });
      Object.defineProperty(this, "C", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[2] | 0
      });
      Object.defineProperty(this, "D", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[3] | 0
      });
      Object.defineProperty(this, "E", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[4] | 0
      });
      Object.defineProperty(this, "F", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[5] | 0
      });
      Object.defineProperty(this, "G", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[6] | 0
      });
      Object.defineProperty(this, "H", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: SHA256_IV[7] | 0
      });
    }
  };
  var sha256 = /* @__PURE__ */ createHasher(
    () => new _SHA256(),
    /* @__PURE__ */ oidNist(1)
  );

  // node_modules/@hpke/common/esm/src/hash/sha3.js
  var _0n = 0n;
  var _1n = 1n;
  var _2n = 2n;
  var _7n = 7n;
  var _256n = 256n;
  var _0x71n = 0x71n;
  var SHA3_PI = [];
  var SHA3_ROTL = [];
  var _SHA3_IOTA = [];
  for (let round = 0, R = _1n, x = 1, y = 0; round < 24; round++) {
    [x, y] = [y, (2 * x + 3 * y) % 5];
    SHA3_PI.push(2 * (5 * y + x));
    SHA3_ROTL.push((round + 1) * (round + 2) / 2 % 64);
    let t = _0n;
    for (let j = 0; j < 7; j++) {
      R = (R << _1n ^ (R >> _7n) * _0x71n) % _256n;
      if (R & _2n)
        t ^= _1n << (_1n << BigInt(j)) - _1n;
    }
    _SHA3_IOTA.push(t);
  }
  var IOTAS = split(_SHA3_IOTA, true);
  var SHA3_IOTA_H = IOTAS[0];
  var SHA3_IOTA_L = IOTAS[1];

  // node_modules/@hpke/common/esm/src/curve/modular.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  function mod(a, b) {
    const result = a % b;
    return result >= N_0 ? result : b + result;
  }
  function pow2(x, power, modulo) {
    let res = x;
    while (power-- > N_0) {
      res *= res;
      res %= modulo;
    }
    return res;
  }

  // node_modules/@hpke/common/esm/src/curve/curve.js
  function createKeygen(randomSecretKey, getPublicKey) {
    return function keygen(seed) {
      const secretKey = randomSecretKey(seed);
      return { secretKey, publicKey: getPublicKey(secretKey) };
    };
  }

  // node_modules/@hpke/common/esm/src/curve/montgomery.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  function validateOpts(curve) {
    validateObject(curve, {
      adjustScalarBytes: "function",
      powPminus2: "function"
    });
    return Object.freeze({ ...curve });
  }
  function montgomery(curveDef) {
    const CURVE = validateOpts(curveDef);
    const { P, type, adjustScalarBytes: adjustScalarBytes3, powPminus2, randomBytes: rand } = CURVE;
    const is25519 = type === "x25519";
    if (!is25519 && type !== "x448")
      throw new Error("invalid type");
    const randomBytes_ = rand || randomBytesAsync;
    const montgomeryBits = is25519 ? 255n : 448n;
    const fieldLen = is25519 ? 32 : 56;
    const Gu = is25519 ? 9n : 5n;
    const a24 = is25519 ? 121665n : 39081n;
    const minScalar = is25519 ? N_2 ** 254n : N_2 ** 447n;
    const maxAdded = is25519 ? 8n * N_2 ** 251n - N_1 : 4n * N_2 ** 445n - N_1;
    const maxScalar = minScalar + maxAdded + N_1;
    const modP = (n) => mod(n, P);
    const GuBytes = encodeU(Gu);
    function encodeU(u) {
      return numberToBytesLE(modP(u), fieldLen);
    }
    function decodeU(u) {
      const _u = copyBytes(abytes(u, fieldLen, "uCoordinate"));
      if (is25519)
        _u[31] &= 127;
      return modP(bytesToNumberLE(_u));
    }
    function decodeScalar(scalar) {
      return bytesToNumberLE(adjustScalarBytes3(copyBytes(abytes(scalar, fieldLen, "scalar"))));
    }
    function scalarMult(scalar, u) {
      const pu = montgomeryLadder(decodeU(u), decodeScalar(scalar));
      if (pu === N_0)
        throw new Error("invalid private or public key received");
      return encodeU(pu);
    }
    function scalarMultBase(scalar) {
      return scalarMult(scalar, GuBytes);
    }
    const getPublicKey = scalarMultBase;
    const getSharedSecret = scalarMult;
    function cswap(swap, x_2, x_3) {
      const dummy = modP(swap * (x_2 - x_3));
      x_2 = modP(x_2 - dummy);
      x_3 = modP(x_3 + dummy);
      return { x_2, x_3 };
    }
    function montgomeryLadder(u, scalar) {
      aInRange("u", u, N_0, P);
      aInRange("scalar", scalar, minScalar, maxScalar);
      const k = scalar;
      const x_1 = u;
      let x_2 = N_1;
      let z_2 = N_0;
      let x_3 = u;
      let z_3 = N_1;
      let swap = N_0;
      for (let t = montgomeryBits - 1n; t >= N_0; t--) {
        const k_t = k >> t & N_1;
        swap ^= k_t;
        ({ x_2, x_3 } = cswap(swap, x_2, x_3));
        ({ x_2: z_2, x_3: z_3 } = cswap(swap, z_2, z_3));
        swap = k_t;
        const A = x_2 + z_2;
        const AA = modP(A * A);
        const B = x_2 - z_2;
        const BB = modP(B * B);
        const E = AA - BB;
        const C = x_3 + z_3;
        const D = x_3 - z_3;
        const DA = modP(D * A);
        const CB = modP(C * B);
        const dacb = DA + CB;
        const da_cb = DA - CB;
        x_3 = modP(dacb * dacb);
        z_3 = modP(x_1 * modP(da_cb * da_cb));
        x_2 = modP(AA * BB);
        z_2 = modP(E * (AA + modP(a24 * E)));
      }
      ({ x_2, x_3 } = cswap(swap, x_2, x_3));
      ({ x_2: z_2, x_3: z_3 } = cswap(swap, z_2, z_3));
      const z2 = powPminus2(z_2);
      return modP(x_2 * z2);
    }
    const lengths = {
      secretKey: fieldLen,
      publicKey: fieldLen,
      seed: fieldLen
    };
    const randomSecretKey = async (seed) => {
      if (seed === void 0) {
        seed = await randomBytes_(fieldLen);
      }
      abytes(seed, lengths.seed, "seed");
      return seed;
    };
    const utils = { randomSecretKey };
    return Object.freeze({
      keygen: createKeygen(randomSecretKey, getPublicKey),
      getSharedSecret,
      getPublicKey,
      scalarMult,
      scalarMultBase,
      utils,
      GuBytes: GuBytes.slice(),
      lengths
    });
  }

  // node_modules/@hpke/chacha20poly1305/esm/src/chacha/utils.js
  function abool(b) {
    if (typeof b !== "boolean")
      throw new Error(`boolean expected, not ${b}`);
  }
  var wrapCipher = /* @__NO_SIDE_EFFECTS__ */ (params, constructor) => {
    function wrappedCipher(key, ...args) {
      abytes(key, void 0, "key");
      if (!isLE) {
        throw new Error("Non little-endian hardware is not yet supported");
      }
      if (params.nonceLength !== void 0) {
        const nonce2 = args[0];
        abytes(nonce2, params.varSizeNonce ? void 0 : params.nonceLength, "nonce");
      }
      const tagl = params.tagLength;
      if (tagl && args[1] !== void 0)
        abytes(args[1], void 0, "AAD");
      const cipher = constructor(key, ...args);
      const checkOutput = (fnLength, output) => {
        if (output !== void 0) {
          if (fnLength !== 2)
            throw new Error("cipher output not supported");
          abytes(output, void 0, "output");
        }
      };
      let called = false;
      const wrCipher = {
        encrypt(data, output) {
          if (called) {
            throw new Error("cannot encrypt() twice with same key + nonce");
          }
          called = true;
          abytes(data);
          checkOutput(cipher.encrypt.length, output);
          return cipher.encrypt(data, output);
        },
        decrypt(data, output) {
          abytes(data);
          if (tagl && data.length < tagl) {
            throw new Error('"ciphertext" expected length bigger than tagLength=' + tagl);
          }
          checkOutput(cipher.decrypt.length, output);
          return cipher.decrypt(data, output);
        }
      };
      return wrCipher;
    }
    Object.assign(wrappedCipher, params);
    return wrappedCipher;
  };
  function checkOpts(defaults, opts) {
    if (opts == null || typeof opts !== "object") {
      throw new Error("options must be defined");
    }
    const merged = Object.assign(defaults, opts);
    return merged;
  }
  function equalBytes(a, b) {
    if (a.length !== b.length)
      return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++)
      diff |= a[i] ^ b[i];
    return diff === 0;
  }
  function getOutput(expectedLength, out, onlyAligned = true) {
    if (out === void 0)
      return new Uint8Array(expectedLength);
    if (out.length !== expectedLength) {
      throw new Error('"output" expected Uint8Array of length ' + expectedLength + ", got: " + out.length);
    }
    if (onlyAligned && !isAligned32(out)) {
      throw new Error("invalid output, must be aligned");
    }
    return out;
  }
  function u64Lengths(dataLength, aadLength, isLE2) {
    abool(isLE2);
    const num = new Uint8Array(16);
    const view = createView(num);
    view.setBigUint64(0, numberToBigint(aadLength), isLE2);
    view.setBigUint64(8, numberToBigint(dataLength), isLE2);
    return num;
  }
  function isAligned32(bytes) {
    return bytes.byteOffset % 4 === 0;
  }

  // node_modules/@hpke/chacha20poly1305/esm/src/chacha/_arx.js
  var _utf8ToBytes = (str) => Uint8Array.from(str.split("").map((c) => c.charCodeAt(0)));
  var sigma16 = _utf8ToBytes("expand 16-byte k");
  var sigma32 = _utf8ToBytes("expand 32-byte k");
  var sigma16_32 = u32(sigma16);
  var sigma32_32 = u32(sigma32);
  function rotl(a, b) {
    return a << b | a >>> 32 - b;
  }
  function isAligned322(b) {
    return b.byteOffset % 4 === 0;
  }
  var BLOCK_LEN = 64;
  var BLOCK_LEN32 = 16;
  var MAX_COUNTER = 2 ** 32 - 1;
  var U32_EMPTY = Uint32Array.of();
  function runCipher(core, sigma, key, nonce2, data, output, counter, rounds) {
    const len = data.length;
    const block = new Uint8Array(BLOCK_LEN);
    const b32 = u32(block);
    const isAligned = isAligned322(data) && isAligned322(output);
    const d32 = isAligned ? u32(data) : U32_EMPTY;
    const o32 = isAligned ? u32(output) : U32_EMPTY;
    for (let pos = 0; pos < len; counter++) {
      core(sigma, key, nonce2, b32, counter, rounds);
      if (counter >= MAX_COUNTER)
        throw new Error("arx: counter overflow");
      const take = Math.min(BLOCK_LEN, len - pos);
      if (isAligned && take === BLOCK_LEN) {
        const pos32 = pos / 4;
        if (pos % 4 !== 0)
          throw new Error("arx: invalid block position");
        for (let j = 0, posj; j < BLOCK_LEN32; j++) {
          posj = pos32 + j;
          o32[posj] = d32[posj] ^ b32[j];
        }
        pos += BLOCK_LEN;
        continue;
      }
      for (let j = 0, posj; j < take; j++) {
        posj = pos + j;
        output[posj] = data[posj] ^ block[j];
      }
      pos += take;
    }
  }
  function createCipher(core, opts) {
    const { allowShortKeys, extendNonceFn, counterLength, counterRight, rounds } = checkOpts({
      allowShortKeys: false,
      counterLength: 8,
      counterRight: false,
      rounds: 20
    }, opts);
    if (typeof core !== "function")
      throw new Error("core must be a function");
    anumber(counterLength);
    anumber(rounds);
    abool(counterRight);
    abool(allowShortKeys);
    return (key, nonce2, data, output, counter = 0) => {
      abytes(key, void 0, "key");
      abytes(nonce2, void 0, "nonce");
      abytes(data, void 0, "data");
      const len = data.length;
      if (output === void 0)
        output = new Uint8Array(len);
      abytes(output, void 0, "output");
      anumber(counter);
      if (counter < 0 || counter >= MAX_COUNTER) {
        throw new Error("arx: counter overflow");
      }
      if (output.length < len) {
        throw new Error(`arx: output (${output.length}) is shorter than data (${len})`);
      }
      const toClean = [];
      const l = key.length;
      let k;
      let sigma;
      if (l === 32) {
        toClean.push(k = copyBytes(key));
        sigma = sigma32_32;
      } else if (l === 16 && allowShortKeys) {
        k = new Uint8Array(32);
        k.set(key);
        k.set(key, 16);
        sigma = sigma16_32;
        toClean.push(k);
      } else {
        abytes(key, 32, "arx key");
        throw new Error("invalid key size");
      }
      if (!isAligned322(nonce2))
        toClean.push(nonce2 = copyBytes(nonce2));
      const k32 = u32(k);
      if (extendNonceFn) {
        if (nonce2.length !== 24) {
          throw new Error(`arx: extended nonce must be 24 bytes`);
        }
        extendNonceFn(sigma, k32, u32(nonce2.subarray(0, 16)), k32);
        nonce2 = nonce2.subarray(16);
      }
      const nonceNcLen = 16 - counterLength;
      if (nonceNcLen !== nonce2.length) {
        throw new Error(`arx: nonce must be ${nonceNcLen} or 16 bytes`);
      }
      if (nonceNcLen !== 12) {
        const nc = new Uint8Array(12);
        nc.set(nonce2, counterRight ? 0 : 12 - nonce2.length);
        nonce2 = nc;
        toClean.push(nonce2);
      }
      const n32 = u32(nonce2);
      runCipher(core, sigma, k32, n32, data, output, counter, rounds);
      clean(...toClean);
      return output;
    };
  }

  // node_modules/@hpke/chacha20poly1305/esm/src/chacha/_poly1305.js
  function u8to16(a, i) {
    return a[i++] & 255 | (a[i++] & 255) << 8;
  }
  var Poly1305 = class {
    // Can be speed-up using BigUint64Array, at the cost of complexity
    constructor(key) {
      Object.defineProperty(this, "blockLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 16
      });
      Object.defineProperty(this, "outputLen", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 16
      });
      Object.defineProperty(this, "buffer", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: new Uint8Array(16)
      });
      Object.defineProperty(this, "r", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: new Uint16Array(10)
      });
      Object.defineProperty(this, "h", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: new Uint16Array(10)
      });
      Object.defineProperty(this, "pad", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: new Uint16Array(8)
      });
      Object.defineProperty(this, "pos", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 0
      });
      Object.defineProperty(this, "finished", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: false
      });
      key = copyBytes(abytes(key, 32, "key"));
      const t0 = u8to16(key, 0);
      const t1 = u8to16(key, 2);
      const t2 = u8to16(key, 4);
      const t3 = u8to16(key, 6);
      const t4 = u8to16(key, 8);
      const t5 = u8to16(key, 10);
      const t6 = u8to16(key, 12);
      const t7 = u8to16(key, 14);
      this.r[0] = t0 & 8191;
      this.r[1] = (t0 >>> 13 | t1 << 3) & 8191;
      this.r[2] = (t1 >>> 10 | t2 << 6) & 7939;
      this.r[3] = (t2 >>> 7 | t3 << 9) & 8191;
      this.r[4] = (t3 >>> 4 | t4 << 12) & 255;
      this.r[5] = t4 >>> 1 & 8190;
      this.r[6] = (t4 >>> 14 | t5 << 2) & 8191;
      this.r[7] = (t5 >>> 11 | t6 << 5) & 8065;
      this.r[8] = (t6 >>> 8 | t7 << 8) & 8191;
      this.r[9] = t7 >>> 5 & 127;
      for (let i = 0; i < 8; i++)
        this.pad[i] = u8to16(key, 16 + 2 * i);
    }
    process(data, offset, isLast = false) {
      const hibit = isLast ? 0 : 1 << 11;
      const { h, r } = this;
      const r0 = r[0];
      const r1 = r[1];
      const r2 = r[2];
      const r3 = r[3];
      const r4 = r[4];
      const r5 = r[5];
      const r6 = r[6];
      const r7 = r[7];
      const r8 = r[8];
      const r9 = r[9];
      const t0 = u8to16(data, offset + 0);
      const t1 = u8to16(data, offset + 2);
      const t2 = u8to16(data, offset + 4);
      const t3 = u8to16(data, offset + 6);
      const t4 = u8to16(data, offset + 8);
      const t5 = u8to16(data, offset + 10);
      const t6 = u8to16(data, offset + 12);
      const t7 = u8to16(data, offset + 14);
      const h0 = h[0] + (t0 & 8191);
      const h1 = h[1] + ((t0 >>> 13 | t1 << 3) & 8191);
      const h2 = h[2] + ((t1 >>> 10 | t2 << 6) & 8191);
      const h3 = h[3] + ((t2 >>> 7 | t3 << 9) & 8191);
      const h4 = h[4] + ((t3 >>> 4 | t4 << 12) & 8191);
      const h5 = h[5] + (t4 >>> 1 & 8191);
      const h6 = h[6] + ((t4 >>> 14 | t5 << 2) & 8191);
      const h7 = h[7] + ((t5 >>> 11 | t6 << 5) & 8191);
      const h8 = h[8] + ((t6 >>> 8 | t7 << 8) & 8191);
      const h9 = h[9] + (t7 >>> 5 | hibit);
      let c = 0;
      let d0 = c + h0 * r0 + h1 * (5 * r9) + h2 * (5 * r8) + h3 * (5 * r7) + h4 * (5 * r6);
      c = d0 >>> 13;
      d0 &= 8191;
      d0 += h5 * (5 * r5) + h6 * (5 * r4) + h7 * (5 * r3) + h8 * (5 * r2) + h9 * (5 * r1);
      c += d0 >>> 13;
      d0 &= 8191;
      let d1 = c + h0 * r1 + h1 * r0 + h2 * (5 * r9) + h3 * (5 * r8) + h4 * (5 * r7);
      c = d1 >>> 13;
      d1 &= 8191;
      d1 += h5 * (5 * r6) + h6 * (5 * r5) + h7 * (5 * r4) + h8 * (5 * r3) + h9 * (5 * r2);
      c += d1 >>> 13;
      d1 &= 8191;
      let d2 = c + h0 * r2 + h1 * r1 + h2 * r0 + h3 * (5 * r9) + h4 * (5 * r8);
      c = d2 >>> 13;
      d2 &= 8191;
      d2 += h5 * (5 * r7) + h6 * (5 * r6) + h7 * (5 * r5) + h8 * (5 * r4) + h9 * (5 * r3);
      c += d2 >>> 13;
      d2 &= 8191;
      let d3 = c + h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * (5 * r9);
      c = d3 >>> 13;
      d3 &= 8191;
      d3 += h5 * (5 * r8) + h6 * (5 * r7) + h7 * (5 * r6) + h8 * (5 * r5) + h9 * (5 * r4);
      c += d3 >>> 13;
      d3 &= 8191;
      let d4 = c + h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
      c = d4 >>> 13;
      d4 &= 8191;
      d4 += h5 * (5 * r9) + h6 * (5 * r8) + h7 * (5 * r7) + h8 * (5 * r6) + h9 * (5 * r5);
      c += d4 >>> 13;
      d4 &= 8191;
      let d5 = c + h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1;
      c = d5 >>> 13;
      d5 &= 8191;
      d5 += h5 * r0 + h6 * (5 * r9) + h7 * (5 * r8) + h8 * (5 * r7) + h9 * (5 * r6);
      c += d5 >>> 13;
      d5 &= 8191;
      let d6 = c + h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2;
      c = d6 >>> 13;
      d6 &= 8191;
      d6 += h5 * r1 + h6 * r0 + h7 * (5 * r9) + h8 * (5 * r8) + h9 * (5 * r7);
      c += d6 >>> 13;
      d6 &= 8191;
      let d7 = c + h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3;
      c = d7 >>> 13;
      d7 &= 8191;
      d7 += h5 * r2 + h6 * r1 + h7 * r0 + h8 * (5 * r9) + h9 * (5 * r8);
      c += d7 >>> 13;
      d7 &= 8191;
      let d8 = c + h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4;
      c = d8 >>> 13;
      d8 &= 8191;
      d8 += h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * (5 * r9);
      c += d8 >>> 13;
      d8 &= 8191;
      let d9 = c + h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5;
      c = d9 >>> 13;
      d9 &= 8191;
      d9 += h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
      c += d9 >>> 13;
      d9 &= 8191;
      c = (c << 2) + c | 0;
      c = c + d0 | 0;
      d0 = c & 8191;
      c = c >>> 13;
      d1 += c;
      h[0] = d0;
      h[1] = d1;
      h[2] = d2;
      h[3] = d3;
      h[4] = d4;
      h[5] = d5;
      h[6] = d6;
      h[7] = d7;
      h[8] = d8;
      h[9] = d9;
    }
    finalize() {
      const { h, pad: pad2 } = this;
      const g = new Uint16Array(10);
      let c = h[1] >>> 13;
      h[1] &= 8191;
      for (let i = 2; i < 10; i++) {
        h[i] += c;
        c = h[i] >>> 13;
        h[i] &= 8191;
      }
      h[0] += c * 5;
      c = h[0] >>> 13;
      h[0] &= 8191;
      h[1] += c;
      c = h[1] >>> 13;
      h[1] &= 8191;
      h[2] += c;
      g[0] = h[0] + 5;
      c = g[0] >>> 13;
      g[0] &= 8191;
      for (let i = 1; i < 10; i++) {
        g[i] = h[i] + c;
        c = g[i] >>> 13;
        g[i] &= 8191;
      }
      g[9] -= 1 << 13;
      let mask = (c ^ 1) - 1;
      for (let i = 0; i < 10; i++)
        g[i] &= mask;
      mask = ~mask;
      for (let i = 0; i < 10; i++)
        h[i] = h[i] & mask | g[i];
      h[0] = (h[0] | h[1] << 13) & 65535;
      h[1] = (h[1] >>> 3 | h[2] << 10) & 65535;
      h[2] = (h[2] >>> 6 | h[3] << 7) & 65535;
      h[3] = (h[3] >>> 9 | h[4] << 4) & 65535;
      h[4] = (h[4] >>> 12 | h[5] << 1 | h[6] << 14) & 65535;
      h[5] = (h[6] >>> 2 | h[7] << 11) & 65535;
      h[6] = (h[7] >>> 5 | h[8] << 8) & 65535;
      h[7] = (h[8] >>> 8 | h[9] << 5) & 65535;
      let f = h[0] + pad2[0];
      h[0] = f & 65535;
      for (let i = 1; i < 8; i++) {
        f = (h[i] + pad2[i] | 0) + (f >>> 16) | 0;
        h[i] = f & 65535;
      }
      clean(g);
    }
    update(data) {
      aexists(this);
      abytes(data);
      data = copyBytes(data);
      const { buffer, blockLen } = this;
      const len = data.length;
      for (let pos = 0; pos < len; ) {
        const take = Math.min(blockLen - this.pos, len - pos);
        if (take === blockLen) {
          for (; blockLen <= len - pos; pos += blockLen)
            this.process(data, pos);
          continue;
        }
        buffer.set(data.subarray(pos, pos + take), this.pos);
        this.pos += take;
        pos += take;
        if (this.pos === blockLen) {
          this.process(buffer, 0, false);
          this.pos = 0;
        }
      }
      return this;
    }
    destroy() {
      clean(this.h, this.r, this.buffer, this.pad);
    }
    digestInto(out) {
      aexists(this);
      aoutput(out, this);
      this.finished = true;
      const { buffer, h } = this;
      let { pos } = this;
      if (pos) {
        buffer[pos++] = 1;
        for (; pos < 16; pos++)
          buffer[pos] = 0;
        this.process(buffer, 0, true);
      }
      this.finalize();
      let opos = 0;
      for (let i = 0; i < 8; i++) {
        out[opos++] = h[i] >>> 0;
        out[opos++] = h[i] >>> 8;
      }
      return out;
    }
    digest() {
      const { buffer, outputLen } = this;
      this.digestInto(buffer);
      const res = buffer.slice(0, outputLen);
      this.destroy();
      return res;
    }
  };
  function wrapConstructorWithKey(hashCons) {
    const hashC = (msg, key) => hashCons(key).update(msg).digest();
    const tmp = hashCons(new Uint8Array(32));
    hashC.outputLen = tmp.outputLen;
    hashC.blockLen = tmp.blockLen;
    hashC.create = (key) => hashCons(key);
    return hashC;
  }
  var poly1305 = /* @__PURE__ */ (() => wrapConstructorWithKey((key) => new Poly1305(key)))();

  // node_modules/@hpke/chacha20poly1305/esm/src/chacha/chacha.js
  function chachaCore(s, k, n, out, cnt, rounds = 20) {
    const y00 = s[0], y01 = s[1], y02 = s[2], y03 = s[3], y04 = k[0], y05 = k[1], y06 = k[2], y07 = k[3], y08 = k[4], y09 = k[5], y10 = k[6], y11 = k[7], y12 = cnt, y13 = n[0], y14 = n[1], y15 = n[2];
    let x00 = y00, x01 = y01, x02 = y02, x03 = y03, x04 = y04, x05 = y05, x06 = y06, x07 = y07, x08 = y08, x09 = y09, x10 = y10, x11 = y11, x12 = y12, x13 = y13, x14 = y14, x15 = y15;
    for (let r = 0; r < rounds; r += 2) {
      x00 = x00 + x04 | 0;
      x12 = rotl(x12 ^ x00, 16);
      x08 = x08 + x12 | 0;
      x04 = rotl(x04 ^ x08, 12);
      x00 = x00 + x04 | 0;
      x12 = rotl(x12 ^ x00, 8);
      x08 = x08 + x12 | 0;
      x04 = rotl(x04 ^ x08, 7);
      x01 = x01 + x05 | 0;
      x13 = rotl(x13 ^ x01, 16);
      x09 = x09 + x13 | 0;
      x05 = rotl(x05 ^ x09, 12);
      x01 = x01 + x05 | 0;
      x13 = rotl(x13 ^ x01, 8);
      x09 = x09 + x13 | 0;
      x05 = rotl(x05 ^ x09, 7);
      x02 = x02 + x06 | 0;
      x14 = rotl(x14 ^ x02, 16);
      x10 = x10 + x14 | 0;
      x06 = rotl(x06 ^ x10, 12);
      x02 = x02 + x06 | 0;
      x14 = rotl(x14 ^ x02, 8);
      x10 = x10 + x14 | 0;
      x06 = rotl(x06 ^ x10, 7);
      x03 = x03 + x07 | 0;
      x15 = rotl(x15 ^ x03, 16);
      x11 = x11 + x15 | 0;
      x07 = rotl(x07 ^ x11, 12);
      x03 = x03 + x07 | 0;
      x15 = rotl(x15 ^ x03, 8);
      x11 = x11 + x15 | 0;
      x07 = rotl(x07 ^ x11, 7);
      x00 = x00 + x05 | 0;
      x15 = rotl(x15 ^ x00, 16);
      x10 = x10 + x15 | 0;
      x05 = rotl(x05 ^ x10, 12);
      x00 = x00 + x05 | 0;
      x15 = rotl(x15 ^ x00, 8);
      x10 = x10 + x15 | 0;
      x05 = rotl(x05 ^ x10, 7);
      x01 = x01 + x06 | 0;
      x12 = rotl(x12 ^ x01, 16);
      x11 = x11 + x12 | 0;
      x06 = rotl(x06 ^ x11, 12);
      x01 = x01 + x06 | 0;
      x12 = rotl(x12 ^ x01, 8);
      x11 = x11 + x12 | 0;
      x06 = rotl(x06 ^ x11, 7);
      x02 = x02 + x07 | 0;
      x13 = rotl(x13 ^ x02, 16);
      x08 = x08 + x13 | 0;
      x07 = rotl(x07 ^ x08, 12);
      x02 = x02 + x07 | 0;
      x13 = rotl(x13 ^ x02, 8);
      x08 = x08 + x13 | 0;
      x07 = rotl(x07 ^ x08, 7);
      x03 = x03 + x04 | 0;
      x14 = rotl(x14 ^ x03, 16);
      x09 = x09 + x14 | 0;
      x04 = rotl(x04 ^ x09, 12);
      x03 = x03 + x04 | 0;
      x14 = rotl(x14 ^ x03, 8);
      x09 = x09 + x14 | 0;
      x04 = rotl(x04 ^ x09, 7);
    }
    let oi = 0;
    out[oi++] = y00 + x00 | 0;
    out[oi++] = y01 + x01 | 0;
    out[oi++] = y02 + x02 | 0;
    out[oi++] = y03 + x03 | 0;
    out[oi++] = y04 + x04 | 0;
    out[oi++] = y05 + x05 | 0;
    out[oi++] = y06 + x06 | 0;
    out[oi++] = y07 + x07 | 0;
    out[oi++] = y08 + x08 | 0;
    out[oi++] = y09 + x09 | 0;
    out[oi++] = y10 + x10 | 0;
    out[oi++] = y11 + x11 | 0;
    out[oi++] = y12 + x12 | 0;
    out[oi++] = y13 + x13 | 0;
    out[oi++] = y14 + x14 | 0;
    out[oi++] = y15 + x15 | 0;
  }
  var chacha20 = /* @__PURE__ */ createCipher(chachaCore, {
    counterRight: false,
    counterLength: 4,
    allowShortKeys: false
  });
  var ZEROS16 = /* @__PURE__ */ new Uint8Array(16);
  var updatePadded = (h, msg) => {
    h.update(msg);
    const leftover = msg.length % 16;
    if (leftover)
      h.update(ZEROS16.subarray(leftover));
  };
  var ZEROS32 = /* @__PURE__ */ new Uint8Array(32);
  function computeTag(fn, key, nonce2, ciphertext, AAD2) {
    if (AAD2 !== void 0)
      abytes(AAD2, void 0, "AAD");
    const authKey = fn(key, nonce2, ZEROS32);
    const lengths = u64Lengths(ciphertext.length, AAD2 ? AAD2.length : 0, true);
    const h = poly1305.create(authKey);
    if (AAD2)
      updatePadded(h, AAD2);
    updatePadded(h, ciphertext);
    h.update(lengths);
    const res = h.digest();
    clean(authKey, lengths);
    return res;
  }
  var _poly1305_aead = (xorStream) => (key, nonce2, AAD2) => {
    const tagLength = 16;
    return {
      encrypt(plaintext, output) {
        const plength = plaintext.length;
        output = getOutput(plength + tagLength, output, false);
        output.set(plaintext);
        const oPlain = output.subarray(0, -tagLength);
        xorStream(key, nonce2, oPlain, oPlain, 1);
        const tag = computeTag(xorStream, key, nonce2, oPlain, AAD2);
        output.set(tag, plength);
        clean(tag);
        return output;
      },
      decrypt(ciphertext, output) {
        output = getOutput(ciphertext.length - tagLength, output, false);
        const data = ciphertext.subarray(0, -tagLength);
        const passedTag = ciphertext.subarray(-tagLength);
        const tag = computeTag(xorStream, key, nonce2, data, AAD2);
        if (!equalBytes(passedTag, tag))
          throw new Error("invalid tag");
        output.set(ciphertext.subarray(0, -tagLength));
        xorStream(key, nonce2, output, output, 1);
        clean(tag);
        return output;
      }
    };
  };
  var chacha20poly1305 = /* @__PURE__ */ wrapCipher({ blockSize: 64, nonceLength: 12, tagLength: 16 }, _poly1305_aead(chacha20));

  // node_modules/@hpke/chacha20poly1305/esm/src/chacha20Poly1305.js
  var Chacha20Poly1305Context = class {
    constructor(key) {
      Object.defineProperty(this, "_key", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this._key = new Uint8Array(toArrayBuffer(key));
    }
    async seal(iv, data, aad) {
      return await this._seal(toArrayBuffer(iv), toArrayBuffer(data), toArrayBuffer(aad));
    }
    async open(iv, data, aad) {
      return await this._open(toArrayBuffer(iv), toArrayBuffer(data), toArrayBuffer(aad));
    }
    _seal(iv, data, aad) {
      return new Promise((resolve) => {
        const ret = chacha20poly1305(this._key, new Uint8Array(iv), new Uint8Array(aad)).encrypt(new Uint8Array(data));
        resolve(ret.buffer);
      });
    }
    _open(iv, data, aad) {
      return new Promise((resolve) => {
        const ret = chacha20poly1305(this._key, new Uint8Array(iv), new Uint8Array(aad)).decrypt(new Uint8Array(data));
        resolve(ret.buffer);
      });
    }
  };
  var Chacha20Poly1305 = class {
    constructor() {
      Object.defineProperty(this, "id", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: AeadId.Chacha20Poly1305
      });
      Object.defineProperty(this, "keySize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
      Object.defineProperty(this, "nonceSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 12
      });
      Object.defineProperty(this, "tagSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 16
      });
    }
    createEncryptionContext(key) {
      return new Chacha20Poly1305Context(key);
    }
  };

  // node_modules/@hpke/core/esm/src/utils/emitNotSupported.js
  function emitNotSupported() {
    return new Promise((_resolve, reject) => {
      reject(new NotSupportedError("Not supported"));
    });
  }

  // node_modules/@hpke/core/esm/src/exporterContext.js
  var LABEL_SEC = new Uint8Array([115, 101, 99]);
  var ExporterContextImpl = class {
    constructor(api, kdf, exporterSecret) {
      Object.defineProperty(this, "_api", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "exporterSecret", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_kdf", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this._api = api;
      this._kdf = kdf;
      this.exporterSecret = exporterSecret;
    }
    async seal(_data, _aad) {
      return await emitNotSupported();
    }
    async open(_data, _aad) {
      return await emitNotSupported();
    }
    async export(exporterContext, len) {
      const rawExporterContext = toArrayBuffer(exporterContext);
      if (rawExporterContext.byteLength > INPUT_LENGTH_LIMIT) {
        throw new InvalidParamError("Too long exporter context");
      }
      try {
        return await this._kdf.labeledExpand(this.exporterSecret, LABEL_SEC, new Uint8Array(rawExporterContext), len);
      } catch (e) {
        throw new ExportError(e);
      }
    }
  };
  var RecipientExporterContextImpl = class extends ExporterContextImpl {
  };
  var SenderExporterContextImpl = class extends ExporterContextImpl {
    constructor(api, kdf, exporterSecret, enc) {
      super(api, kdf, exporterSecret);
      Object.defineProperty(this, "enc", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      this.enc = enc;
      return;
    }
  };

  // node_modules/@hpke/core/esm/src/encryptionContext.js
  var EncryptionContextImpl = class extends ExporterContextImpl {
    constructor(api, kdf, params) {
      super(api, kdf, params.exporterSecret);
      Object.defineProperty(this, "_aead", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_nK", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_nN", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_nT", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_ctx", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      if (params.key === void 0 || params.baseNonce === void 0 || params.seq === void 0) {
        throw new Error("Required parameters are missing");
      }
      this._aead = params.aead;
      this._nK = this._aead.keySize;
      this._nN = this._aead.nonceSize;
      this._nT = this._aead.tagSize;
      const key = this._aead.createEncryptionContext(params.key);
      this._ctx = {
        key,
        baseNonce: params.baseNonce,
        seq: params.seq
      };
    }
    computeNonce(k) {
      const seqBytes = i2Osp(k.seq, k.baseNonce.byteLength);
      return xor(k.baseNonce, seqBytes).buffer;
    }
    incrementSeq(k) {
      if (k.seq > Number.MAX_SAFE_INTEGER) {
        throw new MessageLimitReachedError("Message limit reached");
      }
      k.seq += 1;
      return;
    }
  };

  // node_modules/@hpke/core/esm/src/mutex.js
  var __classPrivateFieldGet = function(receiver, state, kind, f) {
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
    return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
  };
  var __classPrivateFieldSet = function(receiver, state, value, kind, f) {
    if (kind === "m") throw new TypeError("Private method is not writable");
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
    return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
  };
  var _Mutex_locked;
  var Mutex = class {
    constructor() {
      _Mutex_locked.set(this, Promise.resolve());
    }
    async lock() {
      let releaseLock;
      const nextLock = new Promise((resolve) => {
        releaseLock = resolve;
      });
      const previousLock = __classPrivateFieldGet(this, _Mutex_locked, "f");
      __classPrivateFieldSet(this, _Mutex_locked, nextLock, "f");
      await previousLock;
      return releaseLock;
    }
  };
  _Mutex_locked = /* @__PURE__ */ new WeakMap();

  // node_modules/@hpke/core/esm/src/recipientContext.js
  var __classPrivateFieldGet2 = function(receiver, state, kind, f) {
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
    return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
  };
  var __classPrivateFieldSet2 = function(receiver, state, value, kind, f) {
    if (kind === "m") throw new TypeError("Private method is not writable");
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
    return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
  };
  var _RecipientContextImpl_mutex;
  var RecipientContextImpl = class extends EncryptionContextImpl {
    constructor() {
      super(...arguments);
      _RecipientContextImpl_mutex.set(this, void 0);
    }
    async open(data, aad = EMPTY.buffer) {
      __classPrivateFieldSet2(this, _RecipientContextImpl_mutex, __classPrivateFieldGet2(this, _RecipientContextImpl_mutex, "f") ?? new Mutex(), "f");
      const release = await __classPrivateFieldGet2(this, _RecipientContextImpl_mutex, "f").lock();
      let pt;
      try {
        pt = await this._ctx.key.open(this.computeNonce(this._ctx), toArrayBuffer(data), toArrayBuffer(aad));
      } catch (e) {
        throw new OpenError(e);
      } finally {
        release();
      }
      this.incrementSeq(this._ctx);
      return pt;
    }
  };
  _RecipientContextImpl_mutex = /* @__PURE__ */ new WeakMap();

  // node_modules/@hpke/core/esm/src/senderContext.js
  var __classPrivateFieldGet3 = function(receiver, state, kind, f) {
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
    return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
  };
  var __classPrivateFieldSet3 = function(receiver, state, value, kind, f) {
    if (kind === "m") throw new TypeError("Private method is not writable");
    if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
    if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
    return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
  };
  var _SenderContextImpl_mutex;
  var SenderContextImpl = class extends EncryptionContextImpl {
    constructor(api, kdf, params, enc) {
      super(api, kdf, params);
      Object.defineProperty(this, "enc", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      _SenderContextImpl_mutex.set(this, void 0);
      this.enc = enc;
    }
    async seal(data, aad = EMPTY.buffer) {
      __classPrivateFieldSet3(this, _SenderContextImpl_mutex, __classPrivateFieldGet3(this, _SenderContextImpl_mutex, "f") ?? new Mutex(), "f");
      const release = await __classPrivateFieldGet3(this, _SenderContextImpl_mutex, "f").lock();
      let ct;
      try {
        ct = await this._ctx.key.seal(this.computeNonce(this._ctx), toArrayBuffer(data), toArrayBuffer(aad));
      } catch (e) {
        throw new SealError(e);
      } finally {
        release();
      }
      this.incrementSeq(this._ctx);
      return ct;
    }
  };
  _SenderContextImpl_mutex = /* @__PURE__ */ new WeakMap();

  // node_modules/@hpke/core/esm/src/cipherSuiteNative.js
  var LABEL_BASE_NONCE = new Uint8Array([
    98,
    97,
    115,
    101,
    95,
    110,
    111,
    110,
    99,
    101
  ]);
  var LABEL_EXP = new Uint8Array([101, 120, 112]);
  var LABEL_INFO_HASH = new Uint8Array([
    105,
    110,
    102,
    111,
    95,
    104,
    97,
    115,
    104
  ]);
  var LABEL_KEY = new Uint8Array([107, 101, 121]);
  var LABEL_PSK_ID_HASH = new Uint8Array([
    112,
    115,
    107,
    95,
    105,
    100,
    95,
    104,
    97,
    115,
    104
  ]);
  var LABEL_SECRET = new Uint8Array([115, 101, 99, 114, 101, 116]);
  var SUITE_ID_HEADER_HPKE = new Uint8Array([
    72,
    80,
    75,
    69,
    0,
    0,
    0,
    0,
    0,
    0
  ]);
  var CipherSuiteNative = class extends NativeAlgorithm {
    /**
     * @param params A set of parameters for building a cipher suite.
     *
     * If the error occurred, throws {@link InvalidParamError}.
     *
     * @throws {@link InvalidParamError}
     */
    constructor(params) {
      super();
      Object.defineProperty(this, "_kem", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_kdf", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_aead", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      Object.defineProperty(this, "_suiteId", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: void 0
      });
      if (typeof params.kem === "number") {
        throw new InvalidParamError("KemId cannot be used");
      }
      this._kem = params.kem;
      if (typeof params.kdf === "number") {
        throw new InvalidParamError("KdfId cannot be used");
      }
      this._kdf = params.kdf;
      if (typeof params.aead === "number") {
        throw new InvalidParamError("AeadId cannot be used");
      }
      this._aead = params.aead;
      this._suiteId = new Uint8Array(SUITE_ID_HEADER_HPKE);
      this._suiteId.set(i2Osp(this._kem.id, 2), 4);
      this._suiteId.set(i2Osp(this._kdf.id, 2), 6);
      this._suiteId.set(i2Osp(this._aead.id, 2), 8);
      this._kdf.init(this._suiteId);
    }
    /**
     * Gets the KEM context of the ciphersuite.
     */
    get kem() {
      return this._kem;
    }
    /**
     * Gets the KDF context of the ciphersuite.
     */
    get kdf() {
      return this._kdf;
    }
    /**
     * Gets the AEAD context of the ciphersuite.
     */
    get aead() {
      return this._aead;
    }
    /**
     * Creates an encryption context for a sender.
     *
     * If the error occurred, throws {@link DecapError} | {@link ValidationError}.
     *
     * @param params A set of parameters for the sender encryption context.
     * @returns A sender encryption context.
     * @throws {@link EncapError}, {@link ValidationError}
     */
    async createSenderContext(params) {
      this._validateInputLength(params);
      await this._setup();
      const dh = await this._kem.encap(params);
      let mode;
      if (params.psk !== void 0) {
        mode = params.senderKey !== void 0 ? Mode.AuthPsk : Mode.Psk;
      } else {
        mode = params.senderKey !== void 0 ? Mode.Auth : Mode.Base;
      }
      return await this._keyScheduleS(mode, dh.sharedSecret, dh.enc, params);
    }
    /**
     * Creates an encryption context for a recipient.
     *
     * If the error occurred, throws {@link DecapError}
     * | {@link DeserializeError} | {@link ValidationError}.
     *
     * @param params A set of parameters for the recipient encryption context.
     * @returns A recipient encryption context.
     * @throws {@link DecapError}, {@link DeserializeError}, {@link ValidationError}
     */
    async createRecipientContext(params) {
      this._validateInputLength(params);
      await this._setup();
      const sharedSecret = await this._kem.decap(params);
      let mode;
      if (params.psk !== void 0) {
        mode = params.senderPublicKey !== void 0 ? Mode.AuthPsk : Mode.Psk;
      } else {
        mode = params.senderPublicKey !== void 0 ? Mode.Auth : Mode.Base;
      }
      return await this._keyScheduleR(mode, sharedSecret, params);
    }
    /**
     * Encrypts a message to a recipient.
     *
     * If the error occurred, throws `EncapError` | `MessageLimitReachedError` | `SealError` | `ValidationError`.
     *
     * @param params A set of parameters for building a sender encryption context.
     * @param pt A plain text as bytes to be encrypted.
     * @param aad Additional authenticated data as bytes fed by an application.
     * @returns A cipher text and an encapsulated key as bytes.
     * @throws {@link EncapError}, {@link MessageLimitReachedError}, {@link SealError}, {@link ValidationError}
     */
    async seal(params, pt, aad = EMPTY.buffer) {
      const ctx = await this.createSenderContext(params);
      return {
        ct: await ctx.seal(pt, aad),
        enc: ctx.enc
      };
    }
    /**
     * Decrypts a message from a sender.
     *
     * If the error occurred, throws `DecapError` | `DeserializeError` | `OpenError` | `ValidationError`.
     *
     * @param params A set of parameters for building a recipient encryption context.
     * @param ct An encrypted text as bytes to be decrypted.
     * @param aad Additional authenticated data as bytes fed by an application.
     * @returns A decrypted plain text as bytes.
     * @throws {@link DecapError}, {@link DeserializeError}, {@link OpenError}, {@link ValidationError}
     */
    async open(params, ct, aad = EMPTY.buffer) {
      const ctx = await this.createRecipientContext(params);
      return await ctx.open(ct, aad);
    }
    // private verifyPskInputs(mode: Mode, params: KeyScheduleParams) {
    //   const gotPsk = (params.psk !== undefined);
    //   const gotPskId = (params.psk !== undefined && params.psk.id.byteLength > 0);
    //   if (gotPsk !== gotPskId) {
    //     throw new Error('Inconsistent PSK inputs');
    //   }
    //   if (gotPsk && (mode === Mode.Base || mode === Mode.Auth)) {
    //     throw new Error('PSK input provided when not needed');
    //   }
    //   if (!gotPsk && (mode === Mode.Psk || mode === Mode.AuthPsk)) {
    //     throw new Error('Missing required PSK input');
    //   }
    //   return;
    // }
    async _keySchedule(mode, sharedSecret, params) {
      const pskId = params.psk === void 0 ? EMPTY : toUint8Array(params.psk.id);
      const pskIdHash = await this._kdf.labeledExtract(EMPTY, LABEL_PSK_ID_HASH, pskId);
      const info = params.info === void 0 ? EMPTY : toUint8Array(params.info);
      const infoHash = await this._kdf.labeledExtract(EMPTY, LABEL_INFO_HASH, info);
      const keyScheduleContext = new Uint8Array(1 + pskIdHash.byteLength + infoHash.byteLength);
      keyScheduleContext.set(new Uint8Array([mode]), 0);
      keyScheduleContext.set(new Uint8Array(pskIdHash), 1);
      keyScheduleContext.set(new Uint8Array(infoHash), 1 + pskIdHash.byteLength);
      const psk = params.psk === void 0 ? EMPTY : toUint8Array(params.psk.key);
      const ikm = this._kdf.buildLabeledIkm(LABEL_SECRET, psk);
      const exporterSecretInfo = this._kdf.buildLabeledInfo(LABEL_EXP, keyScheduleContext, this._kdf.hashSize);
      const exporterSecret = await this._kdf.extractAndExpand(sharedSecret, ikm, exporterSecretInfo, this._kdf.hashSize);
      if (this._aead.id === AeadId.ExportOnly) {
        return { aead: this._aead, exporterSecret };
      }
      const keyInfo = this._kdf.buildLabeledInfo(LABEL_KEY, keyScheduleContext, this._aead.keySize);
      const key = await this._kdf.extractAndExpand(sharedSecret, ikm, keyInfo, this._aead.keySize);
      const baseNonceInfo = this._kdf.buildLabeledInfo(LABEL_BASE_NONCE, keyScheduleContext, this._aead.nonceSize);
      const baseNonce = await this._kdf.extractAndExpand(sharedSecret, ikm, baseNonceInfo, this._aead.nonceSize);
      return {
        aead: this._aead,
        exporterSecret,
        key,
        baseNonce: new Uint8Array(baseNonce),
        seq: 0
      };
    }
    async _keyScheduleS(mode, sharedSecret, enc, params) {
      const res = await this._keySchedule(mode, sharedSecret, params);
      if (res.key === void 0) {
        return new SenderExporterContextImpl(this._api, this._kdf, res.exporterSecret, enc);
      }
      return new SenderContextImpl(this._api, this._kdf, res, enc);
    }
    async _keyScheduleR(mode, sharedSecret, params) {
      const res = await this._keySchedule(mode, sharedSecret, params);
      if (res.key === void 0) {
        return new RecipientExporterContextImpl(this._api, this._kdf, res.exporterSecret);
      }
      return new RecipientContextImpl(this._api, this._kdf, res);
    }
    _validateInputLength(params) {
      if (params.info !== void 0 && params.info.byteLength > INFO_LENGTH_LIMIT) {
        throw new InvalidParamError("Too long info");
      }
      if (params.psk !== void 0) {
        if (params.psk.key.byteLength < MINIMUM_PSK_LENGTH) {
          throw new InvalidParamError(`PSK must have at least ${MINIMUM_PSK_LENGTH} bytes`);
        }
        if (params.psk.key.byteLength > INPUT_LENGTH_LIMIT) {
          throw new InvalidParamError("Too long psk.key");
        }
        if (params.psk.id.byteLength > INPUT_LENGTH_LIMIT) {
          throw new InvalidParamError("Too long psk.id");
        }
      }
      return;
    }
  };

  // node_modules/@hpke/core/esm/src/native.js
  var CipherSuite = class extends CipherSuiteNative {
  };

  // node_modules/@hpke/core/esm/src/kems/dhkemPrimitives/x25519.js
  var PKCS8_ALG_ID_X25519 = new Uint8Array([
    48,
    46,
    2,
    1,
    0,
    48,
    5,
    6,
    3,
    43,
    101,
    110,
    4,
    34,
    4,
    32
  ]);

  // node_modules/@hpke/core/esm/src/kems/dhkemPrimitives/x448.js
  var PKCS8_ALG_ID_X448 = new Uint8Array([
    48,
    70,
    2,
    1,
    0,
    48,
    5,
    6,
    3,
    43,
    101,
    111,
    4,
    58,
    4,
    56
  ]);

  // node_modules/@hpke/dhkem-x25519/esm/src/primitives/x25519.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  var _1n2 = 1n;
  var _2n2 = 2n;
  var _3n = 3n;
  var _5n = 5n;
  var ed25519_CURVE_p = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffedn;
  function ed25519_pow_2_252_3(x) {
    const _10n = 10n;
    const _20n = 20n;
    const _40n = 40n;
    const _80n = 80n;
    const P = ed25519_CURVE_p;
    const x2 = x * x % P;
    const b2 = x2 * x % P;
    const b4 = pow2(b2, _2n2, P) * b2 % P;
    const b5 = pow2(b4, _1n2, P) * x % P;
    const b10 = pow2(b5, _5n, P) * b5 % P;
    const b20 = pow2(b10, _10n, P) * b10 % P;
    const b40 = pow2(b20, _20n, P) * b20 % P;
    const b80 = pow2(b40, _40n, P) * b40 % P;
    const b160 = pow2(b80, _80n, P) * b80 % P;
    const b240 = pow2(b160, _80n, P) * b80 % P;
    const b250 = pow2(b240, _10n, P) * b10 % P;
    const pow_p_5_8 = pow2(b250, _2n2, P) * x % P;
    return { pow_p_5_8, b2 };
  }
  function adjustScalarBytes(bytes) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    return bytes;
  }
  var x25519 = /* @__PURE__ */ (() => {
    const P = ed25519_CURVE_p;
    return montgomery({
      P,
      type: "x25519",
      powPminus2: (x) => {
        const { pow_p_5_8, b2 } = ed25519_pow_2_252_3(x);
        return mod(pow2(pow_p_5_8, _3n, P) * b2, P);
      },
      adjustScalarBytes
    });
  })();

  // node_modules/@hpke/dhkem-x25519/esm/src/hkdfSha256.js
  var HkdfSha2562 = class extends HkdfSha256Native {
    async extract(salt, ikm) {
      await this._setup();
      const saltBuf = salt.byteLength === 0 ? new ArrayBuffer(this.hashSize) : toArrayBuffer(salt);
      const ikmBuf = toArrayBuffer(ikm);
      if (saltBuf.byteLength !== this.hashSize) {
        return hmac(sha256, new Uint8Array(saltBuf), new Uint8Array(ikmBuf)).buffer;
      }
      const key = await this._api.importKey("raw", saltBuf, this.algHash, false, [
        "sign"
      ]);
      return await this._api.sign("HMAC", key, ikmBuf);
    }
  };

  // node_modules/@hpke/dhkem-x25519/esm/src/dhkemX25519.js
  var X255192 = class extends XCurveDhkemPrimitives {
    constructor(hkdf) {
      super("X25519", 32, x25519, hkdf);
    }
    derive(sk, pk) {
      try {
        return Promise.resolve(this._curve.getSharedSecret(sk, pk));
      } catch (e) {
        return Promise.reject(new SerializeError(e));
      }
    }
  };
  var DhkemX25519HkdfSha2562 = class extends Dhkem {
    constructor() {
      const kdf = new HkdfSha2562();
      super(KemId.DhkemX25519HkdfSha256, new X255192(kdf), kdf);
      Object.defineProperty(this, "id", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: KemId.DhkemX25519HkdfSha256
      });
      Object.defineProperty(this, "secretSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
      Object.defineProperty(this, "encSize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
      Object.defineProperty(this, "publicKeySize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
      Object.defineProperty(this, "privateKeySize", {
        enumerable: true,
        configurable: true,
        writable: true,
        value: 32
      });
    }
  };

  // node_modules/@noble/hashes/_u64.js
  var U32_MASK642 = /* @__PURE__ */ (() => BigInt(2 ** 32 - 1))();
  var _32n2 = /* @__PURE__ */ BigInt(32);
  function fromBig2(n, le = false) {
    if (le)
      return { h: Number(n & U32_MASK642), l: Number(n >> _32n2 & U32_MASK642) };
    return { h: Number(n >> _32n2 & U32_MASK642) | 0, l: Number(n & U32_MASK642) | 0 };
  }
  function split2(lst, le = false) {
    const len = lst.length;
    let Ah = new Uint32Array(len);
    let Al = new Uint32Array(len);
    for (let i = 0; i < len; i++) {
      const { h, l } = fromBig2(lst[i], le);
      [Ah[i], Al[i]] = [h, l];
    }
    return [Ah, Al];
  }
  var fromNumH = (n) => n / 2 ** 32 | 0;
  var fromNumL = (n) => n >>> 0;
  function setU64FromNum(view, byteOffset, n, isLE2) {
    const h = fromNumH(n);
    const l = fromNumL(n);
    view.setUint32(byteOffset, isLE2 ? l : h, isLE2);
    view.setUint32(byteOffset + 4, isLE2 ? h : l, isLE2);
  }
  var shrSH2 = (h, _l, s) => h >>> s;
  var shrSL2 = (h, l, s) => h << 32 - s | l >>> s;
  var rotrSH2 = (h, l, s) => h >>> s | l << 32 - s;
  var rotrSL2 = (h, l, s) => h << 32 - s | l >>> s;
  var rotrBH2 = (h, l, s) => h << 64 - s | l >>> s - 32;
  var rotrBL2 = (h, l, s) => h >>> s - 32 | l << 64 - s;
  function add2(Ah, Al, Bh, Bl) {
    const l = (Al >>> 0) + (Bl >>> 0);
    return { h: Ah + Bh + (l / 2 ** 32 | 0) | 0, l: l | 0 };
  }
  var add3L2 = (Al, Bl, Cl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0);
  var add3H2 = (low, Ah, Bh, Ch) => Ah + Bh + Ch + (low / 2 ** 32 | 0) | 0;
  var add4L2 = (Al, Bl, Cl, Dl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0);
  var add4H2 = (low, Ah, Bh, Ch, Dh) => Ah + Bh + Ch + Dh + (low / 2 ** 32 | 0) | 0;
  var add5L2 = (Al, Bl, Cl, Dl, El) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0) + (El >>> 0);
  var add5H2 = (low, Ah, Bh, Ch, Dh, Eh) => Ah + Bh + Ch + Dh + Eh + (low / 2 ** 32 | 0) | 0;

  // node_modules/@noble/hashes/utils.js
  function isBytes2(a) {
    return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
  }
  var atitle = (title) => title ? `"${title}" ` : "";
  function anumber2(n, title = "") {
    if (typeof n !== "number")
      throw new TypeError(atitle(title) + "expected number, got " + typeof n);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new RangeError(atitle(title) + "expected integer >= 0, got " + n);
    return n;
  }
  function abytes2(value, length, title = "") {
    if (isBytes2(value) && (length === void 0 || value.length === length))
      return value;
    if (length !== void 0)
      anumber2(length, "length");
    const bytes = isBytes2(value);
    const ofLen = length !== void 0 ? ` of length ${length}` : "";
    const got = bytes ? `length=${value.length}` : `type=${typeof value}`;
    const message = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
    if (!bytes)
      throw new TypeError(message);
    throw new RangeError(message);
  }
  function ahash2(h) {
    if (typeof h !== "function" || typeof h.create !== "function")
      throw new TypeError("expected hash wrapped by utils.createHasher");
    anumber2(h.outputLen);
    anumber2(h.blockLen);
    if (h.outputLen < 1 || h.blockLen < 1)
      throw new Error("hash blockLen / outputLen must be >= 1");
  }
  var aobject = (value, label) => {
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new TypeError((label === "object" ? "" : `"${label}" `) + "expected object, got type=" + typeof value);
  };
  var aopts = (value, label) => {
    aobject(value, label);
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError(`"${label}" expected plain object`);
    if (Object.hasOwn(value, "__proto__"))
      throw new TypeError(`"${label}.__proto__" is not allowed`);
  };
  function aexists2(instance, checkFinished = true) {
    if (instance.destroyed)
      throw new Error("hash was destroyed");
    if (checkFinished && instance.finished)
      throw new Error("digest() was already called");
  }
  function aoutput2(out, instance) {
    abytes2(out, void 0, "output");
    const min = instance.outputLen;
    if (!(out.length >= min)) {
      throw new RangeError('"output" expected length >= ' + min);
    }
  }
  function clean2(...arrays) {
    for (let i = 0; i < arrays.length; i++) {
      arrays[i].fill(0);
    }
  }
  function createView2(arr) {
    return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
  }
  function rotr2(word, shift) {
    return word << 32 - shift | word >>> shift;
  }
  var hasHexBuiltin2 = /* @__PURE__ */ (() => (
    // @ts-ignore
    typeof Uint8Array.from([]).toHex === "function" && typeof Uint8Array.fromHex === "function"
  ))();
  var hexes2 = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
  function bytesToHex2(bytes) {
    abytes2(bytes);
    if (hasHexBuiltin2)
      return bytes.toHex();
    let hex = "";
    for (let i = 0; i < bytes.length; i++) {
      hex += hexes2[bytes[i]];
    }
    return hex;
  }
  function asciiToBase162(ch) {
    return ch >= 48 && ch <= 57 ? ch - 48 : ch >= 65 && ch <= 70 ? ch - (65 - 10) : ch >= 97 && ch <= 102 ? ch - (97 - 10) : void 0;
  }
  function hexToBytes3(hex) {
    if (typeof hex !== "string")
      throw new TypeError("hex string expected, got " + typeof hex);
    if (hasHexBuiltin2) {
      try {
        return Uint8Array.fromHex(hex);
      } catch (error) {
        if (error instanceof SyntaxError)
          throw new RangeError(error.message);
        throw error;
      }
    }
    const hl = hex.length;
    const al = hl / 2;
    if (hl % 2)
      throw new RangeError("hex string expected, got unpadded hex of length " + hl);
    const array = new Uint8Array(al);
    for (let ai = 0, hi = 0; ai < al; ai++, hi += 2) {
      const n1 = asciiToBase162(hex.charCodeAt(hi));
      const n2 = asciiToBase162(hex.charCodeAt(hi + 1));
      if (n1 === void 0 || n2 === void 0) {
        const char = hex[hi] + hex[hi + 1];
        throw new RangeError('hex string expected, got non-hex character "' + char + '" at index ' + hi);
      }
      array[ai] = n1 * 16 + n2;
    }
    return array;
  }
  function nextTick(onReject) {
    const host = globalThis;
    if (typeof host.scheduler?.yield === "function") {
      const promise = host.scheduler.yield();
      if (onReject)
        promise.catch(onReject);
      return promise;
    }
    return new Promise((resolve) => host.setTimeout(resolve, 0));
  }
  async function asyncLoop(iters, tick, cb, onReject) {
    anumber2(iters, "iters");
    anumber2(tick, "tick");
    if (typeof cb !== "function")
      throw new TypeError("callback must be a function");
    let ts = Date.now();
    for (let i = 0; i < iters; i++) {
      cb(i);
      const diff = Date.now() - ts;
      if (diff >= 0 && diff < tick)
        continue;
      await nextTick(onReject);
      ts = Date.now();
    }
  }
  function utf8ToBytes(str) {
    if (typeof str !== "string")
      throw new TypeError("string expected");
    const encoded = new TextEncoder().encode(str);
    try {
      return new Uint8Array(encoded);
    } finally {
      clean2(encoded);
    }
  }
  function kdfInputToBytes(data, errorTitle = "") {
    if (typeof data === "string")
      return utf8ToBytes(data);
    return abytes2(data, void 0, errorTitle);
  }
  function concatBytes(...arrays) {
    let sum = 0;
    for (let i = 0; i < arrays.length; i++) {
      const a = arrays[i];
      abytes2(a);
      sum += a.length;
    }
    const res = new Uint8Array(sum);
    for (let i = 0, pad2 = 0; i < arrays.length; i++) {
      const a = arrays[i];
      res.set(a, pad2);
      pad2 += a.length;
    }
    return res;
  }
  function checkOpts2(defaults, opts, title = "opts") {
    aopts(defaults, "defaults");
    if (opts !== void 0)
      aopts(opts, title);
    const merged = Object.assign(/* @__PURE__ */ Object.create(null), defaults, opts);
    return merged;
  }
  function createHasher2(hashCons, info = {}) {
    if (typeof hashCons !== "function")
      throw new TypeError('"hashCons" expected function, got type=' + typeof hashCons);
    info = checkOpts2({}, info, "info");
    const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
    const tmp = hashCons(void 0);
    hashC.outputLen = tmp.outputLen;
    hashC.blockLen = tmp.blockLen;
    hashC.canXOF = tmp.canXOF;
    hashC.create = (opts) => hashCons(opts);
    Object.assign(hashC, info);
    return Object.freeze(hashC);
  }
  function randomBytes(bytesLength = 32) {
    anumber2(bytesLength, "bytesLength");
    const cr = typeof globalThis === "object" ? globalThis.crypto : null;
    if (typeof cr?.getRandomValues !== "function")
      throw new Error("crypto.getRandomValues must be defined");
    if (bytesLength > 65536)
      throw new RangeError(`"bytesLength" expected <= 65536, got ${bytesLength}`);
    return cr.getRandomValues(new Uint8Array(bytesLength));
  }
  var oidNist2 = (suffix) => ({
    // Current NIST hashAlgs suffixes used here fit in one DER subidentifier octet.
    // Larger suffix values would need base-128 OID encoding and a different length byte.
    oid: Uint8Array.from([6, 9, 96, 134, 72, 1, 101, 3, 4, 2, suffix])
  });

  // node_modules/@noble/hashes/_md.js
  function Chi2(a, b, c) {
    return a & b ^ ~a & c;
  }
  function Maj2(a, b, c) {
    return a & b ^ a & c ^ b & c;
  }
  var HashMD2 = class {
    constructor(blockLen, outputLen, padOffset, isLE2) {
      __publicField(this, "blockLen");
      __publicField(this, "outputLen");
      __publicField(this, "canXOF", false);
      __publicField(this, "padOffset");
      __publicField(this, "isLE");
      // For partial updates less than block size
      __publicField(this, "buffer");
      __publicField(this, "view");
      __publicField(this, "finished", false);
      __publicField(this, "length", 0);
      __publicField(this, "pos", 0);
      __publicField(this, "destroyed", false);
      this.blockLen = blockLen;
      this.outputLen = outputLen;
      this.padOffset = padOffset;
      this.isLE = isLE2;
      this.buffer = new Uint8Array(blockLen);
      this.view = createView2(this.buffer);
    }
    update(data) {
      aexists2(this);
      abytes2(data);
      const { view, buffer, blockLen } = this;
      const len = data.length;
      let processed = false;
      for (let pos = 0; pos < len; ) {
        const take = Math.min(blockLen - this.pos, len - pos);
        if (take === blockLen) {
          const dataView = createView2(data);
          for (; blockLen <= len - pos; pos += blockLen)
            this.process(dataView, pos);
          processed = true;
          continue;
        }
        buffer.set(pos === 0 && take === len ? data : data.subarray(pos, pos + take), this.pos);
        this.pos += take;
        pos += take;
        if (this.pos === blockLen) {
          this.process(view, 0);
          this.pos = 0;
          processed = true;
        }
      }
      this.length += data.length;
      if (processed)
        this.roundClean();
      return this;
    }
    digestInto(out) {
      aexists2(this);
      aoutput2(out, this);
      this.finished = true;
      const { buffer, view, blockLen, isLE: isLE2 } = this;
      let { pos } = this;
      buffer[pos++] = 128;
      buffer.fill(0, pos);
      if (this.padOffset > blockLen - pos) {
        this.process(view, 0);
        buffer.fill(0);
      }
      setU64FromNum(view, blockLen - 8, this.length * 8, isLE2);
      this.process(view, 0);
      this.roundClean();
      const oview = out === buffer ? view : createView2(out);
      const len = this.outputLen;
      const outLen = len / 4;
      const state = this.get();
      if (len % 4 || outLen > state.length)
        throw new Error("invalid outputLen");
      for (let i = 0; i < outLen; i++)
        oview.setUint32(4 * i, state[i], isLE2);
    }
    digest() {
      const { buffer, outputLen } = this;
      this.digestInto(buffer);
      const res = buffer.slice(0, outputLen);
      this.destroy();
      return res;
    }
    _cloneIntoMeta(to) {
      const { buffer, length, finished, destroyed, pos } = this;
      to.destroyed = destroyed;
      to.finished = finished;
      to.length = length;
      to.pos = pos;
      if (pos)
        to.buffer.set(buffer);
      return to;
    }
    clone() {
      return this._cloneInto();
    }
  };
  var SHA256_IV2 = /* @__PURE__ */ Uint32Array.from([
    1779033703,
    3144134277,
    1013904242,
    2773480762,
    1359893119,
    2600822924,
    528734635,
    1541459225
  ]);
  var SHA512_IV2 = /* @__PURE__ */ Uint32Array.from([
    1779033703,
    4089235720,
    3144134277,
    2227873595,
    1013904242,
    4271175723,
    2773480762,
    1595750129,
    1359893119,
    2917565137,
    2600822924,
    725511199,
    528734635,
    4215389547,
    1541459225,
    327033209
  ]);

  // node_modules/@noble/hashes/sha2.js
  var SHA256_K2 = /* @__PURE__ */ Uint32Array.from([
    1116352408,
    1899447441,
    3049323471,
    3921009573,
    961987163,
    1508970993,
    2453635748,
    2870763221,
    3624381080,
    310598401,
    607225278,
    1426881987,
    1925078388,
    2162078206,
    2614888103,
    3248222580,
    3835390401,
    4022224774,
    264347078,
    604807628,
    770255983,
    1249150122,
    1555081692,
    1996064986,
    2554220882,
    2821834349,
    2952996808,
    3210313671,
    3336571891,
    3584528711,
    113926993,
    338241895,
    666307205,
    773529912,
    1294757372,
    1396182291,
    1695183700,
    1986661051,
    2177026350,
    2456956037,
    2730485921,
    2820302411,
    3259730800,
    3345764771,
    3516065817,
    3600352804,
    4094571909,
    275423344,
    430227734,
    506948616,
    659060556,
    883997877,
    958139571,
    1322822218,
    1537002063,
    1747873779,
    1955562222,
    2024104815,
    2227730452,
    2361852424,
    2428436474,
    2756734187,
    3204031479,
    3329325298
  ]);
  var SHA256_W2 = /* @__PURE__ */ new Uint32Array(64);
  var SHA2_32B2 = class extends HashMD2 {
    constructor(outputLen, IV) {
      super(64, outputLen, 8, false);
      // We cannot use array here since array allows indexing by variable
      // which means optimizer/compiler cannot use registers.
      // Numeric initializers matter: starting the fields as `undefined` changes
      // V8's field representation and makes sha256 3x slower (measured).
      __publicField(this, "A", 0);
      __publicField(this, "B", 0);
      __publicField(this, "C", 0);
      __publicField(this, "D", 0);
      __publicField(this, "E", 0);
      __publicField(this, "F", 0);
      __publicField(this, "G", 0);
      __publicField(this, "H", 0);
      this.A = IV[0] | 0;
      this.B = IV[1] | 0;
      this.C = IV[2] | 0;
      this.D = IV[3] | 0;
      this.E = IV[4] | 0;
      this.F = IV[5] | 0;
      this.G = IV[6] | 0;
      this.H = IV[7] | 0;
    }
    get() {
      const { A, B, C, D, E, F, G, H } = this;
      return [A, B, C, D, E, F, G, H];
    }
    // prettier-ignore
    set(A, B, C, D, E, F, G, H) {
      this.A = A | 0;
      this.B = B | 0;
      this.C = C | 0;
      this.D = D | 0;
      this.E = E | 0;
      this.F = F | 0;
      this.G = G | 0;
      this.H = H | 0;
    }
    _cloneInto(to) {
      (to || (to = new this.constructor())).set(...this.get());
      return this._cloneIntoMeta(to);
    }
    process(view, offset) {
      for (let i = 0; i < 16; i++, offset += 4)
        SHA256_W2[i] = view.getUint32(offset, false);
      for (let i = 16; i < 64; i++) {
        const W15 = SHA256_W2[i - 15];
        const W2 = SHA256_W2[i - 2];
        const s0 = rotr2(W15, 7) ^ rotr2(W15, 18) ^ W15 >>> 3;
        const s1 = rotr2(W2, 17) ^ rotr2(W2, 19) ^ W2 >>> 10;
        SHA256_W2[i] = s1 + SHA256_W2[i - 7] + s0 + SHA256_W2[i - 16] | 0;
      }
      let { A, B, C, D, E, F, G, H } = this;
      for (let i = 0; i < 64; i++) {
        const sigma1 = rotr2(E, 6) ^ rotr2(E, 11) ^ rotr2(E, 25);
        const T1 = H + sigma1 + Chi2(E, F, G) + SHA256_K2[i] + SHA256_W2[i] | 0;
        const sigma0 = rotr2(A, 2) ^ rotr2(A, 13) ^ rotr2(A, 22);
        const T2 = sigma0 + Maj2(A, B, C) | 0;
        H = G;
        G = F;
        F = E;
        E = D + T1 | 0;
        D = C;
        C = B;
        B = A;
        A = T1 + T2 | 0;
      }
      A = A + this.A | 0;
      B = B + this.B | 0;
      C = C + this.C | 0;
      D = D + this.D | 0;
      E = E + this.E | 0;
      F = F + this.F | 0;
      G = G + this.G | 0;
      H = H + this.H | 0;
      this.set(A, B, C, D, E, F, G, H);
    }
    roundClean() {
      clean2(SHA256_W2);
    }
    destroy() {
      this.destroyed = true;
      this.set(0, 0, 0, 0, 0, 0, 0, 0);
      clean2(this.buffer);
    }
  };
  var _SHA2562 = class extends SHA2_32B2 {
    constructor() {
      super(32, SHA256_IV2);
    }
  };
  var K512 = /* @__PURE__ */ (() => split2([
    "0x428a2f98d728ae22",
    "0x7137449123ef65cd",
    "0xb5c0fbcfec4d3b2f",
    "0xe9b5dba58189dbbc",
    "0x3956c25bf348b538",
    "0x59f111f1b605d019",
    "0x923f82a4af194f9b",
    "0xab1c5ed5da6d8118",
    "0xd807aa98a3030242",
    "0x12835b0145706fbe",
    "0x243185be4ee4b28c",
    "0x550c7dc3d5ffb4e2",
    "0x72be5d74f27b896f",
    "0x80deb1fe3b1696b1",
    "0x9bdc06a725c71235",
    "0xc19bf174cf692694",
    "0xe49b69c19ef14ad2",
    "0xefbe4786384f25e3",
    "0x0fc19dc68b8cd5b5",
    "0x240ca1cc77ac9c65",
    "0x2de92c6f592b0275",
    "0x4a7484aa6ea6e483",
    "0x5cb0a9dcbd41fbd4",
    "0x76f988da831153b5",
    "0x983e5152ee66dfab",
    "0xa831c66d2db43210",
    "0xb00327c898fb213f",
    "0xbf597fc7beef0ee4",
    "0xc6e00bf33da88fc2",
    "0xd5a79147930aa725",
    "0x06ca6351e003826f",
    "0x142929670a0e6e70",
    "0x27b70a8546d22ffc",
    "0x2e1b21385c26c926",
    "0x4d2c6dfc5ac42aed",
    "0x53380d139d95b3df",
    "0x650a73548baf63de",
    "0x766a0abb3c77b2a8",
    "0x81c2c92e47edaee6",
    "0x92722c851482353b",
    "0xa2bfe8a14cf10364",
    "0xa81a664bbc423001",
    "0xc24b8b70d0f89791",
    "0xc76c51a30654be30",
    "0xd192e819d6ef5218",
    "0xd69906245565a910",
    "0xf40e35855771202a",
    "0x106aa07032bbd1b8",
    "0x19a4c116b8d2d0c8",
    "0x1e376c085141ab53",
    "0x2748774cdf8eeb99",
    "0x34b0bcb5e19b48a8",
    "0x391c0cb3c5c95a63",
    "0x4ed8aa4ae3418acb",
    "0x5b9cca4f7763e373",
    "0x682e6ff3d6b2b8a3",
    "0x748f82ee5defb2fc",
    "0x78a5636f43172f60",
    "0x84c87814a1f0ab72",
    "0x8cc702081a6439ec",
    "0x90befffa23631e28",
    "0xa4506cebde82bde9",
    "0xbef9a3f7b2c67915",
    "0xc67178f2e372532b",
    "0xca273eceea26619c",
    "0xd186b8c721c0c207",
    "0xeada7dd6cde0eb1e",
    "0xf57d4f7fee6ed178",
    "0x06f067aa72176fba",
    "0x0a637dc5a2c898a6",
    "0x113f9804bef90dae",
    "0x1b710b35131c471b",
    "0x28db77f523047d84",
    "0x32caab7b40c72493",
    "0x3c9ebe0a15c9bebc",
    "0x431d67c49c100d4c",
    "0x4cc5d4becb3e42b6",
    "0x597f299cfc657e2a",
    "0x5fcb6fab3ad6faec",
    "0x6c44198c4a475817"
  ].map((n) => BigInt(n))))();
  var SHA512_Kh = /* @__PURE__ */ (() => K512[0])();
  var SHA512_Kl = /* @__PURE__ */ (() => K512[1])();
  var SHA512_W_H = /* @__PURE__ */ new Uint32Array(80);
  var SHA512_W_L = /* @__PURE__ */ new Uint32Array(80);
  var SHA2_64B = class extends HashMD2 {
    constructor(outputLen, IV) {
      super(128, outputLen, 16, false);
      // We cannot use array here since array allows indexing by variable
      // which means optimizer/compiler cannot use registers.
      // h -- high 32 bits, l -- low 32 bits
      // Numeric initializers matter: starting the fields as `undefined` changes
      // V8's field representation and slows hashing down (measured on sha256).
      __publicField(this, "Ah", 0);
      __publicField(this, "Al", 0);
      __publicField(this, "Bh", 0);
      __publicField(this, "Bl", 0);
      __publicField(this, "Ch", 0);
      __publicField(this, "Cl", 0);
      __publicField(this, "Dh", 0);
      __publicField(this, "Dl", 0);
      __publicField(this, "Eh", 0);
      __publicField(this, "El", 0);
      __publicField(this, "Fh", 0);
      __publicField(this, "Fl", 0);
      __publicField(this, "Gh", 0);
      __publicField(this, "Gl", 0);
      __publicField(this, "Hh", 0);
      __publicField(this, "Hl", 0);
      this.Ah = IV[0] | 0;
      this.Al = IV[1] | 0;
      this.Bh = IV[2] | 0;
      this.Bl = IV[3] | 0;
      this.Ch = IV[4] | 0;
      this.Cl = IV[5] | 0;
      this.Dh = IV[6] | 0;
      this.Dl = IV[7] | 0;
      this.Eh = IV[8] | 0;
      this.El = IV[9] | 0;
      this.Fh = IV[10] | 0;
      this.Fl = IV[11] | 0;
      this.Gh = IV[12] | 0;
      this.Gl = IV[13] | 0;
      this.Hh = IV[14] | 0;
      this.Hl = IV[15] | 0;
    }
    // prettier-ignore
    get() {
      const { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
      return [Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl];
    }
    // prettier-ignore
    set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl) {
      this.Ah = Ah | 0;
      this.Al = Al | 0;
      this.Bh = Bh | 0;
      this.Bl = Bl | 0;
      this.Ch = Ch | 0;
      this.Cl = Cl | 0;
      this.Dh = Dh | 0;
      this.Dl = Dl | 0;
      this.Eh = Eh | 0;
      this.El = El | 0;
      this.Fh = Fh | 0;
      this.Fl = Fl | 0;
      this.Gh = Gh | 0;
      this.Gl = Gl | 0;
      this.Hh = Hh | 0;
      this.Hl = Hl | 0;
    }
    _cloneInto(to) {
      (to || (to = new this.constructor())).set(...this.get());
      return this._cloneIntoMeta(to);
    }
    process(view, offset) {
      for (let i = 0; i < 16; i++, offset += 4) {
        SHA512_W_H[i] = view.getUint32(offset);
        SHA512_W_L[i] = view.getUint32(offset += 4);
      }
      for (let i = 16; i < 80; i++) {
        const W15h = SHA512_W_H[i - 15] | 0;
        const W15l = SHA512_W_L[i - 15] | 0;
        const s0h = rotrSH2(W15h, W15l, 1) ^ rotrSH2(W15h, W15l, 8) ^ shrSH2(W15h, W15l, 7);
        const s0l = rotrSL2(W15h, W15l, 1) ^ rotrSL2(W15h, W15l, 8) ^ shrSL2(W15h, W15l, 7);
        const W2h = SHA512_W_H[i - 2] | 0;
        const W2l = SHA512_W_L[i - 2] | 0;
        const s1h = rotrSH2(W2h, W2l, 19) ^ rotrBH2(W2h, W2l, 61) ^ shrSH2(W2h, W2l, 6);
        const s1l = rotrSL2(W2h, W2l, 19) ^ rotrBL2(W2h, W2l, 61) ^ shrSL2(W2h, W2l, 6);
        const SUMl = add4L2(s0l, s1l, SHA512_W_L[i - 7], SHA512_W_L[i - 16]);
        const SUMh = add4H2(SUMl, s0h, s1h, SHA512_W_H[i - 7], SHA512_W_H[i - 16]);
        SHA512_W_H[i] = SUMh | 0;
        SHA512_W_L[i] = SUMl | 0;
      }
      let { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
      for (let i = 0; i < 80; i++) {
        const sigma1h = rotrSH2(Eh, El, 14) ^ rotrSH2(Eh, El, 18) ^ rotrBH2(Eh, El, 41);
        const sigma1l = rotrSL2(Eh, El, 14) ^ rotrSL2(Eh, El, 18) ^ rotrBL2(Eh, El, 41);
        const CHIh = Eh & Fh ^ ~Eh & Gh;
        const CHIl = El & Fl ^ ~El & Gl;
        const T1ll = add5L2(Hl, sigma1l, CHIl, SHA512_Kl[i], SHA512_W_L[i]);
        const T1h = add5H2(T1ll, Hh, sigma1h, CHIh, SHA512_Kh[i], SHA512_W_H[i]);
        const T1l = T1ll | 0;
        const sigma0h = rotrSH2(Ah, Al, 28) ^ rotrBH2(Ah, Al, 34) ^ rotrBH2(Ah, Al, 39);
        const sigma0l = rotrSL2(Ah, Al, 28) ^ rotrBL2(Ah, Al, 34) ^ rotrBL2(Ah, Al, 39);
        const MAJh = Ah & Bh ^ Ah & Ch ^ Bh & Ch;
        const MAJl = Al & Bl ^ Al & Cl ^ Bl & Cl;
        Hh = Gh | 0;
        Hl = Gl | 0;
        Gh = Fh | 0;
        Gl = Fl | 0;
        Fh = Eh | 0;
        Fl = El | 0;
        ({ h: Eh, l: El } = add2(Dh | 0, Dl | 0, T1h | 0, T1l | 0));
        Dh = Ch | 0;
        Dl = Cl | 0;
        Ch = Bh | 0;
        Cl = Bl | 0;
        Bh = Ah | 0;
        Bl = Al | 0;
        const All = add3L2(T1l, sigma0l, MAJl);
        Ah = add3H2(All, T1h, sigma0h, MAJh);
        Al = All | 0;
      }
      ({ h: Ah, l: Al } = add2(this.Ah | 0, this.Al | 0, Ah | 0, Al | 0));
      ({ h: Bh, l: Bl } = add2(this.Bh | 0, this.Bl | 0, Bh | 0, Bl | 0));
      ({ h: Ch, l: Cl } = add2(this.Ch | 0, this.Cl | 0, Ch | 0, Cl | 0));
      ({ h: Dh, l: Dl } = add2(this.Dh | 0, this.Dl | 0, Dh | 0, Dl | 0));
      ({ h: Eh, l: El } = add2(this.Eh | 0, this.El | 0, Eh | 0, El | 0));
      ({ h: Fh, l: Fl } = add2(this.Fh | 0, this.Fl | 0, Fh | 0, Fl | 0));
      ({ h: Gh, l: Gl } = add2(this.Gh | 0, this.Gl | 0, Gh | 0, Gl | 0));
      ({ h: Hh, l: Hl } = add2(this.Hh | 0, this.Hl | 0, Hh | 0, Hl | 0));
      this.set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl);
    }
    roundClean() {
      clean2(SHA512_W_H, SHA512_W_L);
    }
    destroy() {
      this.destroyed = true;
      clean2(this.buffer);
      this.set(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    }
  };
  var _SHA512 = class extends SHA2_64B {
    constructor() {
      super(64, SHA512_IV2);
    }
  };
  var sha2562 = /* @__PURE__ */ createHasher2(
    () => new _SHA2562(),
    /* @__PURE__ */ oidNist2(1)
  );
  var sha5122 = /* @__PURE__ */ createHasher2(
    () => new _SHA512(),
    /* @__PURE__ */ oidNist2(3)
  );

  // node_modules/@noble/curves/utils.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  function aarray(item, title, inner = () => {
  }) {
    if (!Array.isArray(item))
      throw new TypeError(`"${title}" expected array, got type=${typeof item}`);
    for (let i = 0; i < item.length; i++)
      inner(item[i], `${title}[${i}]`);
    return item;
  }
  var abytes3 = (value, length, title) => abytes2(value, length, title);
  var anumber3 = anumber2;
  function aobject2(value, title = "object") {
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new TypeError(title === "object" ? "expected valid options object" : `"${title}" expected object, got type=${typeof value}`);
    return value;
  }
  function afunction(value, title) {
    if (typeof value !== "function")
      throw new TypeError(`"${title}" is invalid: expected function, got ${typeof value}`);
    return value;
  }
  var bytesToHex3 = bytesToHex2;
  var concatBytes2 = (...arrays) => concatBytes(...arrays);
  var hexToBytes4 = (hex) => hexToBytes3(hex);
  var isBytes3 = isBytes2;
  var randomBytes2 = (bytesLength) => randomBytes(bytesLength);
  var _0n2 = /* @__PURE__ */ BigInt(0);
  var _1n3 = /* @__PURE__ */ BigInt(1);
  var atitle2 = (title) => title ? `"${title}" ` : "";
  function abool2(value, title = "") {
    if (typeof value !== "boolean")
      throw new TypeError(atitle2(title) + "expected boolean, got type=" + typeof value);
    return value;
  }
  function abignumber(n) {
    if (typeof n === "bigint") {
      if (!isPosBig2(n))
        throw new RangeError("positive bigint expected, got " + n);
    } else
      anumber3(n);
    return n;
  }
  function asafenumber(value, title = "") {
    if (typeof value !== "number") {
      const prefix = title && `"${title}" `;
      throw new TypeError(prefix + "expected number, got type=" + typeof value);
    }
    if (!Number.isSafeInteger(value)) {
      const prefix = title && `"${title}" `;
      throw new RangeError(prefix + "expected safe integer, got " + value);
    }
  }
  function hexToNumber2(hex) {
    if (typeof hex !== "string")
      throw new TypeError("hex string expected, got " + typeof hex);
    return hex === "" ? _0n2 : BigInt("0x" + hex);
  }
  function bytesToNumberBE(bytes) {
    return hexToNumber2(bytesToHex2(bytes));
  }
  function bytesToNumberLE2(bytes) {
    return hexToNumber2(bytesToHex2(copyBytes2(abytes2(bytes)).reverse()));
  }
  function numberToBytesBE2(n, len) {
    anumber2(len);
    if (len === 0)
      throw new Error("zero output length is invalid");
    n = abignumber(n);
    const expectedLen = len * 2;
    const hex = n.toString(16);
    if (hex.length > expectedLen)
      throw new RangeError("number is too large");
    return hexToBytes3(hex.padStart(expectedLen, "0"));
  }
  function numberToBytesLE2(n, len) {
    return numberToBytesBE2(n, len).reverse();
  }
  function copyBytes2(bytes) {
    return Uint8Array.from(abytes3(bytes));
  }
  function isPosBig2(n) {
    return typeof n === "bigint" && _0n2 <= n;
  }
  function inRange2(n, min, max) {
    return isPosBig2(n) && isPosBig2(min) && isPosBig2(max) && min <= n && n < max;
  }
  function aInRange2(title, n, min, max) {
    if (!inRange2(n, min, max))
      throw new RangeError("expected valid " + title + ": " + min + " <= n < " + max + ", got " + n);
  }
  function bitLen(n) {
    if (n < _0n2)
      throw new Error("expected non-negative bigint, got " + n);
    return n === _0n2 ? 0 : n.toString(2).length;
  }
  var bitMask = (n) => {
    asafenumber(n, "n");
    return (_1n3 << BigInt(n)) - _1n3;
  };
  function validateObject2(object, fields = {}, optFields = {}, title = "object") {
    aobject2(object, title);
    aobject2(fields, "fields");
    aobject2(optFields, "optFields");
    function checkField(fieldName, expectedType, isOpt) {
      const label = title === "object" ? `param "${String(fieldName)}"` : `"${title}.${String(fieldName)}"`;
      const val = object[fieldName];
      if (!Object.hasOwn(object, fieldName) && (isOpt ? val !== void 0 : expectedType !== "function")) {
        throw new TypeError(`${label} is invalid: expected own property`);
      }
      if (isOpt && val === void 0)
        return;
      const current = typeof val;
      if (current !== expectedType || val === null)
        throw new TypeError(`${label} is invalid: expected ${expectedType}, got ${current}`);
    }
    const iter = (f, isOpt) => Object.entries(f).forEach(([k, v]) => checkField(k, v, isOpt));
    iter(fields, false);
    iter(optFields, true);
  }

  // node_modules/@noble/curves/abstract/modular.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  var _0n3 = /* @__PURE__ */ BigInt(0);
  var _1n4 = /* @__PURE__ */ BigInt(1);
  var _2n3 = /* @__PURE__ */ BigInt(2);
  var _3n2 = /* @__PURE__ */ BigInt(3);
  var _4n = /* @__PURE__ */ BigInt(4);
  var _5n2 = /* @__PURE__ */ BigInt(5);
  var _7n2 = /* @__PURE__ */ BigInt(7);
  var _8n = /* @__PURE__ */ BigInt(8);
  var _9n = /* @__PURE__ */ BigInt(9);
  var _15n = /* @__PURE__ */ BigInt(15);
  var _16n = /* @__PURE__ */ BigInt(16);
  var POW_WINDOWED_MIN = /* @__PURE__ */ BigInt("0x10000000000000000");
  function mod2(a, b) {
    if (b <= _0n3)
      throw new Error("mod: expected positive modulus, got " + b);
    const result = a % b;
    return result >= _0n3 ? result : b + result;
  }
  function pow(num, power, modulo) {
    if (modulo <= _1n4)
      throw new Error("pow: expected modulus > 1, got " + modulo);
    if (typeof power !== "bigint")
      throw new TypeError("invalid exponent: expected bigint, got " + typeof power);
    if (power < _0n3)
      throw new Error("invalid exponent, negatives unsupported");
    if (power === _0n3)
      return _1n4;
    if (power === _1n4)
      return num;
    let d = num % modulo;
    if (d < _0n3)
      d += modulo;
    if (power < POW_WINDOWED_MIN) {
      let p2 = _1n4;
      while (power > _0n3) {
        if (power & _1n4)
          p2 = p2 * d % modulo;
        d = d * d % modulo;
        power >>= _1n4;
      }
      return p2;
    }
    const digits = [];
    while (power > _0n3) {
      digits.push(Number(power & _15n));
      power >>= _4n;
    }
    const table = new Array(16);
    table[0] = _1n4;
    table[1] = d;
    for (let i = 2; i < 16; i++)
      table[i] = table[i - 1] * d % modulo;
    let p = table[digits[digits.length - 1]];
    for (let w = digits.length - 2; w >= 0; w--) {
      p = p * p % modulo;
      p = p * p % modulo;
      p = p * p % modulo;
      p = p * p % modulo;
      const digit = digits[w];
      if (digit !== 0)
        p = p * table[digit] % modulo;
    }
    return p;
  }
  function pow22(x, power, modulo) {
    if (modulo <= _1n4)
      throw new Error("pow2: expected modulus > 1, got " + modulo);
    if (power < _0n3)
      throw new Error("pow2: expected non-negative exponent, got " + power);
    let res = x;
    while (power-- > _0n3) {
      res *= res;
      res %= modulo;
    }
    return res;
  }
  function invert(number, modulo) {
    if (number === _0n3)
      throw new Error("invert: expected non-zero number");
    if (modulo <= _1n4)
      throw new Error("invert: expected modulus > 1, got " + modulo);
    let a = mod2(number, modulo);
    let b = modulo;
    let x = _0n3, u = _1n4;
    while (a !== _0n3) {
      const q = b / a;
      const r = b - a * q;
      const m = x - u * q;
      b = a, a = r, x = u, u = m;
    }
    const gcd = b;
    if (gcd !== _1n4)
      throw new Error("invert: does not exist");
    return mod2(x, modulo);
  }
  function assertIsSquare(Fp2, root, n) {
    const F = Fp2;
    if (!F.eql(F.sqr(root), n))
      throw new Error("Cannot find square root");
  }
  function aoddModulus(order, fnName) {
    if ((order & _1n4) === _0n3)
      throw new Error(fnName + ": expected odd modulus, got " + order);
  }
  function sqrt3mod4(Fp2, n) {
    const F = Fp2;
    const p1div4 = (F.ORDER + _1n4) / _4n;
    const root = F.pow(n, p1div4);
    assertIsSquare(F, root, n);
    return root;
  }
  function sqrt5mod8(Fp2, n) {
    const F = Fp2;
    const p5div8 = (F.ORDER - _5n2) / _8n;
    const n2 = F.mul(n, _2n3);
    const v = F.pow(n2, p5div8);
    const nv = F.mul(n, v);
    const i = F.mul(F.mul(nv, _2n3), v);
    const root = F.mul(nv, F.sub(i, F.ONE));
    assertIsSquare(F, root, n);
    return root;
  }
  function sqrt9mod16(P) {
    const Fp_ = Field(P);
    const tn = tonelliShanks(P);
    const c1 = tn(Fp_, Fp_.neg(Fp_.ONE));
    const c2 = tn(Fp_, c1);
    const c3 = tn(Fp_, Fp_.neg(c1));
    const c4 = (P + _7n2) / _16n;
    return ((Fp2, n) => {
      const F = Fp2;
      let tv1 = F.pow(n, c4);
      let tv2 = F.mul(tv1, c1);
      const tv3 = F.mul(tv1, c2);
      const tv4 = F.mul(tv1, c3);
      const e1 = F.eql(F.sqr(tv2), n);
      const e2 = F.eql(F.sqr(tv3), n);
      tv1 = F.cmov(tv1, tv2, e1);
      tv2 = F.cmov(tv4, tv3, e2);
      const e3 = F.eql(F.sqr(tv2), n);
      const root = F.cmov(tv1, tv2, e3);
      assertIsSquare(F, root, n);
      return root;
    });
  }
  function tonelliShanks(P) {
    if (P < _3n2)
      throw new Error("sqrt is not defined for small field");
    aoddModulus(P, "tonelliShanks");
    let Q = P - _1n4;
    let S = 0;
    while (Q % _2n3 === _0n3) {
      Q /= _2n3;
      S++;
    }
    let Z = _2n3;
    const _Fp = Field(P);
    while (FpLegendre(_Fp, Z) === 1) {
      if (Z++ > 1e3)
        throw new Error("Cannot find square root: probably non-prime P");
    }
    if (S === 1)
      return sqrt3mod4;
    let cc = _Fp.pow(Z, Q);
    const Q1div2 = (Q + _1n4) / _2n3;
    return function tonelliSlow(Fp2, n) {
      const F = Fp2;
      if (F.is0(n))
        return n;
      if (FpLegendre(F, n) !== 1)
        throw new Error("Cannot find square root");
      let M = S;
      let c = F.mul(F.ONE, cc);
      let t = F.pow(n, Q);
      let R = F.pow(n, Q1div2);
      while (!F.eql(t, F.ONE)) {
        if (F.is0(t))
          throw new Error("Cannot find square root: probably non-prime P");
        let i = 1;
        let t_tmp = F.sqr(t);
        while (!F.eql(t_tmp, F.ONE)) {
          i++;
          t_tmp = F.sqr(t_tmp);
          if (i === M)
            throw new Error("Cannot find square root");
        }
        const exponent = _1n4 << BigInt(M - i - 1);
        const b = F.pow(c, exponent);
        M = i;
        c = F.sqr(b);
        t = F.mul(t, c);
        R = F.mul(R, b);
      }
      return R;
    };
  }
  function FpSqrt(P) {
    aoddModulus(P, "Fp.sqrt");
    if (P % _4n === _3n2)
      return sqrt3mod4;
    if (P % _8n === _5n2)
      return sqrt5mod8;
    if (P % _16n === _9n)
      return sqrt9mod16(P);
    return tonelliShanks(P);
  }
  var isNegativeLE = (num, modulo) => (mod2(num, modulo) & _1n4) === _1n4;
  var FIELD_FIELDS = [
    "create",
    "isValid",
    "is0",
    "neg",
    "inv",
    "sqrt",
    "sqr",
    "eql",
    "add",
    "sub",
    "mul",
    "pow",
    "div",
    "addN",
    "subN",
    "mulN",
    "sqrN"
  ];
  function validateField(field) {
    aobject2(field, "field");
    if (typeof field.ORDER !== "bigint")
      throw new TypeError('param "ORDER" is invalid: expected bigint, got ' + typeof field.ORDER);
    asafenumber(field.BYTES, "BYTES");
    asafenumber(field.BITS, "BITS");
    for (const name of FIELD_FIELDS)
      afunction(field[name], "field." + name);
    if (field.BYTES < 1 || field.BITS < 1)
      throw new Error("invalid field: expected BYTES/BITS > 0");
    if (field.ORDER <= _1n4)
      throw new Error("invalid field: expected ORDER > 1, got " + field.ORDER);
    return field;
  }
  function FpInvertBatch(Fp2, nums, passZero = false) {
    validateField(Fp2);
    aarray(nums, "nums");
    abool2(passZero, "passZero");
    const F = Fp2;
    const inverted = new Array(nums.length).fill(passZero ? F.ZERO : void 0);
    const multipliedAcc = nums.reduce((acc, num, i) => {
      if (F.is0(num))
        return acc;
      inverted[i] = acc;
      return F.mul(acc, num);
    }, F.ONE);
    const invertedAcc = F.inv(multipliedAcc);
    nums.reduceRight((acc, num, i) => {
      if (F.is0(num))
        return acc;
      inverted[i] = F.mul(acc, inverted[i]);
      return F.mul(acc, num);
    }, invertedAcc);
    return inverted;
  }
  function FpLegendre(Fp2, n) {
    validateField(Fp2);
    const F = Fp2;
    aoddModulus(F.ORDER, "FpLegendre");
    const p1mod2 = (F.ORDER - _1n4) / _2n3;
    const powered = F.pow(n, p1mod2);
    const yes = F.eql(powered, F.ONE);
    const zero = F.eql(powered, F.ZERO);
    const no = F.eql(powered, F.neg(F.ONE));
    if (!yes && !zero && !no)
      throw new Error("invalid Legendre symbol result");
    return yes ? 1 : zero ? 0 : -1;
  }
  function nLength(n, nBitLength) {
    if (nBitLength !== void 0)
      anumber3(nBitLength);
    if (n <= _0n3)
      throw new Error("invalid n length: expected positive n, got " + n);
    if (nBitLength !== void 0 && nBitLength < 1)
      throw new Error("invalid n length: expected positive bit length, got " + nBitLength);
    const bits = bitLen(n);
    if (nBitLength !== void 0 && nBitLength < bits)
      throw new Error(`invalid n length: expected nBitLength (${nBitLength}) >= bitLen(n) (${bits})`);
    const _nBitLength = nBitLength !== void 0 ? nBitLength : bits;
    const nByteLength = Math.ceil(_nBitLength / 8);
    return { nBitLength: _nBitLength, nByteLength };
  }
  var FIELD_SQRT = /* @__PURE__ */ new WeakMap();
  var _Field = class {
    constructor(ORDER, opts = {}) {
      __publicField(this, "ORDER");
      __publicField(this, "BITS");
      __publicField(this, "BYTES");
      __publicField(this, "isLE");
      __publicField(this, "ZERO", _0n3);
      __publicField(this, "ONE", _1n4);
      __publicField(this, "_lengths");
      __publicField(this, "_mod");
      if (ORDER <= _1n4)
        throw new Error("invalid field: expected ORDER > 1, got " + ORDER);
      let _nbitLength = void 0;
      this.isLE = false;
      if (opts != null && typeof opts === "object") {
        if (typeof opts.BITS === "number")
          _nbitLength = opts.BITS;
        if (typeof opts.sqrt === "function")
          Object.defineProperty(this, "sqrt", { value: opts.sqrt, enumerable: true });
        if (typeof opts.isLE === "boolean")
          this.isLE = opts.isLE;
        if (opts.allowedLengths)
          this._lengths = Object.freeze(opts.allowedLengths.slice());
        if (typeof opts.modFromBytes === "boolean")
          this._mod = opts.modFromBytes;
      }
      const { nBitLength, nByteLength } = nLength(ORDER, _nbitLength);
      if (nByteLength > 2048)
        throw new Error("invalid field: expected ORDER of <= 2048 bytes");
      this.ORDER = ORDER;
      this.BITS = nBitLength;
      this.BYTES = nByteLength;
      Object.freeze(this);
    }
    create(num) {
      return mod2(num, this.ORDER);
    }
    isValid(num) {
      if (typeof num !== "bigint")
        throw new TypeError("invalid field element: expected bigint, got " + typeof num);
      return _0n3 <= num && num < this.ORDER;
    }
    is0(num) {
      return num === _0n3;
    }
    // is valid and invertible
    isValidNot0(num) {
      return !this.is0(num) && this.isValid(num);
    }
    isOdd(num) {
      return (num & _1n4) === _1n4;
    }
    neg(num) {
      return mod2(-num, this.ORDER);
    }
    eql(lhs, rhs) {
      return lhs === rhs;
    }
    sqr(num) {
      return mod2(num * num, this.ORDER);
    }
    add(lhs, rhs) {
      return mod2(lhs + rhs, this.ORDER);
    }
    sub(lhs, rhs) {
      return mod2(lhs - rhs, this.ORDER);
    }
    mul(lhs, rhs) {
      return mod2(lhs * rhs, this.ORDER);
    }
    pow(num, power) {
      return pow(num, power, this.ORDER);
    }
    div(lhs, rhs) {
      return mod2(lhs * invert(rhs, this.ORDER), this.ORDER);
    }
    // Same as above, but doesn't normalize
    sqrN(num) {
      return num * num;
    }
    addN(lhs, rhs) {
      return lhs + rhs;
    }
    subN(lhs, rhs) {
      return lhs - rhs;
    }
    mulN(lhs, rhs) {
      return lhs * rhs;
    }
    inv(num) {
      return invert(num, this.ORDER);
    }
    sqrt(num) {
      let sqrt = FIELD_SQRT.get(this);
      if (!sqrt)
        FIELD_SQRT.set(this, sqrt = FpSqrt(this.ORDER));
      return sqrt(this, num);
    }
    toBytes(num) {
      return this.isLE ? numberToBytesLE2(num, this.BYTES) : numberToBytesBE2(num, this.BYTES);
    }
    fromBytes(bytes, skipValidation = false) {
      abytes3(bytes);
      const { _lengths: allowedLengths, BYTES, isLE: isLE2, ORDER, _mod: modFromBytes } = this;
      if (allowedLengths) {
        if (bytes.length < 1 || !allowedLengths.includes(bytes.length) || bytes.length > BYTES) {
          throw new Error("Field.fromBytes: expected " + allowedLengths + " bytes, got " + bytes.length);
        }
        const padded = new Uint8Array(BYTES);
        padded.set(bytes, isLE2 ? 0 : padded.length - bytes.length);
        bytes = padded;
      }
      if (bytes.length !== BYTES)
        throw new Error("Field.fromBytes: expected " + BYTES + " bytes, got " + bytes.length);
      let scalar = isLE2 ? bytesToNumberLE2(bytes) : bytesToNumberBE(bytes);
      if (modFromBytes)
        scalar = mod2(scalar, ORDER);
      if (!skipValidation) {
        if (!this.isValid(scalar))
          throw new Error("invalid field element: outside of range 0..ORDER");
      }
      return scalar;
    }
    // TODO: we don't need it here, move out to separate fn
    invertBatch(lst) {
      return FpInvertBatch(this, lst, true);
    }
    // We can't move this out because Fp6, Fp12 implement it
    // and it's unclear what to return in there.
    cmov(a, b, condition) {
      abool2(condition, "condition");
      return condition ? b : a;
    }
  };
  function Field(ORDER, opts = {}) {
    Object.freeze(_Field.prototype);
    return new _Field(ORDER, opts);
  }

  // node_modules/@noble/curves/abstract/curve.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  var _0n4 = /* @__PURE__ */ BigInt(0);
  var _1n5 = /* @__PURE__ */ BigInt(1);
  var _4n2 = /* @__PURE__ */ BigInt(4);
  var BLIND_BYTES = 16;
  var BLIND_BITS = 128;
  var FW_WINDOW = 5;
  var TABLE_BYTES_MAX = /* @__PURE__ */ (() => 2 ** 31)();
  function validatePointCons(Point) {
    const pc = Point;
    if (typeof pc !== "function")
      throw new TypeError('"Point" expected constructor, got type=' + typeof Point);
    afunction(pc.fromAffine, "Point.fromAffine");
    afunction(pc.fromBytes, "Point.fromBytes");
    afunction(pc.fromHex, "Point.fromHex");
    aobject2(pc.BASE, "Point.BASE");
    aobject2(pc.ZERO, "Point.ZERO");
    validateField(pc.Fp);
    validateField(pc.Fn);
  }
  function normalizeZ(c, points) {
    validatePointCons(c);
    validateMSMPoints(points, c);
    const invertedZs = FpInvertBatch(c.Fp, points.map((p) => p.Z));
    return points.map((p, i) => c.fromAffine(p.toAffine(invertedZs[i])));
  }
  function validateW(W, bits, min = 1) {
    if (!Number.isSafeInteger(W) || W < min || W > bits)
      throw new Error("invalid window size, expected [" + min + ".." + bits + "], got W=" + W);
  }
  function validateTableBytes(numPoints, fpBytes) {
    const bytes = numPoints * (4 * fpBytes + 128);
    if (bytes > TABLE_BYTES_MAX)
      throw new Error("invalid window size: table would need ~" + Math.ceil(bytes / 2 ** 20) + " MiB, max " + TABLE_BYTES_MAX / 2 ** 20 + " MiB");
  }
  function probeRandomBytes(randomBytes4, length) {
    if (randomBytes4 === void 0)
      return void 0;
    afunction(randomBytes4, "randomBytes");
    try {
      const probe = randomBytes4(length);
      if (!isBytes3(probe) || probe.length !== length)
        return void 0;
    } catch {
      return void 0;
    }
    return randomBytes4;
  }
  function validateMSMPoints(points, c) {
    aarray(points, "points");
    points.forEach((p, i) => {
      if (!(p instanceof c))
        throw new Error("invalid point at index " + i);
    });
  }
  function validateMSMScalars(scalars, field, maxScalar) {
    if (!Array.isArray(scalars))
      throw new Error("array of scalars expected");
    scalars.forEach((s, i) => {
      const ok = maxScalar === void 0 ? field.isValid(s) : isPosBig2(s) && s < maxScalar;
      if (!ok)
        throw new Error("invalid scalar at index " + i);
    });
  }
  var pointWindowSizes = /* @__PURE__ */ new WeakMap();
  function getWindowSize(P) {
    return pointWindowSizes.get(P) || 1;
  }
  function oddMultiples(p, size) {
    const dbl = p.double();
    const t = [p];
    for (let j = 1; j < size; j++)
      t.push(t[j - 1].add(dbl));
    return t;
  }
  function wnafDigits(n, W) {
    const size = 2 ** W;
    const half = size / 2;
    const mask = BigInt(size - 1);
    const d = [];
    while (n > _0n4) {
      let w = 0;
      if (n & _1n5) {
        w = Number(n & mask);
        if (w >= half)
          w -= size;
        n -= BigInt(w);
      }
      d.push(w);
      n >>= _1n5;
    }
    return d;
  }
  function signedWindowDigits(n, W, windows) {
    const size = 2 ** W;
    const half = size / 2;
    const mask = BigInt(size - 1);
    const shiftBy = BigInt(W);
    const d = [];
    for (let w = 0; w < windows; w++) {
      let v = Number(n & mask);
      n >>= shiftBy;
      if (v > half) {
        v -= size;
        n += _1n5;
      }
      d.push(v);
    }
    if (n !== _0n4)
      throw new Error("invalid wnaf");
    return d;
  }
  function wnafWalk(zero, tables, digits) {
    let max = 0;
    for (const d of digits)
      max = Math.max(max, d.length);
    let acc = zero;
    for (let bit = max - 1; bit >= 0; bit--) {
      if (bit !== max - 1)
        acc = acc.double();
      for (let i = 0; i < digits.length; i++) {
        const w = digits[i][bit];
        if (w) {
          const item = tables[i][Math.abs(w) - 1 >> 1];
          acc = acc.add(w < 0 ? item.negate() : item);
        }
      }
    }
    return acc;
  }
  var ScalarMultiplier = class {
    // Parametrized with a given Point class (not individual point)
    constructor(Point, randomBytes4) {
      __publicField(this, "Point");
      __publicField(this, "BASE");
      __publicField(this, "ZERO");
      __publicField(this, "randomBytes");
      __publicField(this, "wnafPrecomputes", /* @__PURE__ */ new WeakMap());
      __publicField(this, "baseCanBeBlinded");
      __publicField(this, "bits");
      validatePointCons(Point);
      this.randomBytes = probeRandomBytes(randomBytes4, BLIND_BYTES);
      this.Point = Point;
      this.BASE = Point.BASE;
      this.ZERO = Point.ZERO;
      this.bits = Point.Fn.BITS;
    }
    /**
     * Creates a signed fixed-window wNAF precomputation table: for every window w, the
     * multiples `[1..2^(W−1)]⋅2^(w⋅W)⋅P`, flattened. All doublings are baked into the table,
     * so cached multiplication is additions-only. `windows = ceil(bits/W) + 1`: the extra
     * window absorbs the final carry of signed-digit recoding.
     * For a 256-bit curve and W=6, the table is 44⋅32 = 1408 points.
     * @param point - Point instance
     * @param W - window size
     * @param bits - scalar bitlength the table must cover
     */
    buildWnafTable(point, W, bits) {
      const windows = Math.ceil(bits / W) + 1;
      const half = 2 ** (W - 1);
      const comp = [];
      let base = point;
      for (let w = 0; w < windows; w++) {
        let acc = base;
        for (let i = 0; i < half; i++) {
          comp.push(acc);
          acc = acc.add(base);
        }
        base = comp[comp.length - 1].double();
      }
      return { W, bits, windows, comp };
    }
    /**
     * Implements ec multiplication using precomputed signed fixed-window wNAF tables.
     * Constant-time: fixed window count with one table addition per window — zero digits feed
     * the fake accumulator — and no doublings; the lookup scans the whole window slice.
     * Scalar bounds are validated by the public entry points ({@link ScalarMultiplier.mulCT},
     * {@link ScalarMultiplier.mulCTBlinded}, {@link ScalarMultiplier.mulUnsafe});
     * signedWindowDigits throws if `n` exceeds the table.
     * @returns real and fake (for const-time) points
     */
    wnafCachedCT(precomputes, n) {
      const { W, windows, comp } = precomputes;
      const half = 2 ** (W - 1);
      const digits = signedWindowDigits(n, W, windows);
      let p = this.ZERO;
      let f = this.BASE;
      for (let w = 0; w < windows; w++) {
        const digit = digits[w];
        const start = w * half;
        const idx = Math.abs(digit) - 1;
        let sel = comp[start];
        for (let i = 1; i < half; i++)
          sel = i === idx ? comp[start + i] : sel;
        const neg = sel.negate();
        if (digit === 0)
          f = f.add(comp[start]);
        else
          p = p.add(digit < 0 ? neg : sel);
      }
      return { p, f };
    }
    // Cache key is point identity plus (W, bits); at most two entries exist per point (public-width
    // `Fn.BITS` and blinded `Fn.BITS + BLIND_BITS`). Callers must not reuse the same point with
    // incompatible `transform(...)` layouts and expect a separate cache entry.
    getWnafPrecomputes(W, point, bits, transform) {
      let entries = this.wnafPrecomputes.get(point);
      let comp = entries?.find((entry) => entry.W === W && entry.bits === bits);
      if (!comp) {
        comp = this.buildWnafTable(point, W, bits);
        if (typeof transform === "function")
          comp = { ...comp, comp: transform(comp.comp) };
        if (!entries) {
          entries = [];
          this.wnafPrecomputes.set(point, entries);
        }
        entries.push(comp);
      }
      return comp;
    }
    assertPoint(point) {
      if (!(point instanceof this.Point))
        throw new TypeError('"point" expected Point instance, got type=' + typeof point);
    }
    // Shared prologue of the constant-time entry points. Rejects scalar 0: in key/signature-style
    // callers a zero scalar means broken upstream plumbing, and concrete Points already reject it.
    // Uses inRange instead of Fn.isValidNot0: validateField() only certifies the arithmetic subset.
    validateMulInput(point, scalar) {
      this.assertPoint(point);
      if (!inRange2(scalar, _1n5, this.Point.Fn.ORDER))
        throw new Error("invalid scalar");
    }
    // Constant-time dispatch shared by mulCT / mulCTBlinded. Un-precomputed points (W===1, e.g.
    // ECDH peer keys) skip building a throwaway cached table in favor of a small fixed-window
    // multiply. `n` must be < 2^bits.
    runCT(point, n, bits, transform) {
      const W = getWindowSize(point);
      if (W === 1)
        return this.fixedWindowCT(point, n, bits);
      return this.wnafCachedCT(this.getWnafPrecomputes(W, point, bits, transform), n);
    }
    mulCT(point, scalar, transform) {
      this.validateMulInput(point, scalar);
      return this.runCT(point, scalar, this.bits, transform);
    }
    mulCTBlinded(point, scalar, transform) {
      this.validateMulInput(point, scalar);
      if (this.randomBytes === void 0)
        throw new Error("randomBytes is required for scalar blinding");
      const bits = this.Point.Fn.BITS + BLIND_BITS;
      const blind = this.randomBytes(BLIND_BYTES);
      if (!isBytes3(blind) || blind.length !== BLIND_BYTES)
        throw new Error("randomBytes returned invalid byte array");
      blind[0] = blind[0] & 63 | 128;
      const n = scalar + bytesToNumberBE(blind) * this.Point.Fn.ORDER;
      return this.runCT(point, n, bits, transform);
    }
    /**
     * Constant-time multiplication `n*point` for an un-precomputed point, via a small fixed window.
     * A cached wNAF table only pays off when reused; a flat 2^FW_WINDOW table (`size-1` adds) is
     * far cheaper to build for a single use. The point-operation sequence is independent of `n`:
     * build the table, then per window exactly FW_WINDOW doublings, a data-oblivious scan over
     * every table entry, and one addition (adds the identity when the window digit is 0 — never
     * skipped).
     *
     * `n` must be `< 2^bits`. Assumes complete addition (adding the identity costs the same as any
     * add), which holds for the Weierstrass/Edwards point types used here. The table is left in
     * projective form (no normalizeZ): normalizing this small a table costs more than the
     * mixed-add savings it would buy for a single multiply.
     * @returns real point `p`; `f` duplicates it only to match {@link wnafCachedCT}'s return shape
     * (this path needs no fake accumulator — its op-count is already scalar-independent).
     */
    fixedWindowCT(point, n, bits) {
      const W = FW_WINDOW;
      const size = 1 << W;
      const mask = bitMask(W);
      const table = new Array(size);
      table[0] = this.ZERO;
      for (let i = 1; i < size; i++)
        table[i] = table[i - 1].add(point);
      const windows = Math.ceil(bits / W);
      let acc = this.ZERO;
      for (let window2 = windows - 1; window2 >= 0; window2--) {
        if (window2 !== windows - 1)
          for (let d = 0; d < W; d++)
            acc = acc.double();
        const digit = Number(n >> BigInt(window2 * W) & mask);
        let sel = table[0];
        for (let i = 1; i < size; i++)
          sel = i === digit ? table[i] : sel;
        acc = acc.add(sel);
      }
      return { p: acc, f: acc };
    }
    shouldBlind(point, cofactor) {
      if (this.randomBytes === void 0)
        return false;
      if (cofactor === _1n5)
        return true;
      if (point !== this.BASE)
        return false;
      if (this.baseCanBeBlinded === void 0)
        this.baseCanBeBlinded = this.mulUnsafe(this.BASE, this.Point.Fn.ORDER).is0();
      return this.baseCanBeBlinded;
    }
    mulSecret(point, scalar, cofactor, transform) {
      return this.shouldBlind(point, cofactor) ? this.mulCTBlinded(point, scalar, transform) : this.mulCT(point, scalar, transform);
    }
    mulUnsafe(point, scalar, transform) {
      this.assertPoint(point);
      if (!isPosBig2(scalar))
        throw new Error("invalid scalar");
      const W = getWindowSize(point);
      if (W === 1 || scalar >= this.Point.Fn.ORDER)
        return mulAddUnsafe(this.Point, [point], [scalar], true);
      const precomputes = this.getWnafPrecomputes(W, point, this.bits, transform);
      return this.wnafCachedCT(precomputes, scalar).p;
    }
    // Remembers the window size used for precomputed wNAF multiplication of the given point
    // and drops any previously built tables. Usually only the base point is precomputed.
    // W=1 resets the point to the un-precomputed (table-less) paths.
    // W is additionally capped so tables stay under ~2 GiB ({@link TABLE_BYTES_MAX}).
    setWindowSize(point, W) {
      this.assertPoint(point);
      validateW(W, this.bits);
      const windows = Math.ceil((this.bits + BLIND_BITS) / W) + 1;
      validateTableBytes(windows * 2 ** (W - 1), this.Point.Fp.BYTES);
      pointWindowSizes.set(point, W);
      this.wnafPrecomputes.delete(point);
    }
    // True when a window size is set: tables themselves are built lazily on first multiply.
    hasWindowSize(point) {
      return getWindowSize(point) !== 1;
    }
  };
  function mulAddUnsafe(c, points, scalars, allowOversized = false) {
    validatePointCons(c);
    validateMSMPoints(points, c);
    abool2(allowOversized, "allowOversized");
    validateMSMScalars(scalars, c.Fn, allowOversized ? c.Fn.ORDER ** _4n2 : void 0);
    if (points.length !== scalars.length)
      throw new Error("arrays of points and scalars must have equal length");
    const tables = points.map((p) => oddMultiples(p, 4));
    const digits = scalars.map((n) => wnafDigits(n, 4));
    return wnafWalk(c.ZERO, tables, digits);
  }
  function createField(order, field, isLE2) {
    if (field) {
      if (field.ORDER !== order)
        throw new Error("Field.ORDER must match order: Fp == p, Fn == n");
      validateField(field);
      return field;
    } else {
      return Field(order, { isLE: isLE2 });
    }
  }
  function createCurveFields(type, CURVE, curveOpts = {}, FpFnLE) {
    if (type !== "weierstrass" && type !== "edwards")
      throw new Error('expected curve type "weierstrass" or "edwards"');
    if (FpFnLE === void 0)
      FpFnLE = type === "edwards";
    if (!CURVE || typeof CURVE !== "object")
      throw new Error(`expected valid ${type} CURVE object`);
    validateObject2(curveOpts);
    for (const p of ["p", "n", "h"]) {
      const val = CURVE[p];
      if (!(isPosBig2(val) && val !== _0n4))
        throw new Error(`CURVE.${p} must be positive bigint`);
    }
    const Fp2 = createField(CURVE.p, curveOpts.Fp, FpFnLE);
    const Fn = createField(CURVE.n, curveOpts.Fn, FpFnLE);
    const _b = type === "weierstrass" ? "b" : "d";
    const params = ["Gx", "Gy", "a", _b];
    for (const p of params) {
      if (!Fp2.isValid(CURVE[p]))
        throw new Error(`CURVE.${p} must be valid field element of CURVE.Fp`);
    }
    CURVE = Object.freeze(Object.assign({}, CURVE));
    return { CURVE, Fp: Fp2, Fn };
  }
  function createKeygen2(randomSecretKey, getPublicKey) {
    return function keygen(seed) {
      const secretKey = randomSecretKey(seed);
      return { secretKey, publicKey: getPublicKey(secretKey) };
    };
  }

  // node_modules/@noble/curves/abstract/edwards.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  var _0n5 = /* @__PURE__ */ BigInt(0);
  var _1n6 = /* @__PURE__ */ BigInt(1);
  var _2n4 = /* @__PURE__ */ BigInt(2);
  var _4n3 = /* @__PURE__ */ BigInt(4);
  var _8n2 = /* @__PURE__ */ BigInt(8);
  function isEdValidXY(Fp2, CURVE, x, y) {
    const x2 = Fp2.sqr(x);
    const y2 = Fp2.sqr(y);
    const left = Fp2.add(Fp2.mul(CURVE.a, x2), y2);
    const right = Fp2.add(Fp2.ONE, Fp2.mul(CURVE.d, Fp2.mul(x2, y2)));
    return Fp2.eql(left, right);
  }
  function edwards(params, extraOpts = {}) {
    validateObject2(extraOpts, {}, {}, "extraOpts");
    const opts = extraOpts;
    const validated = createCurveFields("edwards", params, opts, opts.FpFnLE);
    const { Fp: Fp2, Fn } = validated;
    let CURVE = validated.CURVE;
    const { h: cofactor } = CURVE;
    if (FpLegendre(Fp2, CURVE.a) !== 1)
      throw new Error("edwards: CURVE.a must be a square in Fp for complete addition formulas");
    if (FpLegendre(Fp2, CURVE.d) !== -1)
      throw new Error("edwards: CURVE.d must be a non-square in Fp for complete addition formulas");
    validateObject2(opts, {}, { uvRatio: "function", randomBytes: "function" });
    const randomBytes4 = opts.randomBytes === void 0 ? randomBytes2 : opts.randomBytes;
    const MASK = _2n4 << BigInt(Fp2.BYTES * 8) - _1n6;
    function isOdd(n) {
      if (!Fp2.isOdd)
        throw new Error("Field does not have .isOdd()");
      return Fp2.isOdd(n);
    }
    const uvRatio2 = opts.uvRatio === void 0 ? (u, v) => {
      try {
        return { isValid: true, value: Fp2.sqrt(Fp2.div(u, v)) };
      } catch (e) {
        return { isValid: false, value: _0n5 };
      }
    } : opts.uvRatio;
    if (!isEdValidXY(Fp2, CURVE, CURVE.Gx, CURVE.Gy))
      throw new Error("bad curve params: generator point");
    const mulA = Fp2.eql(CURVE.a, Fp2.neg(Fp2.ONE)) ? (x) => Fp2.neg(x) : Fp2.eql(CURVE.a, Fp2.ONE) ? (x) => x : (x) => Fp2.mul(CURVE.a, x);
    function acoord(title, n, banZero = false) {
      const min = banZero ? _1n6 : _0n5;
      aInRange2("coordinate " + title, n, min, MASK);
      return n;
    }
    function aedpoint(other) {
      if (!(other instanceof Point))
        throw new Error("EdwardsPoint expected");
    }
    const _Point = class _Point {
      constructor(X, Y, Z, T) {
        __publicField(this, "X");
        __publicField(this, "Y");
        __publicField(this, "Z");
        __publicField(this, "T");
        this.X = acoord("x", X);
        this.Y = acoord("y", Y);
        this.Z = acoord("z", Z, true);
        this.T = acoord("t", T);
        Object.freeze(this);
      }
      static CURVE() {
        return CURVE;
      }
      /**
       * Create one extended Edwards point from affine coordinates.
       * Does NOT validate that the point is on-curve or torsion-free.
       * Use `.assertValidity()` on adversarial inputs.
       */
      static fromAffine(p) {
        if (p instanceof _Point)
          throw new Error("extended point not allowed");
        const { x, y } = p || {};
        acoord("x", x);
        acoord("y", y);
        return new _Point(x, y, Fp2.ONE, Fp2.mul(x, y));
      }
      // Uses algo from RFC8032 5.1.3.
      static fromBytes(bytes, zip215 = false) {
        const len = Fp2.BYTES;
        const { a, d } = CURVE;
        bytes = copyBytes2(abytes3(bytes, len, "point"));
        abool2(zip215, "zip215");
        const normed = copyBytes2(bytes);
        const lastByte = bytes[len - 1];
        normed[len - 1] = lastByte & ~128;
        const y = bytesToNumberLE2(normed);
        const max = zip215 ? MASK : Fp2.ORDER;
        aInRange2("point.y", y, _0n5, max);
        const y2 = Fp2.sqr(y);
        const u = Fp2.sub(y2, Fp2.ONE);
        const v = Fp2.sub(Fp2.mulN(d, y2), a);
        let { isValid, value: x } = uvRatio2(u, v);
        if (!isValid)
          throw new Error("bad point: invalid y coordinate");
        const isXOdd = isOdd(x);
        const isLastByteOdd = (lastByte & 128) !== 0;
        if (!zip215 && Fp2.is0(x) && isLastByteOdd)
          throw new Error("bad point: x=0 and x_0=1");
        if (isLastByteOdd !== isXOdd)
          x = Fp2.neg(x);
        return _Point.fromAffine({ x, y });
      }
      static fromHex(hex, zip215 = false) {
        return _Point.fromBytes(hexToBytes4(hex), zip215);
      }
      get x() {
        return this.toAffine().x;
      }
      get y() {
        return this.toAffine().y;
      }
      precompute(windowSize = 6, isLazy = true) {
        wnaf.setWindowSize(this, windowSize);
        if (!isLazy)
          this.multiply(_2n4);
        return this;
      }
      // Useful in fromAffine() - not for fromBytes(), which always created valid points.
      assertValidity() {
        const p = this;
        const { a, d } = CURVE;
        if (p.is0())
          throw new Error("bad point: ZERO");
        const { X, Y, Z, T } = p;
        const X2 = Fp2.sqr(X);
        const Y2 = Fp2.sqr(Y);
        const Z2 = Fp2.sqr(Z);
        const Z4 = Fp2.sqr(Z2);
        const aX2 = Fp2.mul(X2, a);
        const left = Fp2.mul(Fp2.add(aX2, Y2), Z2);
        const right = Fp2.add(Z4, Fp2.mul(d, Fp2.mul(X2, Y2)));
        if (!Fp2.eql(left, right))
          throw new Error("bad point: equation left != right (1)");
        const XY = Fp2.mul(X, Y);
        const ZT = Fp2.mul(Z, T);
        if (!Fp2.eql(XY, ZT))
          throw new Error("bad point: equation left != right (2)");
      }
      // Compare one point to another.
      equals(other) {
        aedpoint(other);
        const { X: X1, Y: Y1, Z: Z1 } = this;
        const { X: X2, Y: Y2, Z: Z2 } = other;
        const X1Z2 = Fp2.mul(X1, Z2);
        const X2Z1 = Fp2.mul(X2, Z1);
        const Y1Z2 = Fp2.mul(Y1, Z2);
        const Y2Z1 = Fp2.mul(Y2, Z1);
        return Fp2.eql(X1Z2, X2Z1) && Fp2.eql(Y1Z2, Y2Z1);
      }
      is0() {
        return this.equals(_Point.ZERO);
      }
      negate() {
        return new _Point(Fp2.neg(this.X), this.Y, this.Z, Fp2.neg(this.T));
      }
      // Fast algo for doubling Extended Point.
      // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#doubling-dbl-2008-hwcd
      // Cost: 4M + 4S + 1*a + 6add + 1*2.
      double() {
        const { X: X1, Y: Y1, Z: Z1 } = this;
        const A = Fp2.sqr(X1);
        const B = Fp2.sqr(Y1);
        const C = Fp2.mul(Fp2.sqr(Z1), _2n4);
        const D = mulA(A);
        const x1y1 = Fp2.addN(X1, Y1);
        const E = Fp2.sub(Fp2.subN(Fp2.sqr(x1y1), A), B);
        const G = Fp2.addN(D, B);
        const F = Fp2.subN(G, C);
        const H = Fp2.subN(D, B);
        const X3 = Fp2.mul(E, F);
        const Y3 = Fp2.mul(G, H);
        const T3 = Fp2.mul(E, H);
        const Z3 = Fp2.mul(F, G);
        return new _Point(X3, Y3, Z3, T3);
      }
      // Fast algo for adding 2 Extended Points.
      // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#addition-add-2008-hwcd
      // Cost: 9M + 1*a + 1*d + 7add.
      add(other) {
        aedpoint(other);
        const { d } = CURVE;
        const { X: X1, Y: Y1, Z: Z1, T: T1 } = this;
        const { X: X2, Y: Y2, Z: Z2, T: T2 } = other;
        const A = Fp2.mul(X1, X2);
        const B = Fp2.mul(Y1, Y2);
        const C = Fp2.mul(Fp2.mulN(T1, d), T2);
        const D = Fp2.mul(Z1, Z2);
        const E = Fp2.sub(Fp2.subN(Fp2.mulN(Fp2.addN(X1, Y1), Fp2.addN(X2, Y2)), A), B);
        const F = Fp2.subN(D, C);
        const G = Fp2.addN(D, C);
        const H = Fp2.sub(B, mulA(A));
        const X3 = Fp2.mul(E, F);
        const Y3 = Fp2.mul(G, H);
        const T3 = Fp2.mul(E, H);
        const Z3 = Fp2.mul(F, G);
        return new _Point(X3, Y3, Z3, T3);
      }
      subtract(other) {
        aedpoint(other);
        return this.add(other.negate());
      }
      // Constant-time multiplication.
      multiply(scalar) {
        if (!Fn.isValidNot0(scalar))
          throw new RangeError("invalid scalar: expected 1 <= sc < curve.n");
        const { p, f } = wnaf.mulSecret(this, scalar, cofactor, normalize);
        return normalize([p, f])[0];
      }
      // Non-constant-time multiplication. Uses double-and-add algorithm.
      // It's faster, but should only be used when you don't care about
      // an exposed private key e.g. sig verification.
      // Keeps the same subgroup-scalar contract: 0 is allowed for public-scalar callers, but
      // n and larger values are rejected instead of being reduced mod n to the identity point.
      multiplyUnsafe(scalar) {
        if (!Fn.isValid(scalar))
          throw new RangeError("invalid scalar: expected 0 <= sc < curve.n");
        if (scalar === _0n5)
          return _Point.ZERO;
        if (this.is0() || scalar === _1n6)
          return this;
        return wnaf.mulUnsafe(this, scalar, normalize);
      }
      // Checks if point is of small order.
      // If you add something to small order point, you will have "dirty"
      // point with torsion component.
      // Clears cofactor and checks if the result is 0.
      isSmallOrder() {
        return this.clearCofactor().is0();
      }
      // Multiplies point by curve order and checks if the result is 0.
      // Returns `false` is the point is dirty.
      isTorsionFree() {
        return wnaf.mulUnsafe(this, CURVE.n).is0();
      }
      // Converts Extended point to default (x, y) coordinates.
      // Can accept precomputed Z^-1 - for example, from invertBatch.
      toAffine(invertedZ) {
        const p = this;
        let iz = invertedZ;
        if (iz != null && typeof iz !== "bigint")
          throw new TypeError('"invertedZ" expected bigint, got type=' + typeof iz);
        const { X, Y, Z } = p;
        const is0 = p.is0();
        if (iz == null)
          iz = is0 ? Fp2.create(_8n2) : Fp2.inv(Z);
        const x = Fp2.mul(X, iz);
        const y = Fp2.mul(Y, iz);
        const zz = Fp2.mul(Z, iz);
        if (is0)
          return { x: Fp2.ZERO, y: Fp2.ONE };
        if (!Fp2.eql(zz, Fp2.ONE))
          throw new Error("invZ was invalid");
        return { x, y };
      }
      clearCofactor() {
        if (cofactor === _1n6)
          return this;
        if (cofactor === _2n4)
          return this.double();
        if (cofactor === _4n3)
          return this.double().double();
        if (cofactor === _8n2)
          return this.double().double().double();
        return this.multiplyUnsafe(cofactor);
      }
      toBytes() {
        const { x, y } = this.toAffine();
        const bytes = Fp2.toBytes(y);
        bytes[bytes.length - 1] |= isOdd(x) ? 128 : 0;
        return bytes;
      }
      toHex() {
        return bytesToHex3(this.toBytes());
      }
      toString() {
        return `<Point ${this.is0() ? "ZERO" : this.toHex()}>`;
      }
    };
    __publicField(_Point, "BASE", new _Point(CURVE.Gx, CURVE.Gy, Fp2.ONE, Fp2.mul(CURVE.Gx, CURVE.Gy)));
    __publicField(_Point, "ZERO", new _Point(Fp2.ZERO, Fp2.ONE, Fp2.ONE, Fp2.ZERO));
    __publicField(_Point, "Fp", Fp2);
    __publicField(_Point, "Fn", Fn);
    let Point = _Point;
    const normalize = (points) => normalizeZ(Point, points);
    const wnaf = new ScalarMultiplier(Point, randomBytes4);
    if (wnaf.bits >= 6)
      Point.BASE.precompute(6);
    Object.freeze(Point.prototype);
    Object.freeze(Point);
    return Point;
  }
  function eddsa(Point, cHash, eddsaOpts = {}) {
    validatePointCons(Point);
    if (typeof cHash !== "function")
      throw new Error('"hash" function param is required');
    const hash = cHash;
    const opts = eddsaOpts;
    validateObject2(opts, {}, {
      adjustScalarBytes: "function",
      randomBytes: "function",
      domain: "function",
      prehash: "function",
      zip215: "boolean",
      mapToCurve: "function",
      toMontgomery: "function",
      toMontgomerySecret: "function"
    });
    const { prehash } = opts;
    const { BASE, Fp: Fp2, Fn } = Point;
    const outputLen = hash.outputLen;
    const expectedLen = 2 * Fp2.BYTES;
    if (outputLen !== void 0) {
      asafenumber(outputLen, "hash.outputLen");
      if (outputLen !== expectedLen)
        throw new Error(`hash.outputLen must be ${expectedLen}, got ${outputLen}`);
    }
    const randomBytes4 = opts.randomBytes === void 0 ? randomBytes2 : opts.randomBytes;
    const toMontgomery2 = opts.toMontgomery;
    const toMontgomerySecret2 = opts.toMontgomerySecret;
    const adjustScalarBytes3 = opts.adjustScalarBytes === void 0 ? (bytes) => bytes : opts.adjustScalarBytes;
    const domain = opts.domain === void 0 ? (data, ctx, phflag) => {
      abool2(phflag, "phflag");
      if (ctx.length || phflag)
        throw new Error("Contexts/pre-hash are not supported");
      return data;
    } : opts.domain;
    function modN_LE(hash2) {
      return Fn.create(bytesToNumberLE2(hash2));
    }
    function getPrivateScalar(key) {
      const len = lengths.secretKey;
      abytes3(key, lengths.secretKey, "secretKey");
      const hashed = abytes3(hash(key), 2 * len, "hashedSecretKey");
      const head = adjustScalarBytes3(hashed.slice(0, len));
      const prefix = hashed.slice(len, 2 * len);
      const scalar = modN_LE(head);
      return { head, prefix, scalar };
    }
    function getExtendedPublicKey(secretKey) {
      const { head, prefix, scalar } = getPrivateScalar(secretKey);
      const point = BASE.multiply(scalar);
      const pointBytes = point.toBytes();
      return { head, prefix, scalar, point, pointBytes };
    }
    function getPublicKey(secretKey) {
      return getExtendedPublicKey(secretKey).pointBytes;
    }
    function hashDomainToScalar(context2 = Uint8Array.of(), ...msgs) {
      const msg = concatBytes2(...msgs);
      return modN_LE(hash(domain(msg, abytes3(context2, void 0, "context"), !!prehash)));
    }
    function sign(msg, secretKey, options = {}) {
      validateObject2(options, {}, {}, "options");
      msg = copyBytes2(abytes3(msg, void 0, "message"));
      if (prehash)
        msg = prehash(msg);
      const { prefix, scalar, pointBytes } = getExtendedPublicKey(secretKey);
      const r = hashDomainToScalar(options.context, prefix, msg);
      const R = BASE.multiply(r).toBytes();
      const k = hashDomainToScalar(options.context, R, pointBytes, msg);
      const s = Fn.create(r + k * scalar);
      if (!Fn.isValid(s))
        throw new Error("sign failed: invalid s");
      const rs = concatBytes2(R, Fn.toBytes(s));
      return abytes3(rs, lengths.signature, "result");
    }
    const verifyOpts = {
      zip215: opts.zip215
    };
    function verify(sig, msg, publicKey, options = verifyOpts) {
      validateObject2(options);
      const { context: context2 } = options;
      const zip215 = options.zip215 === void 0 ? !!verifyOpts.zip215 : options.zip215;
      const len = lengths.signature;
      sig = abytes3(sig, len, "signature");
      msg = abytes3(msg, void 0, "message");
      publicKey = abytes3(publicKey, lengths.publicKey, "publicKey");
      if (zip215 !== void 0)
        abool2(zip215, "zip215");
      if (prehash)
        msg = prehash(msg);
      const mid = len / 2;
      const r = sig.subarray(0, mid);
      const s = bytesToNumberLE2(sig.subarray(mid, len));
      let A, R, SB;
      try {
        A = Point.fromBytes(publicKey, zip215);
        R = Point.fromBytes(r, zip215);
        SB = BASE.multiplyUnsafe(s);
      } catch (error) {
        return false;
      }
      if (!zip215 && A.isSmallOrder())
        return false;
      const k = hashDomainToScalar(context2, r, publicKey, msg);
      const RkA = R.add(A.multiplyUnsafe(k));
      return RkA.subtract(SB).clearCofactor().is0();
    }
    const _size = Fp2.BYTES;
    const lengths = {
      secretKey: _size,
      publicKey: _size,
      signature: 2 * _size,
      seed: _size
    };
    function randomSecretKey(seed) {
      seed = seed === void 0 ? randomBytes4(lengths.seed) : seed;
      return abytes3(seed, lengths.seed, "seed");
    }
    function isValidSecretKey(key) {
      return isBytes3(key) && key.length === lengths.secretKey;
    }
    function isValidPublicKey(key, zip215) {
      try {
        return !!Point.fromBytes(key, zip215 === void 0 ? verifyOpts.zip215 : zip215);
      } catch (error) {
        return false;
      }
    }
    const utils = {
      getExtendedPublicKey,
      randomSecretKey,
      isValidSecretKey,
      isValidPublicKey,
      /** Converts an Edwards public key to a companion Montgomery public key. */
      toMontgomery(publicKey) {
        if (toMontgomery2 === void 0)
          throw new Error("Montgomery conversion is not supported for this curve");
        return toMontgomery2(Point.fromBytes(publicKey));
      },
      toMontgomerySecret(secretKey) {
        if (toMontgomerySecret2 === void 0)
          throw new Error("Montgomery conversion is not supported for this curve");
        return toMontgomerySecret2(secretKey);
      }
    };
    Object.freeze(lengths);
    Object.freeze(utils);
    return Object.freeze({
      keygen: createKeygen2(randomSecretKey, getPublicKey),
      getPublicKey,
      sign,
      verify,
      utils,
      Point,
      lengths
    });
  }

  // node_modules/@noble/curves/ed25519.js
  /*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
  var _1n7 = /* @__PURE__ */ BigInt(1);
  var _2n5 = /* @__PURE__ */ BigInt(2);
  var _5n3 = /* @__PURE__ */ BigInt(5);
  var _8n3 = /* @__PURE__ */ BigInt(8);
  var ed25519_CURVE_p2 = /* @__PURE__ */ BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
  var ed25519_CURVE = /* @__PURE__ */ (() => ({
    p: ed25519_CURVE_p2,
    n: BigInt("0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed"),
    h: _8n3,
    a: BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"),
    d: BigInt("0x52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3"),
    Gx: BigInt("0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a"),
    Gy: BigInt("0x6666666666666666666666666666666666666666666666666666666666666658")
  }))();
  function ed25519_pow_2_252_32(x) {
    const _10n = BigInt(10), _20n = BigInt(20), _40n = BigInt(40), _80n = BigInt(80);
    const P = ed25519_CURVE_p2;
    const x2 = x * x % P;
    const b2 = x2 * x % P;
    const b4 = pow22(b2, _2n5, P) * b2 % P;
    const b5 = pow22(b4, _1n7, P) * x % P;
    const b10 = pow22(b5, _5n3, P) * b5 % P;
    const b20 = pow22(b10, _10n, P) * b10 % P;
    const b40 = pow22(b20, _20n, P) * b20 % P;
    const b80 = pow22(b40, _40n, P) * b40 % P;
    const b160 = pow22(b80, _80n, P) * b80 % P;
    const b240 = pow22(b160, _80n, P) * b80 % P;
    const b250 = pow22(b240, _10n, P) * b10 % P;
    const pow_p_5_8 = pow22(b250, _2n5, P) * x % P;
    return { pow_p_5_8, b2 };
  }
  function adjustScalarBytes2(bytes) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    return bytes;
  }
  var ED25519_SQRT_M1 = /* @__PURE__ */ BigInt("19681161376707505956807079304988542015446066515923890162744021073123829784752");
  function uvRatio(u, v) {
    const P = ed25519_CURVE_p2;
    const v3 = mod2(v * v * v, P);
    const v7 = mod2(v3 * v3 * v, P);
    const pow3 = ed25519_pow_2_252_32(u * v7).pow_p_5_8;
    let x = mod2(u * v3 * pow3, P);
    const vx2 = mod2(v * x * x, P);
    const root1 = x;
    const root2 = mod2(x * ED25519_SQRT_M1, P);
    const useRoot1 = vx2 === u;
    const useRoot2 = vx2 === mod2(-u, P);
    const noRoot = vx2 === mod2(-u * ED25519_SQRT_M1, P);
    if (useRoot1)
      x = root1;
    if (useRoot2 || noRoot)
      x = root2;
    if (isNegativeLE(x, P))
      x = mod2(-x, P);
    return { isValid: useRoot1 || useRoot2, value: x };
  }
  var ed25519_Point = /* @__PURE__ */ edwards(ed25519_CURVE, { uvRatio });
  var Fp = /* @__PURE__ */ (() => ed25519_Point.Fp)();
  function toMontgomery(point) {
    const { y } = point;
    return Fp.toBytes(Fp.div(_1n7 + y, _1n7 - y));
  }
  function toMontgomerySecret(secretKey) {
    const size = ed25519_Point.Fp.BYTES;
    abytes2(secretKey, size);
    return adjustScalarBytes2(sha5122(secretKey.subarray(0, size))).subarray(0, size);
  }
  function ed(opts) {
    return eddsa(ed25519_Point, sha5122, Object.assign({ adjustScalarBytes: adjustScalarBytes2, toMontgomery, toMontgomerySecret, zip215: true }, opts));
  }
  var ed25519 = /* @__PURE__ */ ed({});

  // node_modules/@noble/hashes/hmac.js
  var _HMAC2 = class {
    constructor(hash, key) {
      __publicField(this, "oHash");
      __publicField(this, "iHash");
      __publicField(this, "blockLen");
      __publicField(this, "outputLen");
      __publicField(this, "canXOF", false);
      __publicField(this, "finished", false);
      __publicField(this, "destroyed", false);
      ahash2(hash);
      abytes2(key, void 0, "key");
      this.iHash = hash.create();
      if (typeof this.iHash.update !== "function")
        throw new Error("expected Hash instance");
      this.blockLen = this.iHash.blockLen;
      this.outputLen = this.iHash.outputLen;
      const blockLen = this.blockLen;
      const pad2 = new Uint8Array(blockLen);
      pad2.set(key.length > blockLen ? hash.create().update(key).digest() : key);
      for (let i = 0; i < pad2.length; i++)
        pad2[i] ^= 54;
      this.iHash.update(pad2);
      this.oHash = hash.create();
      for (let i = 0; i < pad2.length; i++)
        pad2[i] ^= 54 ^ 92;
      this.oHash.update(pad2);
      clean2(pad2);
    }
    update(buf) {
      aexists2(this);
      this.iHash.update(buf);
      return this;
    }
    digestInto(out) {
      aexists2(this);
      aoutput2(out, this);
      this.finished = true;
      const buf = out.subarray(0, this.outputLen);
      this.iHash.digestInto(buf);
      this.oHash.update(buf);
      this.oHash.digestInto(buf);
      this.destroy();
    }
    digest() {
      const out = new Uint8Array(this.oHash.outputLen);
      this.digestInto(out);
      return out;
    }
    _cloneInto(to) {
      to || (to = Object.create(Object.getPrototypeOf(this), {}));
      const { oHash, iHash, finished, destroyed, blockLen, outputLen, canXOF } = this;
      to = to;
      to.finished = finished;
      to.destroyed = destroyed;
      to.blockLen = blockLen;
      to.outputLen = outputLen;
      to.canXOF = canXOF;
      to.oHash = oHash._cloneInto(to.oHash);
      to.iHash = iHash._cloneInto(to.iHash);
      return to;
    }
    clone() {
      return this._cloneInto();
    }
    destroy() {
      this.destroyed = true;
      this.oHash.destroy();
      this.iHash.destroy();
    }
  };
  var hmac2 = /* @__PURE__ */ (() => {
    const hmac_ = ((hash, key, message) => new _HMAC2(hash, key).update(message).digest());
    hmac_.create = (hash, key) => new _HMAC2(hash, key);
    return hmac_;
  })();

  // src/protocol.js
  var PROTOCOL_VERSION = 2;
  var MAX_JSON_INT = Number.MAX_SAFE_INTEGER;
  var REQUEST_BUCKETS = Array.from({ length: 11 }, (_, i) => 1024 << i);
  var RECORD_BUCKETS = [64, 256, 1024, 4096, 16384, 65536];
  var SUITE_LABELS = {
    1: "X25519-HKDF-SHA256-ChaCha20Poly1305",
    2: "MLKEM768X25519-HKDF-SHA256-ChaCha20Poly1305"
  };
  var RECORD_DELTA = 1;
  var RECORD_DONE = 2;
  var RECORD_ERROR = 3;
  var RECORD_REASONING = 4;
  var ERROR_KINDS = ["unavailable", "context_length", "stalled", "backend"];
  var RECEIPT_STATUSES = ["complete", "stopped", "error"];
  var HEADER_SIZE = 14;
  var KEY_ID_SIZE = 8;
  var REQUEST_ID_SIZE = 16;
  var RESPONSE_KEY_SIZE = 32;
  var TAG = 16;
  var CHUNK_HEAD = 13;
  var MIN_CHUNK = CHUNK_HEAD + RECORD_BUCKETS[0] + TAG;
  var MAX_CHUNK = CHUNK_HEAD + RECORD_BUCKETS[RECORD_BUCKETS.length - 1] + TAG;
  var FLAG_FINAL = 1;
  var REORDER_WINDOW = 16;
  var MAX_MODEL_NAME = 256;
  var MAX_WINDOW = 2 ** 30;
  var MAX_ERROR_MESSAGE = 1024;
  var MAX_FINISH_REASON = 64;
  var MAX_RETRY_AFTER = 300;
  var encoder = new TextEncoder();
  var decoder = new TextDecoder("utf-8", { fatal: true });
  var utf8 = (text) => encoder.encode(text);
  var BUNDLE_CONTEXT = utf8("veil/bundle/v2\0");
  var REQUEST_INFO = utf8("veil/request/v2\0");
  var RESPONSE_AAD = utf8("veil/response/v2\0");
  var STREAM_ID_CONTEXT = utf8("veil/stream-id/v2");
  var RECEIPT_CONTEXT = utf8("veil/receipt/v2\0");
  var CONTROL_KEY_CONTEXT = utf8("veil/control-key/v2");
  var CANCEL_CONTEXT = utf8("veil/cancel/v2\0");
  var RECEIPT_FETCH_CONTEXT = utf8("veil/receipt-fetch/v2\0");
  var SealedError = class extends Error {
    constructor(kind, message) {
      super(message);
      this.name = kind;
      this.kind = kind;
    }
  };
  var malformed = (message) => new SealedError("MalformedMessage", message);
  function fromUtf8(bytes) {
    try {
      return decoder.decode(bytes);
    } catch {
      throw malformed("not UTF-8");
    }
  }
  function concat2(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  function equalBytes2(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }
  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function fromHex(text, size) {
    if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) throw malformed("bad hex");
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    if (size !== void 0 && out.length !== size) throw malformed("hex of the wrong size");
    return out;
  }
  function b64e(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function b64d(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
      throw malformed("bad base64url");
    }
    const bare = text.replace(/=+$/, "");
    const padding = (4 - bare.length % 4) % 4;
    if (bare.length % 4 === 1 || text.length !== bare.length && text.length !== bare.length + padding) {
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
  function randomBytes3(size) {
    return globalThis.crypto.getRandomValues(new Uint8Array(size));
  }
  function sortKeys(value) {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value !== null && typeof value === "object") {
      const sorted = {};
      for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
      return sorted;
    }
    return value;
  }
  function canonicalJson(value) {
    return JSON.stringify(sortKeys(value)).replace(
      /[\u007f-\uffff]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0")
    );
  }
  function parseJsonObject(bytes) {
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
    const allowed = /* @__PURE__ */ new Set([...required, ...optional]);
    if (!required.every((k) => k in value) || !keys.every((k) => allowed.has(k))) {
      throw malformed("fields missing or unknown");
    }
  }
  function bucketFor(size, buckets) {
    return buckets.find((b) => size <= b);
  }
  function pad(payload, buckets) {
    const target = bucketFor(4 + payload.length, buckets);
    if (target === void 0) throw new SealedError("RequestTooLarge", "larger than the last bucket");
    const out = new Uint8Array(target);
    new DataView(out.buffer).setUint32(0, payload.length);
    out.set(payload, 4);
    return out;
  }
  function unpad(padded) {
    if (padded.length < 4) throw malformed("padded value shorter than its length prefix");
    const length = new DataView(padded.buffer, padded.byteOffset).getUint32(0);
    const end = 4 + length;
    if (end > padded.length || padded.subarray(end).some((b) => b !== 0)) throw malformed("bad padding");
    return padded.subarray(4, end);
  }
  function keyIdFor(suite, publicKey) {
    return sha2562(concat2(Uint8Array.of(suite), publicKey)).subarray(0, KEY_ID_SIZE);
  }
  function suiteFromLabel(label) {
    for (const [id, name] of Object.entries(SUITE_LABELS)) if (name === label) return Number(id);
    throw malformed("unknown suite");
  }
  var BUNDLE_FIELDS = ["v", "suite", "public_key", "key_id", "not_before", "not_after", "models", "receipt_key"];
  function parseWindows(value, models) {
    if (value === void 0) return {};
    if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.keys(value).every((model) => models.includes(model))) {
      throw malformed("bad windows: not an object of listed models");
    }
    return Object.fromEntries(Object.entries(value).map(([model, size]) => [model, jsonInt(size, 1, MAX_WINDOW)]));
  }
  function parseBundle(body) {
    const value = parseJsonObject(body);
    exactFields(value, BUNDLE_FIELDS, ["attestation", "windows"]);
    if (jsonInt(value.v) !== PROTOCOL_VERSION) throw malformed("unsupported bundle version");
    const models = value.models;
    if (!Array.isArray(models) || !models.every((m) => typeof m === "string" && m.length > 0 && [...m].length <= MAX_MODEL_NAME)) {
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
      attestation: value.attestation === void 0 ? null : jsonStr(value.attestation, 65536),
      windows: parseWindows(value.windows, models)
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
  function verifyBundle(wire, pinned, now, skew = 120) {
    if (wire === null || typeof wire !== "object") throw malformed("bundle reply is not an object");
    if (typeof wire.signature !== "string" || !wire.signature) {
      throw new SealedError("BundleUnsigned", "bundle has no signature");
    }
    if (typeof wire.bundle !== "string" || typeof wire.operator_key !== "string") {
      throw malformed("bundle fields missing");
    }
    const operatorKey = b64d(wire.operator_key);
    if (!pinned.some((key) => equalBytes2(key, operatorKey))) {
      throw new SealedError("BundleUnpinned", "signed by an operator key that is not pinned");
    }
    const body = b64d(wire.bundle);
    if (!verifyEd25519(b64d(wire.signature), concat2(BUNDLE_CONTEXT, body), operatorKey)) {
      throw new SealedError("BundleBadSignature", "bundle signature does not verify");
    }
    const bundle = parseBundle(body);
    if (!equalBytes2(keyIdFor(bundle.suite, bundle.publicKey), bundle.keyId)) {
      throw new SealedError("BundleKeyMismatch", "key id does not match the public key");
    }
    if (now + skew < bundle.notBefore || now - skew >= bundle.notAfter) {
      throw new SealedError("BundleExpired", "bundle is outside its validity window");
    }
    return { bundle, body, operatorKey };
  }
  var suiteOne = () => new CipherSuite({
    kem: new DhkemX25519HkdfSha2562(),
    kdf: new HkdfSha2562(),
    aead: new Chacha20Poly1305()
  });
  function requestHeader(bundle) {
    return concat2(utf8("VEIL"), Uint8Array.of(PROTOCOL_VERSION, bundle.suite), bundle.keyId);
  }
  function encodeInner(chat, { requestId, responseKey, timestamp }) {
    const inner = {
      v: PROTOCOL_VERSION,
      request_id: toHex(requestId),
      ts: timestamp,
      response_key: b64e(responseKey),
      chat
    };
    return pad(utf8(canonicalJson(inner)), REQUEST_BUCKETS);
  }
  function newRequestSecrets() {
    return { requestId: randomBytes3(REQUEST_ID_SIZE), responseKey: randomBytes3(RESPONSE_KEY_SIZE) };
  }
  async function sealRequest(bundle, chat, { requestId, responseKey, timestamp }) {
    if (bundle.suite !== 1) throw new SealedError("UnsupportedSuite", "the page seals to suite 1 only");
    const header = requestHeader(bundle);
    const plaintext = encodeInner(chat, { requestId, responseKey, timestamp });
    const suite = suiteOne();
    const recipientPublicKey = await suite.kem.deserializePublicKey(bundle.publicKey);
    const { enc, ct } = await suite.seal(
      { recipientPublicKey, info: concat2(REQUEST_INFO, header) },
      plaintext
    );
    return concat2(header, new Uint8Array(enc), new Uint8Array(ct));
  }
  async function openRequest(data, privateKey) {
    const suite = suiteOne();
    const recipientKey = await suite.kem.deserializePrivateKey(privateKey);
    const plaintext = await suite.open(
      {
        recipientKey,
        enc: data.slice(HEADER_SIZE, HEADER_SIZE + 32),
        info: concat2(REQUEST_INFO, data.subarray(0, HEADER_SIZE))
      },
      data.slice(HEADER_SIZE + 32)
    );
    return unpad(new Uint8Array(plaintext));
  }
  function streamIdFor(responseKey) {
    return sha2562(concat2(STREAM_ID_CONTEXT, responseKey)).subarray(0, 8);
  }
  function nonce(seq) {
    const out = new Uint8Array(12);
    new DataView(out.buffer).setUint32(8, seq);
    return out;
  }
  function chunkHead(streamId, seq, flags) {
    const head = new Uint8Array(CHUNK_HEAD);
    head.set(streamId, 0);
    new DataView(head.buffer).setUint32(8, seq);
    head[12] = flags;
    return head;
  }
  function parseReceipt(body) {
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
      client: value.client
    };
  }
  function signedReceipt(value) {
    const body = b64d(jsonStr(value.receipt, 4096));
    const signature = b64d(jsonStr(value.signature, 128));
    if (signature.length !== 64) throw malformed("receipt signature has the wrong length");
    return { receipt: parseReceipt(body), body, signature };
  }
  function parseFinal(value) {
    const done = !("error" in value);
    exactFields(value, [done ? "finish_reason" : "error"], ["receipt", "signature"]);
    if ("receipt" in value !== "signature" in value) throw malformed("receipt without its signature");
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
        retryAfter: "retry_after" in error ? jsonInt(error.retry_after, 0, MAX_RETRY_AFTER) : null
      }
    };
  }
  function verifyReceipt(signed, receiptKey, requestId, model) {
    if (!verifyEd25519(signed.signature, concat2(RECEIPT_CONTEXT, signed.body), receiptKey)) {
      throw new SealedError("ReceiptInvalid", "usage receipt signature does not verify");
    }
    if (!equalBytes2(signed.receipt.requestId, requestId)) {
      throw new SealedError("ReceiptInvalid", "receipt names another request");
    }
    if (model !== void 0 && signed.receipt.model !== model) {
      throw new SealedError("ReceiptInvalid", "receipt names another model");
    }
  }
  var ChunkOpener = class {
    constructor(responseKey) {
      this.aead = new Chacha20Poly1305().createEncryptionContext(responseKey.slice().buffer);
      this.streamId = streamIdFor(responseKey);
      this.seq = 0;
      this.buffer = new Uint8Array(0);
      this.finished = false;
      this.timeLimit = false;
    }
    async feed(data) {
      if ((this.finished || this.timeLimit) && data.length) {
        throw new SealedError("TrailingData", "bytes after the final chunk");
      }
      this.buffer = concat2(this.buffer, data);
      const records = [];
      while (this.buffer.length >= 4) {
        const length = new DataView(this.buffer.buffer, this.buffer.byteOffset).getUint32(0);
        if (length === 0 && !this.finished) {
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
        return new Uint8Array(await this.aead.open(nonce(seq), ciphertext, concat2(RESPONSE_AAD, head)));
      } catch {
        return null;
      }
    }
    async open(body) {
      const streamId = body.subarray(0, 8);
      const view = new DataView(body.buffer, body.byteOffset);
      const seq = view.getUint32(8);
      const flags = body[12];
      if (!equalBytes2(streamId, this.streamId)) {
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
        if (kind === RECORD_ERROR !== (result.error !== null)) {
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
          if (await this.decrypt(seq, ciphertext, chunkHead(this.streamId, seq, flags)) !== null) {
            return true;
          }
        }
      }
      return false;
    }
  };
  function controlKey(responseKey) {
    return sha2562(concat2(CONTROL_KEY_CONTEXT, responseKey));
  }
  function cancelProof(responseKey, requestId) {
    return hmac2(sha2562, controlKey(responseKey), concat2(CANCEL_CONTEXT, requestId));
  }
  function receiptProof(responseKey, requestId) {
    return hmac2(sha2562, controlKey(responseKey), concat2(RECEIPT_FETCH_CONTEXT, requestId));
  }
  function clientId(verifyKey) {
    return toHex(sha2562(verifyKey).subarray(0, 8));
  }
  function sha256Hex(bytes) {
    return toHex(sha2562(bytes));
  }

  // node_modules/@noble/hashes/pbkdf2.js
  function pbkdf2Init(hash, _password, _salt, _opts) {
    ahash2(hash);
    const opts = checkOpts2({ dkLen: 32, asyncTick: 10 }, _opts);
    const { c, dkLen, asyncTick } = opts;
    anumber2(c, "c");
    anumber2(dkLen, "dkLen");
    anumber2(asyncTick, "asyncTick");
    if (c < 1)
      throw new Error('"c" (iterations) must be >= 1');
    if (dkLen < 1)
      throw new Error('"dkLen" must be >= 1');
    if (dkLen > (2 ** 32 - 1) * hash.outputLen)
      throw new Error("derived key too long");
    const p = kdfInputToBytes(_password, "password");
    try {
      const s = kdfInputToBytes(_salt, "salt");
      try {
        const DK = new Uint8Array(dkLen);
        const { iHash, oHash, outputLen } = hmac2.create(hash, p);
        const u = new Uint8Array(outputLen);
        const eng = pbkdf2Engine(iHash, oHash, s, u);
        return { c, dkLen, asyncTick, DK, outputLen, eng };
      } finally {
        if (typeof _salt === "string")
          clean2(s);
      }
    } finally {
      if (typeof _password === "string")
        clean2(p);
    }
  }
  function pbkdf2Engine(iHash, oHash, salt, u) {
    const counter = new Uint8Array(4);
    const view = createView2(counter);
    const salted = iHash._cloneInto().update(salt);
    const work = oHash._cloneInto();
    const iClone = iHash._cloneInto;
    const oClone = oHash._cloneInto;
    return {
      u1: (ti, Ti) => {
        view.setInt32(0, ti, false);
        salted._cloneInto(work).update(counter).digestInto(u);
        oHash._cloneInto(work).update(u).digestInto(u);
        Ti.set(u.subarray(0, Ti.length));
      },
      // Whole `F` inner loop for the sync variant: one optimized function owns the hot loop.
      rounds: (c, Ti) => {
        for (let ui = 1; ui < c; ui++) {
          iClone.call(iHash, work).update(u).digestInto(u);
          oClone.call(oHash, work).update(u).digestInto(u);
          for (let i = 0; i < Ti.length; i++)
            Ti[i] ^= u[i];
        }
      },
      output: (DK) => {
        iHash.destroy();
        oHash.destroy();
        salted.destroy();
        work.destroy();
        clean2(u);
        return DK;
      }
    };
  }
  async function pbkdf2Async(hash, password, salt, opts) {
    const { c, dkLen, asyncTick, DK, outputLen, eng } = pbkdf2Init(hash, password, salt, opts);
    const abort = () => {
      eng.output(DK);
      clean2(DK);
    };
    for (let ti = 1, pos = 0; pos < dkLen; ti++, pos += outputLen) {
      const Ti = DK.subarray(pos, pos + outputLen);
      eng.u1(ti, Ti);
      await asyncLoop(c - 1, asyncTick, () => {
        eng.rounds(2, Ti);
      }, abort);
    }
    return eng.output(DK);
  }

  // src/history.js
  var KEY_NAME = "veil_history_key";
  var AAD = utf8("veil/history/v1");
  var MAX_TURNS = 200;
  var CHANGED = "changed";
  var ADD_TRIES = 3;
  var NO_KEYCHAIN = "UNSUPPORTED";
  var FORGOTTEN = "forgotten history";
  var SLOT_LABEL = utf8("veil/history-slot/v1");
  var SLOT_ROUNDS = 1e5;
  var PREFIX = "veil:history:";
  async function slotFor(userId) {
    const id = utf8(String(userId));
    let bits;
    try {
      const subtle = globalThis.crypto.subtle;
      const key = await subtle.importKey("raw", id, "PBKDF2", false, ["deriveBits"]);
      const params = { name: "PBKDF2", hash: "SHA-256", salt: SLOT_LABEL, iterations: SLOT_ROUNDS };
      bits = new Uint8Array(await subtle.deriveBits(params, key, 128));
    } catch {
      bits = await pbkdf2Async(sha2562, id, SLOT_LABEL, { c: SLOT_ROUNDS, dkLen: 16 });
    }
    return PREFIX + toHex(bits);
  }
  function context(key) {
    return new Chacha20Poly1305().createEncryptionContext(key.slice().buffer);
  }
  function deviceStorage() {
    try {
      return globalThis.localStorage ?? null;
    } catch {
      return null;
    }
  }
  async function sealHistory(key, turns, mark = null) {
    const nonce2 = randomBytes3(12);
    const sealed = await context(key).seal(nonce2, utf8(JSON.stringify({ v: 1, mark, turns })), AAD);
    return b64e(concat2(nonce2, new Uint8Array(sealed)));
  }
  function keyOf(text) {
    try {
      const key = text ? b64d(text) : null;
      return key && key.length === 32 ? key : null;
    } catch {
      return null;
    }
  }
  function sameBytes(a, b) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }
  async function openHistory(key, text, mark = null) {
    const raw = b64d(text);
    const plain = await context(key).open(raw.slice(0, 12), raw.slice(12), AAD);
    const value = JSON.parse(fromUtf8(new Uint8Array(plain)));
    if (!value || value.v !== 1 || !Array.isArray(value.turns)) throw new Error("bad history");
    if ("mark" in value && value.mark !== mark) throw new Error(FORGOTTEN);
    return value.turns.filter(
      (t) => t && (t.role === "user" || t.role === "assistant") && typeof t.content === "string"
    );
  }
  var History = class {
    constructor(secureStorage, userId, local = deviceStorage()) {
      this.secure = secureStorage;
      this.userId = userId;
      this.slot = null;
      this.forgetSlot = null;
      this.markSlot = null;
      this.askingSlot = null;
      this.naming = null;
      this.unmoved = null;
      this.local = local;
      this.locks = local ? globalThis.navigator?.locks ?? null : null;
      this.key = null;
      this.persistent = false;
      this.turns = [];
      this.read = null;
      this.epoch = null;
      this.unreadable = false;
      this.silent = false;
      this.dropped = null;
      this.erases = 0;
      this.page = b64e(randomBytes3(9));
    }
    /** Name the storage and the locks (once; ``slotFor``): nothing is read or written before. */
    name() {
      this.naming ?? (this.naming = slotFor(this.userId).then((slot) => {
        this.slot = slot;
        this.forgetSlot = `${slot}:forget`;
        this.markSlot = `${slot}:forgotten`;
        this.askingSlot = `${slot}:asking:`;
      }));
      return this.naming;
    }
    /**
     * Run ``work`` while no other page of this user on the device reads or writes the history.
     * Each of open, reload, add and forget awaits the keychain and the cipher between its read
     * and its write: without the lock, two pages keeping an exchange at once each wrote its own
     * over the other's, and a page keeping one while another forgot wrote the erased history
     * back under the key being destroyed. A webview without Web Locks (iOS before 15.4) goes
     * without: ``add`` then writes only over the history it last read (``save``'s ``careful``).
     */
    exclusive(work) {
      if (this.slot === null) return this.name().then(() => this.exclusive(work));
      return this.locks ? this.locks.request(this.slot, () => work()) : work();
    }
    /** Load the key (made on first use) and the turns; false when nothing can be kept. */
    async open() {
      await this.name();
      await this.live();
      return this.exclusive(async () => {
        this.adoptForget();
        await this.migrate();
        return this.load();
      });
    }
    /**
     * Take in a Forget that a page of an older bundle, still open on the device, made since the
     * names were moved (``migrate``): it writes its mark under the old name, which this page's
     * own does not see, so it went on showing the erased history, sending it as context and
     * keeping it. Its mark becomes the device's (a Forget newer than any here: the move removed
     * the old names, and this bundle's Forget writes its own there, ``erase``) and the
     * ciphertext sealed before it is erased. The old mark stays for that page to read. Its
     * removal due is read under either name (``forgetPending``). Called under the lock before
     * the mark is read (``open``, ``takeIn``); a Forget here writes its own mark over it
     * (``markOlder``), as it erases all the same.
     */
    adoptForget() {
      const local = this.local;
      if (!local) return;
      const mark = local.getItem(`${PREFIX}${this.userId}:forgotten`);
      if (mark === null || mark === this.mark) return;
      local.removeItem(this.slot);
      try {
        local.setItem(this.markSlot, mark);
      } catch {
      }
    }
    /**
     * Move what an older bundle stored under names with the user id in clear (``PREFIX``) to
     * this user's hashed names, once: read the old, write the new, remove the old. Done under the
     * old names' lock too, which an older bundle's page still open takes: the two never write at
     * once. A name written anew since (a page of this bundle) is kept, the old one dropped. A
     * question note of an older page still open is left to it (it removes it itself); one of a
     * closed page is moved, and told as an answer lost (``takeLost``); so is the Forget mark such
     * a page read its history with (copied only: ``adoptForget``). A storage with no room for
     * the history twice gets the old one removed first and written anew at once, never lost;
     * with no room even so (the new name is longer), ``load`` reads it there and moves it as
     * ``save`` keeps a history, the oldest exchanges giving way.
     */
    async migrate() {
      const local = this.local;
      const old = PREFIX + this.userId;
      if (!local) return;
      const names = [];
      for (let i = 0; i < local.length; i += 1) {
        const name = local.key(i);
        if (name === old || name?.startsWith(`${old}:`)) names.push(name);
      }
      if (names.length === 0) return;
      const move = async () => {
        const held = this.locks ? (await this.locks.query()).held.map((lock) => lock.name) : [];
        const older = held.some((lock) => lock?.startsWith(`${old}:page:`));
        for (const name of names) {
          const value = local.getItem(name);
          if (value === null) continue;
          const rest = name.slice(old.length);
          const asker = rest.startsWith(":asking:") ? `${old}:page:${rest.slice(":asking:".length)}` : null;
          if (held.includes(asker)) continue;
          const renamed = this.slot + rest;
          if (older && rest === ":forgotten") continue;
          if (local.getItem(renamed) === null) {
            try {
              local.setItem(renamed, value);
            } catch {
              local.removeItem(name);
              try {
                local.setItem(renamed, value);
              } catch {
                local.setItem(name, value);
                if (rest === "") this.unmoved = name;
                continue;
              }
            }
          }
          local.removeItem(name);
        }
      };
      await (this.locks ? this.locks.request(old, move) : move());
    }
    /**
     * Hold a Web Lock named after this page for as long as it is open (the browser lets go of
     * it when the page goes): another page of the device then tells this page's ``asking`` note
     * from one a closed page left. A browser that refuses it the lock (a SecurityError) gives it
     * none other either: the page goes without, as where there are no Web Locks (else it waited
     * on the lock for ever, and never opened).
     */
    live() {
      if (!this.locks) return null;
      return new Promise((held) => {
        this.locks.request(`${this.slot}:page:${this.page}`, () => {
          held();
          return new Promise(() => {
          });
        }).catch(() => {
          this.locks = null;
          held();
        });
      });
    }
    /**
     * Note that this page's question has left it, until its answer has ended here (``answered``).
     * A page closed meanwhile (reloaded mid-answer) keeps no answer, though the bot charges what
     * the model wrote: its note tells the next page opened so (``takeLost``). The note holds that
     * an answer was on its way, nothing of it. Without Web Locks a page cannot tell a closed
     * page's note from an open one's: none is written there.
     */
    asking() {
      if (!this.local || !this.locks) return;
      try {
        this.local.setItem(this.askingSlot + this.page, "1");
      } catch {
      }
    }
    answered() {
      this.local?.removeItem(this.askingSlot + this.page);
    }
    /** Whether a page of the device closed mid-answer since (its note, removed here: told once). */
    takeLost() {
      const locks = this.locks;
      if (!this.local || !locks) return false;
      return this.exclusive(async () => {
        const open = new Set((await locks.query()).held.map((lock) => lock.name));
        const notes = [];
        for (let i = 0; i < this.local.length; i += 1) {
          const name = this.local.key(i);
          if (name?.startsWith(this.askingSlot)) notes.push(name);
        }
        const lost = notes.filter((name) => {
          const page = name.slice(this.askingSlot.length);
          return !open.has(`${this.slot}:page:${page}`);
        });
        for (const name of lost) this.local.removeItem(name);
        return lost.length > 0;
      });
    }
    async load() {
      this.epoch = this.mark;
      this.silent = false;
      if (this.secure && this.secure.available && this.local) {
        try {
          if (this.forgetPending) {
            if (!await this.removeKey()) throw new Error("key kept");
            this.markForget(false);
          }
          let key = keyOf(await this.secure.get(KEY_NAME));
          if (!key) {
            await this.secure.set(KEY_NAME, b64e(randomBytes3(32)));
            key = keyOf(await this.secure.get(KEY_NAME));
            if (!key) throw new Error("no key");
          }
          this.key = key;
          this.persistent = true;
        } catch (error) {
          this.persistent = false;
          this.silent = ![NO_KEYCHAIN, "key kept", "no key"].includes(error?.message);
        }
      }
      if (!this.key) this.key = randomBytes3(32);
      const unmoved = this.persistent ? this.unmoved : null;
      this.unmoved = null;
      let stored = this.persistent ? this.local.getItem(this.slot) : null;
      if (stored === null && unmoved) stored = this.local.getItem(unmoved);
      this.unreadable = false;
      if (stored) {
        try {
          this.turns = await openHistory(this.key, stored, this.epoch);
        } catch (error) {
          this.turns = [];
          this.unreadable = error?.message !== FORGOTTEN;
          return this.persistent;
        }
      }
      if (unmoved && stored !== null && this.local.getItem(this.slot) === null) {
        this.local.removeItem(unmoved);
        if (!await this.save()) this.local.setItem(unmoved, stored);
      }
      return this.persistent;
    }
    /** Whether ``name`` is one another page writes when it keeps or forgets (its storage event). */
    watches(name) {
      const old = PREFIX + this.userId;
      return name === this.slot || name === `${old}:forgotten` || name === `${old}:forget`;
    }
    /**
     * Whether a Forget is due whose key the keychain would not remove (on any page of the
     * device): under this bundle's name, or an older one's (a page of it still open forgetting).
     */
    get forgetPending() {
      const old = `${PREFIX}${this.userId}:forget`;
      return Boolean(this.local && (this.local.getItem(this.forgetSlot) || this.local.getItem(old)));
    }
    markForget(pending) {
      if (!this.local) return;
      if (!pending) {
        this.local.removeItem(this.forgetSlot);
        this.local.removeItem(`${PREFIX}${this.userId}:forget`);
        return;
      }
      try {
        this.local.setItem(this.forgetSlot, "1");
      } catch {
      }
    }
    /** The mark of the device's last Forget (a random name; null before the first). */
    get mark() {
      return this.local ? this.local.getItem(this.markSlot) : null;
    }
    /**
     * Why what this page held was dropped since last asked, as a text's name: another page
     * forgot it (``forgotten_elsewhere``), or its key is no longer the keychain's with no Forget
     * to tell of (``history_key_changed``: a page that made another at once, a keychain reset).
     * Null when nothing was.
     */
    takeDropped() {
      const dropped = this.dropped;
      this.dropped = null;
      return dropped;
    }
    get cacheSalt() {
      return sha256Hex(concat2(utf8("veil/cache-salt/v1"), this.key)).slice(0, 32);
    }
    /**
     * Take in what another page of this user on the device has kept since this one read it
     * (they share the storage and the keychain): saving this page's turns alone would overwrite
     * the other's exchanges. False when Forget on another page erased the history this page
     * held: its key is no longer the keychain's, so its turns are dropped (never sent or saved
     * again) and it goes on with the keychain's key and what is stored under it. So too when
     * that Forget's key is still in the keychain (it refused the removal): nothing more is kept
     * under it, on any page, until it is gone. Without Web Locks another page's Forget may
     * not have removed the key yet, nor even the ciphertext this page last read: its mark,
     * newer than the one read with this page's turns, tells of it all the same.
     */
    reload() {
      return this.exclusive(() => this.takeIn());
    }
    async takeIn() {
      if (!this.persistent || !this.local) return true;
      this.adoptForget();
      const forgotten = this.mark !== this.epoch;
      if (!forgotten && !this.forgetPending) {
        const stored = this.local.getItem(this.slot);
        this.read = stored;
        if (stored) {
          try {
            this.turns = await openHistory(this.key, stored, this.epoch);
            return true;
          } catch {
          }
        }
        try {
          const text = await this.secure.get(KEY_NAME);
          const key = keyOf(text);
          if (key && sameBytes(key, this.key)) return true;
        } catch {
          return true;
        }
      }
      if (forgotten || this.forgetPending) this.dropped = "forgotten_elsewhere";
      else if (this.turns.length > 0) this.dropped = "history_key_changed";
      this.turns = [];
      this.key = null;
      this.persistent = false;
      await this.load();
      return false;
    }
    /**
     * Keep an exchange; false when the device's storage has no room even for it alone. An
     * exchange asked before Forget on another page belongs to the erased history: not kept.
     * Nor one this page's own Forget overtook (without Web Locks it does not wait for ``add``).
     */
    add(question, answer) {
      return this.exclusive(async () => {
        const erases = this.erases;
        for (let tries = 1; ; tries += 1) {
          if (this.erases !== erases) return true;
          if (!await this.takeIn()) return true;
          if (this.erases !== erases) return true;
          if (tries > 1 && this.read === null) {
            this.turns = [];
            return true;
          }
          const before = this.turns;
          const exchange = [{ role: "user", content: question }, { role: "assistant", content: answer }];
          this.turns = [...before, ...exchange].slice(-MAX_TURNS);
          const saved = await this.save(tries < ADD_TRIES, erases);
          if (saved !== CHANGED) return saved;
          if (this.erases !== erases) return true;
          this.turns = before;
        }
      });
    }
    /**
     * Store the turns. When the storage is full the oldest exchanges give way, one at a time,
     * never the newest: false (the stored history left as it was) if even that does not fit.
     * ``careful``: ``CHANGED``, nothing written, when the stored history is no longer the one
     * last read (another page's write since). ``CHANGED`` too, careful or not, after Forget on
     * another page since the turns were read (its mark): they are never written back, nor
     * after this page's own Forget since ``erases`` (its count of them) was read.
     */
    async save(careful = false, erases = this.erases) {
      if (!this.persistent || !this.local) return true;
      let turns = this.turns;
      for (; ; ) {
        const sealed = await sealHistory(this.key, turns, this.epoch);
        if (this.mark !== this.epoch || this.erases !== erases) return CHANGED;
        if (careful && this.local.getItem(this.slot) !== this.read) return CHANGED;
        try {
          this.local.setItem(this.slot, sealed);
          this.turns = turns;
          return true;
        } catch {
          if (turns.length <= 2) return false;
          turns = turns.slice(2);
        }
      }
    }
    /**
     * Destroy the key and the ciphertext: nothing kept can be read again. False when the keychain
     * would not remove the key: the ciphertext is gone all the same, and nothing more is kept
     * (this page: a key of its own life) rather than sealed again under the key to be destroyed;
     * every page of the device, and the next one opened, tries the removal again first. An app
     * without a keychain (it answers ``UNSUPPORTED``) has no key in it: nothing is due there.
     * The erase leaves a new mark: a page that read before it writes nothing it then held.
     */
    forget() {
      return this.exclusive(() => this.erase());
    }
    async erase() {
      this.erases += 1;
      this.turns = [];
      const due = this.persistent || this.forgetPending || this.secure?.available;
      if (this.local) {
        const marked = this.writeMark(due);
        this.local.removeItem(this.slot);
        this.local.removeItem(PREFIX + this.userId);
        if (!marked) this.writeMark(due);
        await this.markOlder();
      }
      const written = this.forgetPending;
      let destroyed = due ? await this.removeKey() : true;
      if (!destroyed && written && !this.forgetPending) destroyed = true;
      this.key = null;
      this.persistent = false;
      this.markForget(!destroyed);
      if (!destroyed) {
        this.key = randomBytes3(32);
        return false;
      }
      await this.load();
      return true;
    }
    /**
     * Remove the key from the keychain: false when the keychain would not. An app without one
     * (it answers ``UNSUPPORTED``) has no key in it: gone already. A removal due found there
     * (a Forget cut short as its request was out) was otherwise due at every opening, for ever.
     */
    async removeKey() {
      try {
        await this.secure.remove(KEY_NAME);
        return true;
      } catch (error) {
        return error?.message === NO_KEYCHAIN;
      }
    }
    /**
     * Tell a page of an older bundle still open on the device of this Forget: it reads its mark
     * under the old name only (``adoptForget``), and else went on showing, sending and keeping the
     * erased history. Written there (the same mark, moved away at the next opening) only while
     * such a page holds its lock, or where the old name is still there (without Web Locks, or
     * left by one): an older page's Forget that this one follows is not taken in again.
     */
    async markOlder() {
      const old = `${PREFIX}${this.userId}`;
      let open = false;
      try {
        const held = this.locks ? (await this.locks.query()).held : [];
        open = held.some((lock) => lock.name?.startsWith(`${old}:page:`));
      } catch {
      }
      if (!open && this.local.getItem(`${old}:forgotten`) === null) return;
      const mark = this.mark;
      try {
        if (mark === null) throw new Error("no mark");
        this.local.setItem(`${old}:forgotten`, mark);
      } catch {
        this.local.removeItem(`${old}:forgotten`);
      }
    }
    /** Write a Forget's removal due (``due``: a keychain to remove it from) and its new mark. */
    writeMark(due) {
      try {
        if (due) this.local.setItem(this.forgetSlot, "1");
        this.local.setItem(this.markSlot, b64e(randomBytes3(12)));
        return true;
      } catch {
        return false;
      }
    }
  };

  // src/context.js
  var MESSAGE_OVERHEAD = 8;
  var REQUEST_OVERHEAD = 32;
  var DEFAULT_WINDOW = 4096;
  var DEFAULT_MIN_ANSWER = 64;
  var encoder2 = new TextEncoder();
  function textTokens(text) {
    return encoder2.encode(text).length;
  }
  function messageTokens(content) {
    return textTokens(content) + MESSAGE_OVERHEAD;
  }
  function positive(value) {
    return Number.isSafeInteger(value) && value > 0 ? value : null;
  }
  function modelWindow(stated, botLimit) {
    const window2 = positive(stated);
    const limit = positive(botLimit);
    if (window2 !== null && limit !== null) return Math.min(window2, limit);
    return window2 ?? limit ?? DEFAULT_WINDOW;
  }
  function fitContext(turns, question, { window: window2, maxAnswer, minAnswer = DEFAULT_MIN_ANSWER }) {
    const room = Math.min(maxAnswer, Math.floor(window2 / 2));
    const budget = window2 - room;
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
      maxAnswer: Math.max(floor, Math.min(maxAnswer, window2 - used)),
      dropped: turns.length - kept.length
    };
  }
  var WINDOW_STATED = /maximum context length is (\d+) tokens|available context size \((\d+) tokens\)/;
  var PROMPT_STATED = /request has (\d+) input tokens|\((\d+) in the messages|request \((\d+) tokens\) exceeds/;
  function contextRefusal(message) {
    const window2 = WINDOW_STATED.exec(message || "");
    const prompt = PROMPT_STATED.exec(message || "");
    if (!window2 || !prompt) return null;
    const stated = (match) => Number(match.slice(1).find((group) => group !== void 0));
    return { window: stated(window2), prompt: stated(prompt) };
  }

  // src/think.js
  var OPEN = "<think>";
  var CLOSE = "</think>";
  var BLANKS = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
  var ONLY_BLANKS = new RegExp(`^${BLANKS}*$`);
  var BLANK = new RegExp(`^${BLANKS}$`);
  var OPENING_BLANKS = `${BLANKS.slice(0, -1)}\\ufeff]`;
  var OPENING = new RegExp(`^${OPENING_BLANKS}+`);
  var ONLY_OPENING = new RegExp(`^${OPENING_BLANKS}*$`);
  var LINE_BREAKS = /[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]/g;
  var BOMS = /\ufeff/g;
  function isBlank(text) {
    return ONLY_BLANKS.test(text);
  }
  function strip(text) {
    let start = 0;
    let end = text.length;
    while (start < end && BLANK.test(text[start])) start++;
    while (end > start && BLANK.test(text[end - 1])) end--;
    return text.slice(start, end);
  }
  var ThinkTags = class {
    constructor() {
      this.state = "start";
      this.held = "";
      this.blanks = [];
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
        this.blanks.push(delta);
        return [];
      }
      const held = this.held + delta;
      this.held = "";
      const opening = held.replace(OPENING, "");
      if (OPEN.startsWith(opening) && opening !== OPEN) {
        this.held = held;
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
      this.indent = null;
      this.held = "";
      if (!held) return [];
      return [[this.state === "thinking" ? "thought" : "text", held]];
    }
  };
  function lastLineBreak(text) {
    let at = -1;
    for (const found of text.matchAll(LINE_BREAKS)) at = found.index;
    return at;
  }
  function partialClose(text) {
    for (let length = Math.min(text.length, CLOSE.length - 1); length > 0; length--) {
      if (CLOSE.startsWith(text.slice(-length))) return length;
    }
    return 0;
  }

  // src/telegram.js
  var listeners = /* @__PURE__ */ new Map();
  var requestCounter = 0;
  function launchParams(hash = globalThis.location ? globalThis.location.hash : "") {
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
      platform: params.get("tgWebAppPlatform") || "unknown"
    };
  }
  function versionAtLeast(version, wanted) {
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
  function postEvent(type, data) {
    const proxy = window.TelegramWebviewProxy;
    if (proxy !== void 0 && typeof proxy.postEvent === "function") {
      proxy.postEvent(type, data === void 0 ? "" : JSON.stringify(data));
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
  function onEvent(type, callback) {
    if (!listeners.has(type)) listeners.set(type, /* @__PURE__ */ new Set());
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
  function installBridge() {
    const telegram = window.Telegram = window.Telegram || {};
    const webView = telegram.WebView = telegram.WebView || {};
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
  function request(method, params, answers, timeoutMs = 2e3) {
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
          })
        );
      }
      const timer = setTimeout(() => finish(reject, new Error("no answer from Telegram")), timeoutMs);
      if (!postEvent(method, { req_id: reqId, ...params })) finish(reject, new Error("not in Telegram"));
    });
  }
  var ClientStorage = class {
    constructor(kind, version) {
      this.kind = kind;
      this.available = versionAtLeast(version, "9.0");
    }
    async get(key) {
      const data = await request(
        `web_app_${this.kind}_storage_get_key`,
        { key },
        { [`${this.kind}_storage_key_received`]: true, [`${this.kind}_storage_failed`]: false }
      );
      return typeof data.value === "string" ? data.value : null;
    }
    async set(key, value) {
      await request(
        `web_app_${this.kind}_storage_save_key`,
        { key, value },
        { [`${this.kind}_storage_key_saved`]: true, [`${this.kind}_storage_failed`]: false }
      );
    }
    async remove(key) {
      await this.set(key, null);
    }
  };
  function applyTheme(theme, root = document.documentElement) {
    for (const [name, value] of Object.entries(theme || {})) {
      if (typeof value === "string" && /^#[0-9a-fA-F]{3,8}$/.test(value)) {
        root.style.setProperty(`--tg-theme-${name.replace(/_/g, "-")}`, value);
      }
    }
  }

  // src/texts.js
  var en = {
    title: "Veil · private mode",
    balance: "Balance: {balance} ★ · free today: {free} tokens",
    model: "Model",
    placeholder: "Your question…",
    send: "Send",
    stop: "Stop",
    sealing: "Sealing your question on this device…",
    writing: "Writing…",
    stopped: "Stopped.",
    unsent: "Stopped before your question was sent: nothing was charged.",
    unanswered: "Stopped before the model server began the answer: nothing was charged.",
    unanswered_charged: "Stopped before the answer reached you, but the model server had begun it: {prompt} + {completion} tokens were charged, as its signed receipt says. Your question is back in the input to send again.",
    unanswered_settling: "Stopped before the model server began the answer, as far as the bot knows yet. Had it begun after all, what it wrote is charged as its signed receipt says, and your balance will show it; else nothing is. Your question is back in the input to send again.",
    receipt: "Signed receipt verified: {prompt} + {completion} tokens ({status}).",
    answer_cut: "✂️ The answer hit the length limit: ask for the rest in your next question.",
    forget: "Forget this device's history",
    forgotten: "History erased: its key is destroyed.",
    forgotten_key_kept: "History erased from this device, but Telegram's secure storage could not remove its key just now: press Forget again later. Until then new answers are not kept.",
    history_kept: "History stays on this device, encrypted with a key kept in its keychain.",
    history_full: "This device's storage is full, so this exchange was not saved to the history.",
    forgotten_elsewhere: "The history was forgotten on another page of this device: nothing of it is kept or sent again here.",
    history_key_changed: "The history key on this device was changed on another page, so the exchanges this page showed could not be kept.",
    history_unreadable: "The history saved on this device could not be read (damaged, or its key is gone from the keychain), so it starts afresh.",
    answer_lost: "An answer was still coming when this page was last closed: it was not kept, and what the model had written of it by then was charged.",
    history_keychain_silent: "Telegram's secure storage did not answer, so the history saved on this device is not shown and this page saves nothing: reopen the page to try again.",
    history_storage_blocked: "This browser does not let the page store anything (its cookie or site-data setting), so this history is not saved: it is gone when you close the page.",
    history_not_kept: "This Telegram app has no secure storage, so this history is not saved: it is gone when you close the page.",
    about: "What private mode protects",
    protects: "Your question is sealed here, on your device, to the inference worker's key, after this page has checked that key against the operator key pinned in the page itself. Telegram and the bot only pass the sealed bytes on: neither can read your questions or the answers. The bot bills you from the worker's signed receipt, which this page checks too. Your history stays on this device, encrypted.",
    not_protects: "What it does not protect: the bot serves this page, so a dishonest operator could serve a different one. Compare the SHA-256 below with the one published in Veil's README (a page that does not match must not be trusted). The worker (gateway and model) reads your question: that is where the model runs. Telegram and the bot still see that you use private mode, when, how large the sealed messages are, and your balance.",
    page_hash: "SHA-256 of this page's code: {hash}",
    pinned: "Operator keys pinned in this page: {keys}",
    unauthorized: "Open this page from the Veil bot in Telegram (/private).",
    stale: "This page was opened too long ago: close it and open it again from the bot.",
    bot_clock: "The bot's clock is off, so it cannot accept this page right now. This is not your doing, and reopening the page will not help: please try again later.",
    insufficient: "Not enough credit for an answer. Top up with /buy in the bot.",
    busy: "An answer is still being written.",
    unavailable: "No model server is available right now. Please try again in a moment.",
    busy_retry: "The model server is busy right now. Please try again in {seconds} s.",
    minutes_off: "{n} min",
    hours_off: "{n} h",
    days_off: "{n} days",
    device_clock: "This device's clock and the bot's differ by about {off}, so the model server's keys do not look valid here (their validity is judged by this device's clock) and nothing was sent. Set this device's date and time to automatic, then send again.",
    keys_out_of_time: "The model servers' keys are outside their validity time (a server's clock may be off), so nothing was sent. Please try again later.",
    untrusted: "No model server's keys could be verified against the pinned operator keys, so nothing was sent.",
    refused: "The model server refused the request ({code}).",
    ChunkTampered: "The answer was altered on the way (a chunk failed its check), so it was discarded.",
    ChunkOutOfOrder: "Parts of the answer arrived out of order, so it was discarded.",
    StreamSpliced: "Part of another answer was mixed into this one, so it was discarded.",
    StreamTruncated: "The answer was cut off on the way (the connection was lost, or the bot restarted). What came is kept, and your question is back in the input to send again.",
    TimeLimit: "The answer took longer than the bot allows one answer, and was cut off there. What came is kept, and your question is back in the input to send again.",
    cut_before_text: "The connection was lost before the answer began. Your question is back in the input to send again.",
    time_limit_before_text: "The answer took longer than the bot allows one answer, and was cut off there before any of its text came. Your question is back in the input to send again.",
    TrailingData: "Unexpected bytes followed the answer, so it was discarded.",
    MalformedMessage: "The answer could not be read, so it was discarded.",
    ReceiptInvalid: "The answer's usage receipt did not verify.",
    backend: "The model could not answer this time. Please try again.",
    thought_only: "The model could not answer this time: it only thought and wrote no answer. The signed receipt's {prompt} + {completion} tokens were billed, its thinking's included. Your question is back in the input to send again.",
    context_length: "This conversation is too long for the model. Forget the history to start afresh.",
    stalled: "The model stopped responding. Please try again.",
    network: "The connection to the bot failed. Please try again.",
    server: "The bot could not take your question just now. Please try again in a moment.",
    too_large: "This conversation is too long to send. Forget the history to start afresh.",
    empty: "Write a question first.",
    thinking: "Thinking",
    balance_stale: "The balance could not be updated just now.",
    request_id_taken: "This request was already sent once, so it was not sent again. Please send your question again.",
    mismatch: "The bot could not take this page's request ({code}). Close the page and open it again from the bot.",
    reopen: "The operator's keys have changed since this page was opened. Close it and open it again from the bot.",
    unknown_key: "The model server has just changed its key. Please send your question again.",
    stale_request: "The model server's clock disagrees with the bot's, so it refused the question. Please try again later.",
    unknown_model: "The model server no longer offers this model. Choose another and send again.",
    unauthenticated: "The model server does not accept this bot's signature (an operator's setting). Please try again later."
  };
  var ru = {
    title: "Veil · приватный режим",
    balance: "Баланс: {balance} ★ · бесплатно сегодня: {free} токенов",
    model: "Модель",
    placeholder: "Ваш вопрос…",
    send: "Отправить",
    stop: "Стоп",
    sealing: "Шифруем вопрос на этом устройстве…",
    writing: "Пишу…",
    stopped: "Остановлено.",
    unsent: "Остановлено до отправки вопроса: ничего не списано.",
    unanswered: "Остановлено до того, как сервер модели начал ответ: ничего не списано.",
    unanswered_charged: "Остановлено до того, как ответ дошёл до вас, но сервер модели уже начал его: списано {prompt} + {completion} токенов, как указано в его подписанном чеке. Вопрос снова в поле ввода, чтобы отправить его ещё раз.",
    unanswered_settling: "Остановлено до того, как сервер модели начал ответ, — насколько боту пока известно. Если он всё же начал, написанное будет списано по его подписанному чеку, и баланс это покажет; иначе ничего не списывается. Вопрос снова в поле ввода — его можно отправить ещё раз.",
    receipt: "Подписанный чек проверен: {prompt} + {completion} токенов ({status}).",
    answer_cut: "✂️ Ответ упёрся в ограничение длины: попросите продолжение следующим вопросом.",
    forget: "Стереть историю на этом устройстве",
    forgotten: "История стёрта: её ключ уничтожен.",
    forgotten_key_kept: "История стёрта с устройства, но защищённое хранилище Telegram сейчас не смогло удалить её ключ: нажмите «Стереть историю» ещё раз позже. До тех пор новые ответы не сохраняются.",
    history_kept: "История хранится на этом устройстве, зашифрованная ключом из его хранилища ключей.",
    history_full: "Память устройства заполнена, поэтому этот обмен не сохранён в истории.",
    forgotten_elsewhere: "История была стёрта на другой странице этого устройства: здесь ничего из неё больше не сохраняется и не отправляется.",
    history_key_changed: "Ключ истории на этом устройстве сменился на другой странице, поэтому показанные здесь вопросы и ответы сохранить не удалось.",
    history_unreadable: "Не удалось прочитать историю, сохранённую на этом устройстве (она повреждена или её ключа больше нет в хранилище ключей), поэтому история начата заново.",
    answer_lost: "В прошлый раз страницу закрыли, пока ответ ещё приходил: он не сохранён, а то, что модель успела написать, списано с баланса.",
    history_keychain_silent: "Защищённое хранилище Telegram не ответило, поэтому сохранённая на устройстве история не показана, а эта страница ничего не сохраняет: откройте страницу заново, чтобы попробовать ещё раз.",
    history_storage_blocked: "Этот браузер не даёт странице ничего сохранять (из-за настроек файлов cookie или данных сайтов), поэтому история не сохраняется: она исчезнет, когда вы закроете страницу.",
    history_not_kept: "В этом приложении Telegram нет защищённого хранилища, поэтому история не сохраняется: она исчезнет, когда вы закроете страницу.",
    about: "Что защищает приватный режим",
    protects: "Ваш вопрос шифруется здесь, на вашем устройстве, ключом сервера модели — после того как эта страница сверила этот ключ с ключом оператора, зашитым в саму страницу. Telegram и бот лишь передают зашифрованные байты: ни тот, ни другой не может прочитать ни ваши вопросы, ни ответы. Бот списывает оплату по подписанному чеку сервера, который проверяет и эта страница. История хранится на этом устройстве в зашифрованном виде.",
    not_protects: "Чего он не защищает: эту страницу отдаёт бот, поэтому недобросовестный оператор мог бы подсунуть другую. Сверьте SHA-256 ниже с опубликованным в README Veil (странице, которая не совпадает, доверять нельзя). Сервер модели (шлюз и модель) читает ваш вопрос: там работает модель. Telegram и бот по-прежнему видят, что вы пользуетесь приватным режимом, когда, какого размера зашифрованные сообщения, и ваш баланс.",
    page_hash: "SHA-256 кода этой страницы: {hash}",
    pinned: "Ключи оператора, зашитые в страницу: {keys}",
    unauthorized: "Откройте эту страницу из бота Veil в Telegram (/private).",
    stale: "Страница открыта слишком давно: закройте её и откройте снова из бота.",
    bot_clock: "Часы бота сбились, поэтому сейчас он не может принять эту страницу. Вы ничего не сделали не так, и повторное открытие страницы не поможет: попробуйте позже.",
    insufficient: "Недостаточно кредита для ответа. Пополните его командой /buy в боте.",
    busy: "Предыдущий ответ ещё пишется.",
    unavailable: "Сейчас нет доступного сервера модели. Попробуйте чуть позже.",
    busy_retry: "Сервер модели сейчас занят. Попробуйте снова через {seconds} с.",
    minutes_off: "{n} мин",
    hours_off: "{n} ч",
    days_off: "{n} дн.",
    device_clock: "Часы этого устройства и бота расходятся примерно на {off}, поэтому ключи сервера модели здесь не выглядят действительными (их срок проверяется по часам устройства), и ничего не отправлено. Включите на устройстве автоматические дату и время и отправьте снова.",
    keys_out_of_time: "Ключи серверов модели вне срока действия (возможно, часы сервера неверны), поэтому ничего не отправлено. Попробуйте позже.",
    untrusted: "Ключи ни одного сервера модели не прошли проверку по ключам оператора, поэтому ничего не отправлено.",
    refused: "Сервер модели отклонил запрос ({code}).",
    ChunkTampered: "Ответ был изменён в пути (часть не прошла проверку), поэтому он отброшен.",
    ChunkOutOfOrder: "Части ответа пришли не по порядку, поэтому он отброшен.",
    StreamSpliced: "В ответ подмешана часть другого ответа, поэтому он отброшен.",
    StreamTruncated: "Ответ оборвался в пути (пропала связь или бот перезапустился). Полученная часть сохранена, а вопрос снова в поле ввода, чтобы отправить его ещё раз.",
    TimeLimit: "Ответ писался дольше, чем бот отводит на один ответ, и был прерван. Полученная часть сохранена, а вопрос снова в поле ввода — его можно отправить ещё раз.",
    cut_before_text: "Связь прервалась до начала ответа. Вопрос снова в поле ввода, чтобы отправить его ещё раз.",
    time_limit_before_text: "Ответ писался дольше, чем бот отводит на один ответ, и был прерван до того, как пришёл хоть какой-то текст. Вопрос снова в поле ввода — его можно отправить ещё раз.",
    TrailingData: "После ответа пришли лишние байты, поэтому он отброшен.",
    MalformedMessage: "Ответ не удалось прочитать, поэтому он отброшен.",
    ReceiptInvalid: "Чек об использовании не прошёл проверку.",
    backend: "Модель не смогла ответить. Попробуйте ещё раз.",
    thought_only: "Модель не смогла ответить: она только размышляла и не написала ответа. По подписанному чеку списано {prompt} + {completion} токенов, включая размышления. Вопрос снова в поле ввода, чтобы отправить его ещё раз.",
    context_length: "Разговор слишком длинный для модели. Сотрите историю, чтобы начать заново.",
    stalled: "Модель перестала отвечать. Попробуйте ещё раз.",
    network: "Связь с ботом прервалась. Попробуйте ещё раз.",
    server: "Бот не смог принять ваш вопрос прямо сейчас. Попробуйте ещё раз чуть позже.",
    too_large: "Разговор слишком длинный для отправки. Сотрите историю, чтобы начать заново.",
    empty: "Сначала напишите вопрос.",
    thinking: "Размышления",
    balance_stale: "Баланс сейчас не удалось обновить.",
    request_id_taken: "Этот запрос уже был отправлен, поэтому повторно он не отправлен. Отправьте вопрос ещё раз.",
    mismatch: "Бот не смог принять запрос этой страницы ({code}). Закройте страницу и откройте её снова из бота.",
    reopen: "Ключи оператора сменились после открытия этой страницы. Закройте её и откройте снова из бота.",
    unknown_key: "Сервер модели только что сменил ключ. Отправьте вопрос ещё раз.",
    stale_request: "Часы сервера модели расходятся с часами бота, поэтому он отклонил вопрос. Попробуйте позже.",
    unknown_model: "Сервер модели больше не предлагает эту модель. Выберите другую и отправьте снова.",
    unauthenticated: "Сервер модели не принимает подпись этого бота (настройка оператора). Попробуйте позже."
  };
  var kk = {
    title: "Veil · жеке режим",
    balance: "Баланс: {balance} ★ · бүгін тегін: {free} токен",
    model: "Модель",
    placeholder: "Сұрағыңыз…",
    send: "Жіберу",
    stop: "Тоқтату",
    sealing: "Сұрағыңыз осы құрылғыда шифрлануда…",
    writing: "Жазып жатырмын…",
    stopped: "Тоқтатылды.",
    unsent: "Сұрағыңыз жіберілмей тұрып тоқтатылды: ештеңе есептен шығарылмады.",
    unanswered: "Модель сервері жауапты бастамай тұрып тоқтатылды: ештеңе есептен шығарылмады.",
    unanswered_charged: "Жауап сізге жетпей тұрып тоқтатылды, бірақ модель сервері оны бастап қойған еді: оның қол қойылған чегіне сай {prompt} + {completion} токен есептен шығарылды. Сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    unanswered_settling: "Бот әзірге білетіндей, модель сервері жауапты бастамай тұрып тоқтатылды. Егер ол бәрібір бастаған болса, жазғаны оның қол қойылған чегіне сай есептен шығарылады, мұны баланс көрсетеді; әйтпесе ештеңе шығарылмайды. Сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    receipt: "Қолтаңбалы түбіртек тексерілді: {prompt} + {completion} токен ({status}).",
    answer_cut: "✂️ Жауап ұзындық шегіне жетті; жалғасын келесі сұрағыңызда сұраңыз.",
    forget: "Осы құрылғыдағы тарихты өшіру",
    forgotten: "Тарих өшірілді: оның кілті жойылды.",
    forgotten_key_kept: "Тарих құрылғыдан өшірілді, бірақ Telegram-ның қорғалған қоймасы оның кілтін қазір жоя алмады: «Тарихты өшіру» батырмасын кейінірек қайта басыңыз. Оған дейін жаңа жауаптар сақталмайды.",
    history_kept: "Тарих осы құрылғыда, оның кілттер қоймасындағы кілтпен шифрланып сақталады.",
    history_full: "Құрылғы жады толы, сондықтан бұл сұрақ пен жауап тарихқа сақталмады.",
    forgotten_elsewhere: "Тарих осы құрылғының басқа бетінде өшірілді: мұнда одан ештеңе енді сақталмайды және жіберілмейді.",
    history_key_changed: "Осы құрылғыдағы тарих кілті басқа бетте ауыстырылды, сондықтан мұнда көрсетілген сұрақтар мен жауаптарды сақтау мүмкін болмады.",
    history_unreadable: "Құрылғыда сақталған тарихты оқу мүмкін болмады (ол бүлінген немесе оның кілті кілттер қоймасында жоқ), сондықтан тарих жаңадан басталады.",
    answer_lost: "Өткен жолы жауап әлі келіп жатқанда бет жабылды: ол сақталмады, ал модель оған дейін жазған бөлігі үшін ақы есептен шығарылды.",
    history_keychain_silent: "Telegram-ның қорғалған қоймасы жауап бермеді, сондықтан құрылғыда сақталған тарих көрсетілмейді және бұл бет ештеңе сақтамайды: қайталап көру үшін бетті қайта ашыңыз.",
    history_storage_blocked: "Бұл браузер бетке ештеңе сақтауға рұқсат бермейді (cookie немесе сайт деректері баптауларына байланысты), сондықтан тарих сақталмайды: бетті жапқанда ол жойылады.",
    history_not_kept: "Бұл Telegram қолданбасында қорғалған қойма жоқ, сондықтан тарих сақталмайды: бетті жапқанда ол жойылады.",
    about: "Жеке режим нені қорғайды",
    protects: "Сұрағыңыз осында, құрылғыңызда, модель серверінің кілтімен шифрланады — бұл бет ол кілтті беттің өзіне енгізілген оператор кілтімен салыстырып тексергеннен кейін. Telegram мен бот тек шифрланған байттарды жеткізеді: екеуі де сұрақтарыңызды да, жауаптарды да оқи алмайды. Бот төлемді сервердің қолтаңбалы түбіртегі бойынша алады, оны осы бет те тексереді. Тарихыңыз осы құрылғыда шифрланып сақталады.",
    not_protects: "Неден қорғамайды: бұл бетті бот береді, сондықтан адал емес оператор басқа бет беруі мүмкін. Төмендегі SHA-256 мәнін Veil README-інде жарияланғанмен салыстырыңыз (сәйкес келмейтін бетке сенуге болмайды). Модель сервері (шлюз бен модель) сұрағыңызды оқиды: модель сонда жұмыс істейді. Telegram мен бот жеке режимді қолданатыныңызды, қашан, шифрланған хабарлардың көлемін және балансыңызды бәрібір көреді.",
    page_hash: "Осы бет кодының SHA-256 мәні: {hash}",
    pinned: "Бетке енгізілген оператор кілттері: {keys}",
    unauthorized: "Бұл бетті Telegram-дағы Veil ботынан ашыңыз (/private).",
    stale: "Бет тым ерте ашылған: оны жауып, боттан қайта ашыңыз.",
    bot_clock: "Боттың сағаты қате тұр, сондықтан ол бұл бетті қазір қабылдай алмайды. Бұл сіздің қателігіңіз емес, бетті қайта ашу да көмектеспейді: кейінірек қайталап көріңіз.",
    insufficient: "Жауапқа кредит жеткіліксіз. Боттағы /buy арқылы толтырыңыз.",
    busy: "Алдыңғы жауап әлі жазылып жатыр.",
    unavailable: "Қазір қолжетімді модель сервері жоқ. Сәлден соң қайталап көріңіз.",
    busy_retry: "Модель сервері қазір бос емес. {seconds} с кейін қайталап көріңіз.",
    minutes_off: "{n} минут",
    hours_off: "{n} сағат",
    days_off: "{n} күн",
    device_clock: "Бұл құрылғының сағаты мен боттың сағаты шамамен {off} алшақ, сондықтан модель серверінің кілттері мұнда жарамды болып көрінбейді (олардың мерзімі құрылғы сағатымен тексеріледі), ештеңе жіберілмеді. Құрылғыда күн мен уақытты автоматты түрде орнатып, қайта жіберіңіз.",
    keys_out_of_time: "Модель серверлерінің кілттері жарамдылық мерзімінен тыс (сервер сағаты қате болуы мүмкін), сондықтан ештеңе жіберілмеді. Кейінірек қайталап көріңіз.",
    untrusted: "Бірде-бір модель серверінің кілті оператор кілттерімен тексеруден өтпеді, сондықтан ештеңе жіберілмеді.",
    refused: "Модель сервері сұрауды қабылдамады ({code}).",
    ChunkTampered: "Жауап жолда өзгертілген (бір бөлігі тексеруден өтпеді), сондықтан ол алынып тасталды.",
    ChunkOutOfOrder: "Жауаптың бөліктері ретсіз келді, сондықтан ол алынып тасталды.",
    StreamSpliced: "Жауапқа басқа жауаптың бөлігі араласқан, сондықтан ол алынып тасталды.",
    StreamTruncated: "Жауап жолда үзіліп қалды (байланыс үзілді немесе бот қайта іске қосылды). Келген бөлігі сақталды, ал сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    TimeLimit: "Жауап бот бір жауапқа беретін уақыттан ұзаққа созылды, сондықтан сол жерде үзілді. Келген бөлігі сақталды, ал сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    cut_before_text: "Жауап басталмай тұрып байланыс үзілді. Сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    time_limit_before_text: "Жауап бот бір жауапқа беретін уақыттан ұзаққа созылды, сондықтан оның мәтіні келмей тұрып үзілді. Сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    TrailingData: "Жауаптан кейін артық байттар келді, сондықтан ол алынып тасталды.",
    MalformedMessage: "Жауапты оқу мүмкін болмады, сондықтан ол алынып тасталды.",
    ReceiptInvalid: "Пайдалану түбіртегі тексеруден өтпеді.",
    backend: "Модель бұл жолы жауап бере алмады. Қайталап көріңіз.",
    thought_only: "Модель бұл жолы жауап бере алмады: ол тек ойланды және жауап жазбады. Қолтаңбалы түбіртек бойынша {prompt} + {completion} токен есептен шығарылды, ой-толғауы да. Сұрағыңыз қайта жіберу үшін енгізу өрісінде тұр.",
    context_length: "Бұл әңгіме модель үшін тым ұзын. Жаңадан бастау үшін тарихты өшіріңіз.",
    stalled: "Модель жауап беруді тоқтатты. Қайталап көріңіз.",
    network: "Ботпен байланыс үзілді. Қайталап көріңіз.",
    server: "Бот сұрағыңызды дәл қазір қабылдай алмады. Сәлден соң қайталап көріңіз.",
    too_large: "Бұл әңгіме жіберуге тым ұзын. Жаңадан бастау үшін тарихты өшіріңіз.",
    empty: "Алдымен сұрақ жазыңыз.",
    thinking: "Ой-толғау",
    balance_stale: "Балансты қазір жаңарту мүмкін болмады.",
    request_id_taken: "Бұл сұрау бұрын жіберілген, сондықтан қайта жіберілмеді. Сұрағыңызды қайта жіберіңіз.",
    mismatch: "Бот бұл беттің сұрауын қабылдай алмады ({code}). Бетті жауып, боттан қайта ашыңыз.",
    reopen: "Бұл бет ашылғаннан кейін оператор кілттері ауысты. Оны жауып, боттан қайта ашыңыз.",
    unknown_key: "Модель сервері кілтін жаңа ғана ауыстырды. Сұрағыңызды қайта жіберіңіз.",
    stale_request: "Модель серверінің сағаты боттың сағатымен сәйкес емес, сондықтан сұрақ қабылданбады. Кейінірек қайталап көріңіз.",
    unknown_model: "Модель сервері бұл модельді енді ұсынбайды. Басқасын таңдап, қайта жіберіңіз.",
    unauthenticated: "Модель сервері бұл боттың қолтаңбасын қабылдамайды (оператор баптауы). Кейінірек қайталап көріңіз."
  };
  var CATALOGS = { en, ru, kk };
  function textsFor(languageCode) {
    const code = String(languageCode || "en").split("-")[0].toLowerCase();
    const language = code in CATALOGS ? code : "en";
    const catalog = CATALOGS[language];
    const texts = (key, values = {}) => (catalog[key] ?? en[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
    texts.language = language;
    return texts;
  }

  // src/app.js
  var RETRY_STATUSES = /* @__PURE__ */ new Set([408, 429, 500, 502, 503, 504]);
  var STOP_AGAIN_MS = 1e3;
  var DISCARD = /* @__PURE__ */ new Set([
    "ChunkTampered",
    "ChunkOutOfOrder",
    "StreamSpliced",
    "TrailingData",
    "MalformedMessage"
  ]);
  var BOT_CODES = {
    unauthorized: "unauthorized",
    stale: "stale",
    bot_clock: "bot_clock",
    insufficient_credit: "insufficient",
    busy: "busy",
    untrusted: "untrusted",
    reopen: "reopen",
    device_clock: "device_clock",
    keys_out_of_time: "keys_out_of_time",
    unavailable: "unavailable",
    body_timeout: "network",
    too_large: "too_large",
    request_id_taken: "request_id_taken",
    stopped: "unanswered",
    bad_request: "mismatch",
    not_found: "mismatch",
    method_not_allowed: "mismatch",
    ledger: "server",
    error: "server"
  };
  var GATEWAY_CODES = {
    unknown_key: "unknown_key",
    stale_request: "stale_request",
    unknown_model: "unknown_model",
    unauthenticated: "unauthenticated",
    too_large: "too_large"
  };
  var $ = (id) => document.getElementById(id);
  function startsWith(all, part) {
    return part.length <= all.length && part.every((turn, i) => turn.role === all[i].role && turn.content === all[i].content);
  }
  function temporaryRefusal(error) {
    const refused = error.body?.error || {};
    return error.code === "gateway_refused" && (RETRY_STATUSES.has(refused.gateway_status) || refused.gateway_code === "unreachable");
  }
  function anotherMayTake(error) {
    return error instanceof ApiError && (temporaryRefusal(error) || error.code === "gateway_refused" && error.body.error?.gateway_code === "stale_request");
  }
  function config() {
    const value = JSON.parse($("veil-config").textContent);
    return { operatorKeys: value.operator_keys.map(b64d), scriptSha256: value.script_sha256 };
  }
  var Unsent = class extends Error {
  };
  var ApiError = class extends Error {
    constructor(status, body) {
      super(body?.error?.code || `HTTP ${status}`);
      this.status = status;
      this.code = body?.error?.code || "error";
      this.body = body || {};
    }
  };
  var App = class {
    constructor() {
      this.launch = launchParams();
      this.t = textsFor(this.launch.user?.language_code);
      this.config = config();
      this.history = new History(new ClientStorage("secure", this.launch.version), this.launch.user?.id ?? 0);
      this.running = null;
      this.forgetting = null;
      this.shown = null;
      this.shownTurns = [];
      this.account = null;
      this.loadingAccount = false;
      this.takingIn = false;
      this.clockOffset = 0;
    }
    /**
     * Now, in seconds, by the bot's clock as its last reply's Date header gave it: what the
     * sealed request's timestamp needs (the gateway allows two minutes of skew, and a phone's
     * clock set by hand can be further off). The bundle's validity is still judged by this
     * device's own clock.
     */
    serverNow() {
      return Math.floor(Date.now() / 1e3 + this.clockOffset);
    }
    learnClock(response) {
      const served = Date.parse(response.headers.get("Date") ?? "");
      if (Number.isFinite(served)) this.clockOffset = (served - Date.now()) / 1e3;
    }
    url(path) {
      return new URL(path, window.location.href).toString();
    }
    async api(path, { method = "GET", body, headers = {} } = {}) {
      const response = await fetch(this.url(path), {
        method,
        body,
        headers: { Authorization: `tma ${this.launch.initData}`, ...headers },
        cache: "no-store"
      });
      if (!response.ok) {
        let payload = null;
        try {
          payload = await response.json();
        } catch {
          payload = null;
        }
        throw new ApiError(response.status, payload);
      }
      return response;
    }
    // -- the page ------------------------------------------------------------------------------
    async start() {
      installBridge();
      applyTheme(this.launch.theme);
      onEvent("theme_changed", (data) => applyTheme(data?.theme_params));
      postEvent("web_app_ready");
      postEvent("web_app_expand");
      postEvent("web_app_set_header_color", { color_key: "bg_color" });
      document.documentElement.lang = this.t.language;
      this.renderStatic();
      $("send").addEventListener("click", () => this.running ? this.stop() : this.ask());
      $("forget").addEventListener("click", () => this.forget());
      $("question").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) this.ask();
      });
      const kept = await this.history.open();
      this.shown = this.showing();
      let told = this.history.silent ? "history_keychain_silent" : "history_not_kept";
      if (this.history.forgetPending) told = "forgotten_key_kept";
      if (!this.history.local) told = "history_storage_blocked";
      this.note(this.t(kept ? "history_kept" : told), "history");
      if (this.history.unreadable) $("notice").textContent += ` ${this.t("history_unreadable")}`;
      this.showKept();
      window.addEventListener("storage", (event) => {
        if (this.history.watches(event.key)) this.takeInOthers();
      });
      await this.refreshAccount();
      if (await this.history.takeLost()) $("notice").textContent += ` ${this.t("answer_lost")}`;
      document.body.dataset.ready = "true";
    }
    renderStatic() {
      const t = this.t;
      document.title = t("title");
      $("title").textContent = t("title");
      $("model-label").textContent = t("model");
      $("question").placeholder = t("placeholder");
      $("send").textContent = t("send");
      $("forget").textContent = t("forget");
      $("about-title").textContent = t("about");
      $("protects").textContent = t("protects");
      $("not-protects").textContent = t("not_protects");
      $("page-hash").textContent = t("page_hash", { hash: this.config.scriptSha256 });
      $("pinned").textContent = t("pinned", { keys: this.config.operatorKeys.map(b64e).join(", ") });
    }
    /**
     * Show the balance and the models. ``afterAnswer``: the notice holds how the answer ended
     * (its verified receipt, a stop, an error), which a failed refresh must not replace; the
     * balance says instead that it could not be updated.
     */
    async refreshAccount({ afterAnswer = false } = {}) {
      try {
        const account = await (await this.api("api/account")).json();
        this.account = account;
        delete $("balance").dataset.stale;
        $("balance").textContent = this.t("balance", {
          balance: account.balance,
          free: account.free_tokens_left
        });
        const select = $("model");
        const chosen = select.value || this.history.local?.getItem("veil:model") || account.default_model;
        select.replaceChildren(
          ...account.models.map((name) => {
            const option = document.createElement("option");
            option.value = name;
            option.textContent = name;
            return option;
          })
        );
        if (account.models.includes(chosen)) select.value = chosen;
      } catch (error) {
        if (!afterAnswer) {
          this.fail(error);
          return;
        }
        $("balance").textContent = this.t("balance_stale");
        $("balance").dataset.stale = "true";
      }
    }
    note(text, kind = "info") {
      const notice = $("notice");
      notice.textContent = text;
      notice.dataset.kind = kind;
    }
    bubble(role, text) {
      const item = document.createElement("div");
      item.className = `bubble ${role}`;
      item.dir = "auto";
      item.textContent = text;
      $("messages").append(item);
      item.scrollIntoView({ block: "end" });
      return item;
    }
    /** A folded place for a reasoning model's thinking, just before the answer's bubble. */
    thought(answer) {
      const item = document.createElement("details");
      item.className = "bubble assistant thinking";
      const summary = document.createElement("summary");
      summary.textContent = `💭 ${this.t("thinking")}`;
      const body = document.createElement("div");
      body.dir = "auto";
      item.append(summary, body);
      answer.before(item);
      return body;
    }
    fail(error) {
      let key = "network";
      let values = {};
      if (error instanceof SealedError) {
        if (error.kind.startsWith("Bundle") || error.kind === "UnsupportedSuite") key = "untrusted";
        else if (error.kind === "RequestTooLarge") key = "too_large";
        else key = this.t(error.kind) === error.kind ? "MalformedMessage" : error.kind;
      } else if (error instanceof ApiError) {
        const sent = error.body?.error?.code;
        if (error.code === "gateway_refused") {
          const code = error.body.error.gateway_code;
          key = GATEWAY_CODES[code] || "refused";
          values = { code };
        } else {
          const own = error.status >= 500 || error.status === 429 ? "server" : "mismatch";
          key = sent && BOT_CODES[sent] || own;
          values = { code: sent || `HTTP ${error.status}`, off: error.body?.error?.off };
        }
        if (temporaryRefusal(error)) {
          const seconds = error.body.error.retry_after;
          key = Number.isInteger(seconds) && seconds > 0 ? "busy_retry" : "unavailable";
          values = { seconds };
        }
      }
      this.note(this.t(key, values), "error");
      $("notice").dataset.error = error instanceof SealedError ? error.kind : error.code || "network";
    }
    // -- asking --------------------------------------------------------------------------------
    /**
     * The chat to seal for ``question``: the history that fits ``stated`` (the bundle's window).
     *
     * A question too long by its bytes for the answer's room (a long paste: bytes are only the
     * tokens' ceiling) is still asked with the room, as the bot asks its own; if the model server
     * finds it too long, the page asks once more (``refitted``).
     */
    chat(request2, stated, answerTokens) {
      const { fit, room, maxAnswer } = this.fit(request2, stated);
      return {
        model: request2.model,
        messages: fit.messages,
        cache_salt: this.history.cacheSalt,
        max_completion_tokens: Math.min(answerTokens ?? maxAnswer, Math.max(fit.maxAnswer, room))
      };
    }
    /** What of the history fits ``stated`` for ``request`` (``fitContext``), and the room kept. */
    fit(request2, stated) {
      const account = this.account || {};
      const maxAnswer = account.max_answer_tokens || 1024;
      const window2 = modelWindow(stated, account.context_tokens);
      const fit = fitContext(this.history.turns, request2.question, {
        window: window2,
        maxAnswer,
        minAnswer: account.min_answer_tokens || DEFAULT_MIN_ANSWER
      });
      return { fit, room: Math.min(maxAnswer, Math.floor(window2 / 2)), maxAnswer };
    }
    /**
     * The chat to ask again after the model server refused ``chat`` as too long: the answer
     * fitted to the prompt's count its refusal states, or, where it states none exactly (a later
     * vLLM counts only one token past the room), what the question's bytes leave, as before the
     * room was asked for. Null when there is nothing to ask again (another failure, text already
     * shown, no room worth an answer, or no less than was asked).
     */
    refitted(request2, stated, chat, result, shown) {
      if (result.error?.kind !== "context_length" || shown) return null;
      const refusal = contextRefusal(result.error.message);
      const tokens = refusal ? refusal.window - refusal.prompt : this.fit(request2, stated).fit.maxAnswer;
      const floor = (this.account || {}).min_answer_tokens || DEFAULT_MIN_ANSWER;
      if (tokens < floor || tokens >= chat.max_completion_tokens) return null;
      return { ...chat, max_completion_tokens: tokens };
    }
    async ask() {
      const question = $("question").value.trim();
      if (!question || this.running) {
        if (!question) this.note(this.t("empty"));
        return;
      }
      if (!this.account) {
        if (this.loadingAccount) return;
        this.loadingAccount = true;
        try {
          await this.refreshAccount();
        } finally {
          this.loadingAccount = false;
        }
        if (!this.account || this.running) return;
      }
      const model = $("model").value;
      try {
        this.history.local?.setItem("veil:model", model);
      } catch {
      }
      const request2 = { model, question };
      $("question").value = "";
      const asked = this.bubble("user", question);
      const answer = this.bubble("assistant", "");
      answer.id = "answer";
      for (const old of document.querySelectorAll("#answer")) if (old !== answer) old.removeAttribute("id");
      this.note(this.t("sealing"), "progress");
      delete $("notice").dataset.error;
      delete $("notice").dataset.status;
      delete $("notice").dataset.cut;
      this.setRunning({
        requestId: null,
        responseKey: null,
        stopRequested: false,
        stopTaken: null,
        // the request id of the stop the bot took
        answering: false
      });
      let text = "";
      let thought = "";
      let thinking = null;
      let unshown = "";
      const running = this.running;
      const forgotten = () => running.forgotten === true;
      try {
        if (this.forgetting) await this.forgetting.catch(() => {
        });
        await this.history.reload();
        if (this.history.key !== this.shown.key || this.history.epoch !== this.shown.epoch) {
          $("messages").replaceChildren(asked, answer);
          this.shown = this.showing();
          this.shownTurns = [];
        }
        this.showKept(asked);
        const on = {
          shown: () => text !== "" || thinking !== null,
          // Each piece is added to what is shown, never the whole text set again: a long answer
          // costs the page its length, not its length squared.
          delta: (delta) => {
            text += delta;
            answer.append(delta);
          },
          // Shown as the chat shows it: without its opening and closing blanks, and not at all
          // when it is blanks alone (Qwen3's "<think>\n\n</think>" when it does not think).
          // Blanks as the chat's str.strip() counts them (think.js), not as trim() does. Until
          // it shows, the thinking so far is blanks: only the new piece needs reading.
          // Added piece by piece too: the blanks at its end so far wait (``unshown``) until text
          // follows them.
          reasoning: (piece) => {
            thought += piece;
            if (thinking === null && isBlank(piece)) return;
            thinking ?? (thinking = this.thought(answer));
            unshown += piece;
            const core = strip(unshown);
            if (!core) return;
            const end = unshown.indexOf(core) + core.length;
            thinking.append(thinking.firstChild ? unshown.slice(0, end) : core);
            unshown = unshown.slice(end);
          }
        };
        let result;
        try {
          result = await this.send(request2, on);
        } catch (error) {
          if (!(error instanceof ApiError && error.body?.error?.gateway_status === 410)) throw error;
          result = await this.send(request2, on);
        }
        const receipt = result.receipt?.receipt;
        const thoughtOnly = receipt?.status === "complete" && thought !== "" && !text.trim();
        if (result.error) {
          const seconds = result.error.retryAfter;
          const busy = result.error.kind === "unavailable" && seconds > 0;
          this.note(busy ? this.t("busy_retry", { seconds }) : this.t(result.error.kind), "error");
          $("notice").dataset.error = result.error.kind;
        } else if (receipt?.status === "complete" && receipt.completionTokens === 0) {
          this.takeBack(asked, answer, question);
          this.note(this.t("backend"), "error");
          $("notice").dataset.status = "empty";
        } else if (thoughtOnly) {
          const counts = { prompt: receipt.promptTokens, completion: receipt.completionTokens };
          this.note(this.t("thought_only", counts), "error");
          $("notice").dataset.status = "thought_only";
          answer.textContent = "";
          if (!$("question").value) $("question").value = question;
        } else if (receipt) {
          const counts = {
            prompt: receipt.promptTokens,
            completion: receipt.completionTokens,
            status: receipt.status
          };
          const stopped = receipt.status === "stopped" ? `${this.t("stopped")} ` : "";
          const cut = receipt.status === "complete" && result.finishReason === "length";
          this.note(stopped + this.t("receipt", counts) + (cut ? ` ${this.t("answer_cut")}` : ""), "done");
          $("notice").dataset.status = receipt.status;
          if (cut) $("notice").dataset.cut = "length";
        }
        const kept = !result.error && text && !thoughtOnly && !forgotten();
        if (kept) await this.keep(question, text, asked);
      } catch (error) {
        if (error instanceof Unsent) {
          this.takeBack(asked, answer, question);
          this.note(this.t("unsent"), "info");
          $("notice").dataset.status = "unsent";
          return;
        }
        if (error instanceof ApiError && error.code === "stopped") {
          this.takeBack(asked, answer, question);
          const charged = error.body.error?.charged;
          const counts = { prompt: charged?.prompt_tokens, completion: charged?.completion_tokens };
          const told = error.body.error?.settling ? "unanswered_settling" : "unanswered";
          this.note(charged ? this.t("unanswered_charged", counts) : this.t(told), "info");
          $("notice").dataset.status = "unanswered";
          return;
        }
        const cut = error instanceof SealedError && (error.kind === "StreamTruncated" || error.kind === "TimeLimit");
        if (cut && this.running.stopRequested) {
          this.note(this.t("stopped"), "done");
          $("notice").dataset.status = "stopped";
          if (text && !forgotten()) await this.keep(question, text, asked);
          return;
        }
        if (cut) {
          this.fail(error);
          if (!text) {
            const told = error.kind === "TimeLimit" ? "time_limit_before_text" : "cut_before_text";
            this.note(this.t(told), "error");
          }
          if (text && !forgotten()) await this.keep(question, text, asked);
          if (!$("question").value) $("question").value = question;
          return;
        }
        if (error instanceof SealedError && DISCARD.has(error.kind)) {
          answer.textContent = "";
          thinking?.parentElement.remove();
        }
        this.fail(error);
        if (!this.running.answering) this.takeBack(asked, answer, question);
      } finally {
        if (!answer.textContent) answer.remove();
        const dropped = this.history.takeDropped();
        if (dropped) $("notice").textContent += ` ${this.t(dropped)}`;
        this.history.answered();
        this.setRunning(null);
        await this.refreshAccount({ afterAnswer: true });
      }
    }
    /** The history now shown: its key and the mark of the Forget before it (``History.epoch``). */
    showing() {
      return { key: this.history.key, epoch: this.history.epoch };
    }
    /** Keep an exchange in the device history; the screen shows what other pages kept meanwhile. */
    async keep(question, text, asked) {
      if (!await this.history.add(question, text)) {
        $("notice").textContent += ` ${this.t("history_full")}`;
      }
      const [last, answered] = this.history.turns.slice(-2);
      this.showKept(asked, last?.content === question && answered?.content === text ? 2 : 0);
    }
    /**
     * Show the history's exchanges this screen does not show yet (kept by another page of this
     * user on the device since), before ``before`` (at the end when null); ``own``: the newest
     * turns are this page's, shown already. Two pages share one history and each sends it as the
     * context of its next question: the screen shows what the model is sent, as one page would.
     */
    showKept(before = null, own = 0) {
      const turns = this.history.turns;
      const known = this.shownTurns;
      const others = turns.slice(0, turns.length - own);
      let dropped = 0;
      while (dropped < known.length && !startsWith(others, known.slice(dropped))) dropped += 2;
      const fresh = others.slice(known.length - dropped);
      for (let i = 0; i + 1 < fresh.length; i += 2) {
        for (const turn of fresh.slice(i, i + 2)) {
          const item = this.bubble(turn.role, turn.content);
          if (before) before.before(item);
        }
      }
      this.shownTurns = turns.slice();
    }
    /** Another page kept an exchange (its storage event): show it, unless a question is on. */
    async takeInOthers() {
      if (this.running || this.forgetting || this.takingIn) return;
      this.takingIn = true;
      try {
        await this.history.reload();
        if (this.running || this.forgetting) return;
        if (this.history.key !== this.shown.key || this.history.epoch !== this.shown.epoch) {
          $("messages").replaceChildren();
          this.shown = this.showing();
          this.shownTurns = [];
        }
        const dropped = this.history.takeDropped();
        if (dropped) this.note(this.t(dropped), "history");
        this.showKept();
      } finally {
        this.takingIn = false;
      }
    }
    /** As if never asked: its bubbles gone, the question back where it was typed. */
    takeBack(asked, answer, question) {
      asked.remove();
      answer.remove();
      if (!$("question").value) $("question").value = question;
    }
    setRunning(running) {
      this.running = running;
      $("send").textContent = running ? this.t("stop") : this.t("send");
      $("send").dataset.state = running ? "stop" : "send";
    }
    /** Prepare, seal to the first gateway that takes it, relay and open the stream. */
    async send(request2, on) {
      const size = encodeInner(this.chat(request2, null), {
        requestId: new Uint8Array(16),
        responseKey: new Uint8Array(32),
        timestamp: Math.floor(Date.now() / 1e3)
      }).length;
      const prepared = await this.api("api/prepare", {
        method: "POST",
        body: JSON.stringify({ model: request2.model, size }),
        headers: { "Content-Type": "application/json" }
      });
      this.learnClock(prepared);
      const offer = await prepared.json();
      let lastError = new SealedError("BundleUnpinned", "no gateway");
      let verifiedAny = false;
      const unverified = [];
      for (const offered of offer.gateways) {
        const { gateway, bundle: wire } = offered;
        let verified;
        try {
          verified = verifyBundle(wire, this.config.operatorKeys, Math.floor(Date.now() / 1e3));
        } catch (error) {
          lastError = error;
          unverified.push(offered);
          continue;
        }
        if (verified.bundle.suite !== 1 || !verified.bundle.models.includes(request2.model)) continue;
        verifiedAny = true;
        const stated = verified.bundle.windows[request2.model] ?? null;
        const chat = this.chat(request2, stated, offer.max_completion_tokens);
        try {
          const result = await this.relay(gateway, verified.bundle, chat, on);
          const again = this.refitted(request2, stated, chat, result, on.shown());
          return again ? await this.relay(gateway, verified.bundle, again, on) : result;
        } catch (error) {
          if (!anotherMayTake(error)) throw error;
          lastError = error;
        }
      }
      if (!verifiedAny) {
        const reopen = await this.reopenWouldVerify(unverified);
        throw new ApiError(503, { error: reopen ? { code: "reopen" } : this.outOfTime(unverified) });
      }
      throw lastError;
    }
    /**
     * Why no bundle of ``gateways`` verified, when it is time and not the keys: ``device_clock``
     * (with how far) where one verifies by the bot's clock, so this device's clock and the bot's
     * disagree (most likely this device's, set by hand); ``keys_out_of_time`` where every bundle
     * failed only on its validity window by both clocks (a gateway's clock is off); else
     * ``untrusted``. The bot's clock only names the trouble: a bundle is still used only when this
     * device's clock finds it valid, as the bot could make its Date header say anything.
     */
    outOfTime(gateways) {
      const verifies = (bundle, now) => {
        try {
          verifyBundle(bundle, this.config.operatorKeys, now);
          return null;
        } catch (error) {
          return error;
        }
      };
      const here = Math.floor(Date.now() / 1e3);
      const expired = ({ bundle }) => verifies(bundle, here)?.kind === "BundleExpired";
      if (!gateways.length || !gateways.every(expired)) return { code: "untrusted" };
      if (gateways.some(({ bundle }) => verifies(bundle, this.serverNow()) === null)) {
        return { code: "device_clock", off: this.timeOff(Math.abs(this.clockOffset)) };
      }
      return { code: "keys_out_of_time" };
    }
    /** ``seconds`` as the page says how far a clock is off: minutes, hours or days. */
    timeOff(seconds) {
      const minutes = Math.max(1, Math.round(seconds / 60));
      const hours = Math.round(minutes / 60);
      if (minutes < 120) return this.t("minutes_off", { n: minutes });
      if (hours < 48) return this.t("hours_off", { n: hours });
      return this.t("days_off", { n: Math.round(hours / 24) });
    }
    /**
     * Whether the page the bot serves now pins an operator key that one of ``gateways``' bundles
     * verifies under (read, never adopted: this page trusts only the keys it was opened with).
     */
    async reopenWouldVerify(gateways) {
      if (!gateways.length) return false;
      try {
        const here = new URL(window.location.href);
        here.hash = "";
        const response = await fetch(here.toString(), { cache: "no-store" });
        if (!response.ok) return false;
        const served = new DOMParser().parseFromString(await response.text(), "text/html");
        const keys = JSON.parse(served.getElementById("veil-config").textContent).operator_keys.map(b64d);
        const now = Math.floor(Date.now() / 1e3);
        return gateways.some(({ bundle }) => {
          try {
            verifyBundle(bundle, keys, now);
            return true;
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    }
    /**
     * Relay the sealed chat; ``on.delta`` and ``on.reasoning`` get the texts as they open. A
     * ``<think>`` opening the answer's text is thinking (``ThinkTags``), given to
     * ``on.reasoning`` as a REASONING record's would be; what it held back at the end (a tag's
     * possible start, or thinking never closed) is given out once the stream ends or breaks.
     */
    async relay(gateway, bundle, chat, on) {
      const { requestId, responseKey } = newRequestSecrets();
      const body = await sealRequest(bundle, chat, {
        requestId,
        responseKey,
        timestamp: this.serverNow()
      });
      if (this.running.stopRequested) throw new Unsent("stopped before sending");
      Object.assign(this.running, { requestId, responseKey });
      this.history.asking();
      const response = await this.api("api/relay", {
        method: "POST",
        body,
        headers: {
          "Content-Type": "application/vnd.veil.sealed-request",
          "Veil-Gateway": String(gateway),
          "Veil-Request-Id": toHex(requestId),
          // Percent-encoded (the bot decodes it): a header holds Latin-1 at most, and fetch refuses
          // a model name beyond it before anything is sent.
          "Veil-Model": encodeURIComponent(chat.model),
          "Veil-Max-Tokens": String(chat.max_completion_tokens),
          "Veil-Proof": b64e(receiptProof(responseKey, requestId)),
          // The page reads a busy model server's wait in its error record (docs/protocol.md):
          // the bot asks the gateway for it, and the page tells when to try again.
          "Veil-Accept": "retry_after"
        }
      });
      this.running.answering = true;
      this.note(this.t("writing"), "progress");
      if (this.running.stopRequested && this.running.stopTaken !== requestId) this.stop();
      const opener = new ChunkOpener(responseKey);
      const reader = response.body.getReader();
      const tags = new ThinkTags();
      const show = (pieces) => {
        for (const [kind, piece] of pieces) on[kind === "text" ? "delta" : "reasoning"](piece);
      };
      let final = null;
      try {
        for (; ; ) {
          let chunk;
          try {
            chunk = await reader.read();
          } catch {
            show(tags.end());
            throw new SealedError("StreamTruncated", "the connection broke");
          }
          if (chunk.done) break;
          for (const record of await opener.feed(chunk.value)) {
            if (record.type === "final") final = record;
            else if (record.type === "delta") show(record.text ? tags.feed(record.text) : []);
            else if (record.text) on[record.type](record.text);
          }
        }
      } catch (error) {
        reader.cancel().catch(() => {
        });
        throw error;
      }
      show(tags.end());
      opener.close();
      if (final.receipt === null) throw new SealedError("ReceiptInvalid", "no receipt");
      verifyReceipt(final.receipt, bundle.receiptKey, requestId, chat.model);
      return final;
    }
    async stop(running = this.running) {
      if (!running) return;
      running.stopRequested = true;
      if (!running.requestId) return;
      const requestId = running.requestId;
      try {
        await this.api("api/stop", {
          method: "POST",
          body: JSON.stringify({
            request_id: toHex(requestId),
            proof: b64e(cancelProof(running.responseKey, requestId))
          }),
          headers: { "Content-Type": "application/json" }
        });
        running.stopTaken = requestId;
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) {
          this.fail(error);
        } else if (this.running === running && running.requestId === requestId && !running.answering) {
          setTimeout(() => {
            if (this.running === running && !running.answering) this.stop(running);
          }, STOP_AGAIN_MS);
        }
      }
    }
    /**
     * Forget this device's history. As /forget does in the chat, the answer being written is
     * stopped first and nothing of the erased conversation is kept afterwards. It leaves the
     * screen at once; a question asked before the new history's key is made waits for it.
     */
    forget() {
      $("messages").replaceChildren();
      this.shownTurns = [];
      if (this.forgetting) return this.forgetting;
      const running = this.running;
      this.forgetting = (async () => {
        try {
          if (running) {
            running.forgotten = true;
            await this.stop();
          }
          const destroyed = await this.history.forget();
          this.note(this.t(destroyed ? "forgotten" : "forgotten_key_kept"), "forgotten");
        } catch (error) {
          this.fail(error);
        } finally {
          this.forgetting = null;
        }
      })();
      return this.forgetting;
    }
  };
  function startApp() {
    const app = new App();
    globalThis.veilApp = app;
    app.start().catch((error) => app.fail(error));
  }

  // src/main.js
  globalThis.VeilProtocol = {
    ...protocol_exports,
    sealHistory,
    openHistory,
    slotFor,
    fitContext,
    modelWindow,
    contextRefusal,
    ThinkTags,
    catalogs: CATALOGS
  };
  if (typeof document !== "undefined" && document.getElementById("veil-config")) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startApp);
    else startApp();
  }
})();
