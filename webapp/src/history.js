// Private-mode history: on the device only, encrypted.
//
// The key (32 random bytes) lives in Telegram's SecureStorage, the device keychain; the
// ciphertext (ChaCha20-Poly1305, a fresh random nonce each save) in the browser's localStorage.
// The bot never sees either. Where the Telegram app has no SecureStorage (older apps, desktop
// and web clients), nothing is written anywhere: the history lasts as long as the page is open,
// and the page says so. /forget (the page's Forget button) clears the key and the ciphertext.
// Every page of the user on the device shares both: each read, change and write of them is
// done under one Web Lock (``exclusive``), so that two pages never write over each other's
// exchange, nor a page's write bring back a history another page is forgetting. A webview
// without Web Locks (iOS before 15.4) cannot take turns so: there each Forget leaves a mark of
// its own beside the ciphertext (with the erase), and a page writes only under the mark it
// read with its turns and key; one that finds a newer mark drops what it holds instead.
// Each ciphertext carries the mark it was sealed under, so one sealed before the last Forget
// is erased even where the Forget did not get to remove it (a crash, another page between two
// writes). A Forget writes in this order: its removal due, its mark, then the erase; each page
// between any two of them, or after a crash, finds the history forgotten.
// A browser that refuses the page its storage (older Safari with cookies blocked throws on the
// very ``localStorage`` property) keeps nothing: the page works and says so.
// The same secret also makes the conversation's cache salt, so the model server's prefix cache
// cannot be probed across users.
// The names it is stored under (and the Web Locks') do not hold the Telegram user id: they are
// named by a slow hash of it with a fixed label (``slotFor``), not by one keyed with the history
// key, as they must be known before the keychain answers (the lock, a Forget's mark and its
// removal due are read first), in apps without a keychain, and across a Forget (which makes a
// new key). Anyone with the browser profile then no longer reads who used Veil in its list of
// names; one who already suspects a given id can still test it (one hash, a moment's work),
// and searching every id takes a GPU a day or more. Names of an older bundle, with the id in
// clear, are moved once when the page opens (``migrate``).

import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { pbkdf2Async } from "@noble/hashes/pbkdf2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { b64d, b64e, concat, fromUtf8, randomBytes, sha256Hex, toHex, utf8 } from "./protocol.js";

const KEY_NAME = "veil_history_key";
const AAD = utf8("veil/history/v1");
const MAX_TURNS = 200;
const CHANGED = "changed"; // save(): another page wrote the history since it was read
const ADD_TRIES = 3; // reads and writes of one exchange while other pages keep writing
// A keychain request's failure in an app of Bot API 9.0+ that has no keychain (Telegram
// Desktop, the web apps): there is no key to destroy there.
const NO_KEYCHAIN = "UNSUPPORTED";
const FORGOTTEN = "forgotten history"; // openHistory(): sealed before the device's last Forget
// The storage names' hash (``slotFor``): PBKDF2-HMAC-SHA256 of the decimal user id, this label
// as its salt, this many rounds, 16 bytes. Changing any of them loses every device's history.
const SLOT_LABEL = utf8("veil/history-slot/v1");
const SLOT_ROUNDS = 100000;
// What the names start with: + 32 hex digits (``slotFor``); an older bundle's, + the user id.
const PREFIX = "veil:history:";

/**
 * The storage name of a Telegram user's history on the device; the names beside it start with
 * it. WebCrypto's PBKDF2 where the page has it (a secure context), else the same in script.
 */
export async function slotFor(userId) {
  const id = utf8(String(userId));
  let bits;
  try {
    const subtle = globalThis.crypto.subtle;
    const key = await subtle.importKey("raw", id, "PBKDF2", false, ["deriveBits"]);
    const params = { name: "PBKDF2", hash: "SHA-256", salt: SLOT_LABEL, iterations: SLOT_ROUNDS };
    bits = new Uint8Array(await subtle.deriveBits(params, key, 128));
  } catch {
    bits = await pbkdf2Async(sha256, id, SLOT_LABEL, { c: SLOT_ROUNDS, dkLen: 16 });
  }
  return PREFIX + toHex(bits);
}

function context(key) {
  return new Chacha20Poly1305().createEncryptionContext(key.slice().buffer);
}

/** The browser's localStorage; null where it refuses the page (a SecurityError on the get). */
export function deviceStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** Seal ``turns`` under ``key``, with the mark of the device's last Forget they follow. */
export async function sealHistory(key, turns, mark = null) {
  const nonce = randomBytes(12);
  const sealed = await context(key).seal(nonce, utf8(JSON.stringify({ v: 1, mark, turns })), AAD);
  return b64e(concat(nonce, new Uint8Array(sealed)));
}

/** The history key in a keychain value; null for none, or for one that is not 32 bytes. */
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

/**
 * The turns sealed in ``text``; throws when it is not a history under ``key``, or one sealed
 * under another Forget mark than ``mark`` (erased since; a history of a bundle before marks
 * were sealed in has none, and is read).
 */
export async function openHistory(key, text, mark = null) {
  const raw = b64d(text);
  const plain = await context(key).open(raw.slice(0, 12), raw.slice(12), AAD);
  const value = JSON.parse(fromUtf8(new Uint8Array(plain)));
  if (!value || value.v !== 1 || !Array.isArray(value.turns)) throw new Error("bad history");
  if ("mark" in value && value.mark !== mark) throw new Error(FORGOTTEN);
  return value.turns.filter(
    (t) => t && (t.role === "user" || t.role === "assistant") && typeof t.content === "string",
  );
}

/** The device history of one Telegram user. */
export class History {
  constructor(secureStorage, userId, local = deviceStorage()) {
    this.secure = secureStorage;
    this.userId = userId;
    // Named by ``name`` before anything is read or written (``slotFor``), with the names beside.
    this.slot = null;
    this.forgetSlot = null; // a Forget's key removal due (under way, refused, cut short)
    this.markSlot = null; // the device's last Forget (``mark``)
    this.askingSlot = null; // + a page's name: its question is out (``asking``)
    this.naming = null;
    this.unmoved = null; // the old name of a history with no room to move (``migrate``)
    this.local = local;
    // Web Locks, where the page may take them. A browser that refuses the page its storage
    // (cookies blocked) refuses them too, ``navigator.locks`` there all the same: each request
    // is rejected with a SecurityError. With no storage there is nothing shared to take turns on.
    this.locks = local ? (globalThis.navigator?.locks ?? null) : null;
    this.key = null;
    this.persistent = false;
    this.turns = [];
    this.read = null; // the stored history last read (``save`` writes over nothing else)
    this.epoch = null; // the mark read with the turns and key held: ``save`` writes under no other
    this.unreadable = false; // the stored history could not be read when last loaded
    this.silent = false; // the keychain failed when last loaded (``load``)
    this.dropped = null; // why what this page held was dropped since last asked (a text's name)
    this.erases = 0; // this page's Forgets: an exchange being kept across one is not kept
    this.page = b64e(randomBytes(9)); // this page's name among the device's open pages
  }

  /** Name the storage and the locks (once; ``slotFor``): nothing is read or written before. */
  name() {
    this.naming ??= slotFor(this.userId).then((slot) => {
      this.slot = slot;
      this.forgetSlot = `${slot}:forget`;
      this.markSlot = `${slot}:forgotten`;
      this.askingSlot = `${slot}:asking:`;
    });
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
    // (Forget pressed while the page opens: named first.)
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
      // (a quota error is all setItem throws, after the erase made room): taken next time
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
      const older = held.some((lock) => lock?.startsWith(`${old}:page:`)); // an older page open
      for (const name of names) {
        const value = local.getItem(name);
        if (value === null) continue;
        const rest = name.slice(old.length);
        const asker = rest.startsWith(":asking:") ? `${old}:page:${rest.slice(":asking:".length)}` : null;
        if (held.includes(asker)) continue; // an older page still open: its own note
        const renamed = this.slot + rest;
        // The mark an older page still open read with its history: gone, it took that for a
        // Forget on another page, and dropped it (copied: ``adoptForget``, ``markOlder``).
        if (older && rest === ":forgotten") continue;
        if (local.getItem(renamed) === null) {
          try {
            local.setItem(renamed, value);
          } catch {
            local.removeItem(name); // (a quota error is all setItem throws): room for it once
            try {
              local.setItem(renamed, value);
            } catch {
              // No room even so (the new name is longer): left as it was, read there and
              // written anew with the oldest exchange giving way once the key is known (``load``).
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
    if (!this.locks) return null; // (named first: ``open``)
    return new Promise((held) => {
      this.locks
        .request(`${this.slot}:page:${this.page}`, () => {
          held();
          return new Promise(() => {}); // never let go: the page's life
        })
        .catch(() => {
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
      // a full storage: this one answer, if cut by a closing, goes untold
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
    this.epoch = this.mark; // read first: a Forget from now on is newer than what is read here
    this.silent = false;
    if (this.secure && this.secure.available && this.local) {
      try {
        if (this.forgetPending) {
          // A Forget the keychain refused, one still removing the key on another page (its
          // key must not be used: what is kept under it would be lost), or one cut short.
          if (!(await this.removeKey())) throw new Error("key kept");
          this.markForget(false);
        }
        let key = keyOf(await this.secure.get(KEY_NAME));
        // None yet, or a value no history can have been sealed under (not 32 bytes): a new one.
        if (!key) {
          await this.secure.set(KEY_NAME, b64e(randomBytes(32)));
          // Another page may have made one at once: the keychain's is the one kept under.
          key = keyOf(await this.secure.get(KEY_NAME));
          if (!key) throw new Error("no key"); // (removed at once by a Forget: keep nothing)
        }
        this.key = key;
        this.persistent = true;
      } catch (error) {
        this.persistent = false;
        // The app has a keychain that failed or did not answer in time (not one without it):
        // the page is not told it has none, as what is stored there is only out of reach.
        this.silent = ![NO_KEYCHAIN, "key kept", "no key"].includes(error?.message);
      }
    }
    if (!this.key) this.key = randomBytes(32); // this page's life only
    const unmoved = this.persistent ? this.unmoved : null;
    this.unmoved = null;
    let stored = this.persistent ? this.local.getItem(this.slot) : null;
    if (stored === null && unmoved) stored = this.local.getItem(unmoved);
    this.unreadable = false;
    if (stored) {
      try {
        this.turns = await openHistory(this.key, stored, this.epoch);
      } catch (error) {
        // Another key (the keychain was reset), damaged, or forgotten: start afresh, and say
        // so unless forgotten (what the page said it keeps is lost).
        this.turns = [];
        this.unreadable = error?.message !== FORGOTTEN;
        return this.persistent;
      }
    }
    if (unmoved && stored !== null && this.local.getItem(this.slot) === null) {
      // A history with no room under its new name (``migrate``): moved now, as ``save`` keeps
      // one, the oldest exchanges giving way; left as it was if not even the newest fits.
      this.local.removeItem(unmoved);
      if (!(await this.save())) this.local.setItem(unmoved, stored);
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
      this.local.removeItem(`${PREFIX}${this.userId}:forget`); // (the key it meant is gone)
      return;
    }
    try {
      this.local.setItem(this.forgetSlot, "1");
    } catch {
      // the storage is full even with the history erased: this page alone keeps nothing
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
    return sha256Hex(concat(utf8("veil/cache-salt/v1"), this.key)).slice(0, 32);
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
    this.adoptForget(); // (an older page's Forget: its mark is then newer than the one read)
    const forgotten = this.mark !== this.epoch; // Forget on another page since this one read
    if (!forgotten && !this.forgetPending) {
      const stored = this.local.getItem(this.slot);
      this.read = stored; // what ``save`` writes over: anything else is another page's since
      if (stored) {
        try {
          this.turns = await openHistory(this.key, stored, this.epoch);
          return true;
        } catch {
          // not under this page's key: the keychain tells whether it has changed
        }
      }
      try {
        const text = await this.secure.get(KEY_NAME);
        const key = keyOf(text);
        if (key && sameBytes(key, this.key)) return true; // nothing saved yet, or unreadable
      } catch {
        return true; // the keychain does not answer now: nothing to tell, its own turns stay
      }
    }
    // A keychain that lost the key, or a page that made another one at once, leaves no mark:
    // exchanges this page held are lost all the same, and it says so (a page of an older
    // bundle, forgetting, leaves none either: told so too, rather than nothing).
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
        if (this.erases !== erases) return true; // forgotten here meanwhile: neither is kept
        if (!(await this.takeIn())) return true;
        if (this.erases !== erases) return true;
        // The history read on the try before is gone: Forget on another page erased it (and
        // its key is still being removed), so neither it nor this exchange is kept or sent.
        if (tries > 1 && this.read === null) {
          this.turns = [];
          return true;
        }
        const before = this.turns;
        const exchange = [{ role: "user", content: question }, { role: "assistant", content: answer }];
        this.turns = [...before, ...exchange].slice(-MAX_TURNS);
        // Without Web Locks another page may have written since this one read: read it in
        // again rather than write over its exchange (with them, none has), starting from what
        // is stored and never with this exchange already in.
        const saved = await this.save(tries < ADD_TRIES, erases);
        if (saved !== CHANGED) return saved;
        if (this.erases !== erases) return true; // (its turns are the new history's now)
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
    for (;;) {
      const sealed = await sealHistory(this.key, turns, this.epoch);
      if (this.mark !== this.epoch || this.erases !== erases) return CHANGED;
      if (careful && this.local.getItem(this.slot) !== this.read) return CHANGED;
      try {
        this.local.setItem(this.slot, sealed);
        this.turns = turns;
        return true;
      } catch {
        if (turns.length <= 2) return false; // (a quota error is all setItem throws)
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
    // Also on a page whose keychain did not answer when it opened: the device's key is there.
    const due = this.persistent || this.forgetPending || this.secure?.available;
    if (this.local) {
      // The removal due and the new mark first, the erase after: a page between two of these
      // writes (or after a crash) finds the history forgotten, never "no history, old mark",
      // under which it wrote its erased turns back; one opened while the key is removed
      // removes it too rather than keep under it. The ciphertext left meanwhile is sealed
      // under the old mark: erased all the same.
      const marked = this.writeMark(due);
      this.local.removeItem(this.slot);
      this.local.removeItem(PREFIX + this.userId); // what an older page still open kept
      if (!marked) this.writeMark(due); // the storage was full: the erase made room
      await this.markOlder();
    }
    const written = this.forgetPending; // (its removal due, unless the storage had no room)
    let destroyed = due ? await this.removeKey() : true;
    // Without Web Locks a page opened while the keychain took its time found the removal due,
    // removed the key itself and cleared the due: the key this Forget meant is gone, and the
    // one there now is that page's, with what it kept under it. Due again, it was removed at
    // the next opening, and all that with it.
    if (!destroyed && written && !this.forgetPending) destroyed = true;
    this.key = null;
    this.persistent = false;
    this.markForget(!destroyed);
    if (!destroyed) {
      this.key = randomBytes(32);
      return false;
    }
    await this.load(); // a new key from now on
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
      // no lock list to read: only a mark already there is written over
    }
    if (!open && this.local.getItem(`${old}:forgotten`) === null) return;
    const mark = this.mark;
    try {
      if (mark === null) throw new Error("no mark"); // (a storage too full for one)
      this.local.setItem(`${old}:forgotten`, mark);
    } catch {
      this.local.removeItem(`${old}:forgotten`); // an older page sees a Forget all the same
    }
  }

  /** Write a Forget's removal due (``due``: a keychain to remove it from) and its new mark. */
  writeMark(due) {
    try {
      if (due) this.local.setItem(this.forgetSlot, "1");
      this.local.setItem(this.markSlot, b64e(randomBytes(12)));
      return true;
    } catch {
      return false; // (a quota error is all setItem throws)
    }
  }
}
