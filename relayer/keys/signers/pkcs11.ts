/**
 * Signing with a secp256k1 key held in an HSM through its PKCS#11 module (YubiHSM 2, AWS CloudHSM, Thales Luna,
 * SoftHSM2, ...). The private key never leaves the token: it is created there (`createPkcs11Key`: CKA_SENSITIVE,
 * not CKA_EXTRACTABLE), found by label or id, and asked to sign 32-byte digests with CKM_ECDSA (raw r||s). The
 * address comes from the public key object's CKA_EC_POINT.
 *
 * `pkcs11js` (a native addon, an optional dependency) is loaded only when a PKCS#11 signer is configured. A module
 * is initialized once per process; each signer has its own session, logged in with the user PIN (never logged),
 * and reopened once if the token drops it (device reset, session closed). Signing is serialized per session (a
 * PKCS#11 session runs one operation at a time) and runs off the event loop (C_SignAsync).
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";

import { hexlify } from "ethers";
import type * as Pkcs11Js from "pkcs11js";

import { addressOfEcPoint, parseDerSignature, parseRawSignature, SECP256K1_OID_DER } from "./ecdsa.js";
import { DeviceSigner, type DigestDevice } from "./device-signer.js";
import { SignerError } from "./errors.js";

type Pkcs11Module = typeof Pkcs11Js;
type Handle = Buffer;

/** Which token and key: `token` (label) or `slot` (slot id), and `keyLabel` or `keyId` (hex CKA_ID). */
export interface Pkcs11KeyRef {
  /** path of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so */
  readonly module: string;
  readonly token?: string | undefined;
  readonly slot?: number | undefined;
  readonly keyLabel?: string | undefined;
  /** CKA_ID in hex (0x optional) */
  readonly keyId?: string | undefined;
}

let loaded: Pkcs11Module | null = null;

/** pkcs11js, loaded on first use; a clear error when the optional dependency is not installed. */
function pkcs11js(): Pkcs11Module {
  if (loaded !== null) return loaded;
  try {
    loaded = createRequire(import.meta.url)("pkcs11js") as Pkcs11Module;
  } catch (error) {
    throw new SignerError(
      "MODULE_MISSING",
      "a pkcs11 signer needs the optional dependency pkcs11js (a native addon): install it with `npm install pkcs11js@2.1.7` (needs a C++ toolchain if no prebuilt binary fits), or choose another signer kind",
      { cause: error },
    );
  }
  return loaded;
}

const libraries = new Map<string, Pkcs11Js.PKCS11>();

/** The initialized library at `path` (once per process). */
function library(path: string): Pkcs11Js.PKCS11 {
  const existing = libraries.get(path);
  if (existing !== undefined) return existing;
  const pk = pkcs11js();
  const lib = new pk.PKCS11();
  try {
    lib.load(path);
  } catch (error) {
    throw new SignerError("MODULE_UNLOADABLE", `pkcs11 module ${path}: cannot load it (${(error as Error).message}): check module: (the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)`, { cause: error });
  }
  try {
    lib.C_Initialize();
  } catch (error) {
    if (!ckr(error, "CKR_CRYPTOKI_ALREADY_INITIALIZED")) {
      throw new SignerError("MODULE_UNLOADABLE", `pkcs11 module ${path}: C_Initialize failed (${(error as Error).message})`, { cause: error });
    }
  }
  libraries.set(path, lib);
  return lib;
}

/** Finalizes every PKCS#11 library this process initialized (tests; a process exiting needs not). */
export function finalizePkcs11(): void {
  for (const [path, lib] of libraries) {
    try {
      lib.C_Finalize();
    } catch {
      // already finalized
    }
    try {
      lib.close();
    } catch {
      // already closed
    }
    libraries.delete(path);
  }
}

/** Whether `error` is a PKCS#11 error with one of these return values (by code, e.g. "CKR_PIN_INCORRECT"). */
function ckr(error: unknown, ...names: string[]): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "number") return false;
  const constants = pkcs11js() as unknown as Record<string, unknown>;
  return names.some((name) => constants[name] === code);
}

function handleNumber(handle: Handle): bigint {
  return handle.length >= 8 ? handle.readBigUInt64LE(0) : BigInt(handle.readUInt32LE(0));
}

function tokenName(ref: Pkcs11KeyRef): string {
  return ref.token !== undefined ? `token "${ref.token}"` : `slot ${ref.slot}`;
}

function keyName(ref: Pkcs11KeyRef): string {
  return ref.keyLabel !== undefined ? `key "${ref.keyLabel}"` : `key id ${ref.keyId}`;
}

function keyIdBytes(ref: Pkcs11KeyRef): Buffer | undefined {
  if (ref.keyId === undefined) return undefined;
  const hex = ref.keyId.startsWith("0x") ? ref.keyId.slice(2) : ref.keyId;
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new SignerError("KEY_NOT_FOUND", `key_id ${ref.keyId}: the key's CKA_ID in hex (e.g. 0x01a2...)`);
  return Buffer.from(hex, "hex");
}

/** The slot of the token `ref` names. */
function findSlot(lib: Pkcs11Js.PKCS11, ref: Pkcs11KeyRef): Handle {
  const slots = lib.C_GetSlotList(true);
  const seen: string[] = [];
  const matches: Handle[] = [];
  for (const slot of slots) {
    const label = lib.C_GetTokenInfo(slot).label.trim();
    seen.push(`"${label}" (slot ${handleNumber(slot)})`);
    if (ref.token !== undefined ? label === ref.token : handleNumber(slot) === BigInt(ref.slot!)) matches.push(slot);
  }
  if (matches.length === 0) {
    throw new SignerError("TOKEN_NOT_FOUND", `pkcs11 module ${ref.module}: no ${tokenName(ref)} (tokens present: ${seen.join(", ") || "none"}): fix token: / slot:, or initialize the token`);
  }
  if (matches.length > 1) throw new SignerError("TOKEN_NOT_FOUND", `pkcs11 module ${ref.module}: ${matches.length} tokens are labelled "${ref.token}": name the token by slot: instead`);
  return matches[0]!;
}

function openSession(lib: Pkcs11Js.PKCS11, ref: Pkcs11KeyRef, pin: string, readWrite: boolean): { slot: Handle; session: Handle } {
  const pk = pkcs11js();
  const slot = findSlot(lib, ref);
  const session = lib.C_OpenSession(slot, pk.CKF_SERIAL_SESSION | (readWrite ? pk.CKF_RW_SESSION : 0));
  try {
    lib.C_Login(session, pk.CKU_USER, pin);
  } catch (error) {
    if (!ckr(error, "CKR_USER_ALREADY_LOGGED_IN")) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // nothing to release
      }
      if (ckr(error, "CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE")) {
        throw new SignerError("LOGIN_FAILED", `pkcs11 ${tokenName(ref)}: the user PIN given is wrong (the token may lock after a few wrong PINs): fix pin_env / pin_file`, { cause: error });
      }
      if (ckr(error, "CKR_PIN_LOCKED")) throw new SignerError("LOGIN_FAILED", `pkcs11 ${tokenName(ref)}: the user PIN is locked: the token's security officer must unlock it`, { cause: error });
      throw new SignerError("LOGIN_FAILED", `pkcs11 ${tokenName(ref)}: login failed (${(error as Error).message})`, { cause: error });
    }
  }
  return { slot, session };
}

function findObjects(lib: Pkcs11Js.PKCS11, session: Handle, template: Pkcs11Js.Template): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, 16);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

interface FoundKey {
  readonly privateKey: Handle;
  readonly address: string;
}

/** The private key `ref` names and the address of its public key (checked to be a secp256k1 EC key). */
function findKey(lib: Pkcs11Js.PKCS11, session: Handle, ref: Pkcs11KeyRef): FoundKey {
  const pk = pkcs11js();
  const id = keyIdBytes(ref);
  const match: Pkcs11Js.Template = [
    ...(ref.keyLabel !== undefined ? [{ type: pk.CKA_LABEL, value: ref.keyLabel }] : []),
    ...(id !== undefined ? [{ type: pk.CKA_ID, value: id }] : []),
  ];
  const privates = findObjects(lib, session, [{ type: pk.CKA_CLASS, value: pk.CKO_PRIVATE_KEY }, { type: pk.CKA_KEY_TYPE, value: pk.CKK_EC }, ...match]);
  if (privates.length === 0) {
    throw new SignerError("KEY_NOT_FOUND", `pkcs11 ${tokenName(ref)}: no EC private ${keyName(ref)}: create one with \`agentgpt keys new --pkcs11 ...\` or fix key_label / key_id`);
  }
  if (privates.length > 1) throw new SignerError("KEY_NOT_FOUND", `pkcs11 ${tokenName(ref)}: ${privates.length} private keys match ${keyName(ref)}: name it by key_id as well`);
  const privateKey = privates[0]!;
  // the public half: the same CKA_ID (or label) as the private key
  const [idAttr] = lib.C_GetAttributeValue(session, privateKey, [{ type: pk.CKA_ID }]);
  const keyId = idAttr?.value as Buffer | undefined;
  const publicMatch: Pkcs11Js.Template = keyId !== undefined && keyId.length > 0 ? [{ type: pk.CKA_ID, value: keyId }] : match;
  const publics = findObjects(lib, session, [{ type: pk.CKA_CLASS, value: pk.CKO_PUBLIC_KEY }, { type: pk.CKA_KEY_TYPE, value: pk.CKK_EC }, ...publicMatch]);
  if (publics.length !== 1) {
    throw new SignerError("KEY_NOT_FOUND", `pkcs11 ${tokenName(ref)}: ${publics.length === 0 ? "no" : publics.length} public key object(s) for ${keyName(ref)}: the address comes from the public key (CKA_EC_POINT); keep it on the token`);
  }
  const [params, point] = lib.C_GetAttributeValue(session, publics[0]!, [{ type: pk.CKA_EC_PARAMS }, { type: pk.CKA_EC_POINT }]);
  if (hexlify(params!.value as Buffer) !== hexlify(SECP256K1_OID_DER)) {
    throw new SignerError("WRONG_KEY", `pkcs11 ${tokenName(ref)}: ${keyName(ref)} is not on secp256k1 (Ethereum's curve): create one with \`agentgpt keys new --pkcs11 ...\``);
  }
  return { privateKey, address: addressOfEcPoint(point!.value as Buffer) };
}

/** A logged-in session on one token with one key; signs digests one at a time, reopening once if the token drops it. */
class Pkcs11Device implements DigestDevice {
  readonly description: string;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly lib: Pkcs11Js.PKCS11,
    private readonly ref: Pkcs11KeyRef,
    private readonly pin: string,
    private session: Handle | null,
    private key: Handle,
    readonly address: string,
  ) {
    this.description = `pkcs11 ${tokenName(ref)}, ${keyName(ref)} (${ref.module})`;
  }

  static open(ref: Pkcs11KeyRef, pin: string): Pkcs11Device {
    const lib = library(ref.module);
    const { session } = openSession(lib, ref, pin, false);
    try {
      const key = findKey(lib, session, ref);
      return new Pkcs11Device(lib, ref, pin, session, key.privateKey, key.address);
    } catch (error) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // nothing to release
      }
      throw error;
    }
  }

  signDigest(digest: Uint8Array): Promise<{ r: bigint; s: bigint }> {
    const run = this.queue.then(
      () => this.signOnce(digest, true),
      () => this.signOnce(digest, true),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async signOnce(digest: Uint8Array, retry: boolean): Promise<{ r: bigint; s: bigint }> {
    if (this.closed) throw new SignerError("DEVICE_ERROR", `${this.description}: the signer is closed`);
    const pk = pkcs11js();
    try {
      if (this.session === null) this.reopen();
      this.lib.C_SignInit(this.session!, { mechanism: pk.CKM_ECDSA }, this.key);
      const out = await this.lib.C_SignAsync(this.session!, Buffer.from(digest), Buffer.alloc(144));
      // CKM_ECDSA gives r||s; a module that answers in DER is accepted too
      return out.length === 64 ? parseRawSignature(out) : parseDerSignature(out);
    } catch (error) {
      if (error instanceof SignerError) throw error;
      if (retry && ckr(error, "CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", "CKR_USER_NOT_LOGGED_IN", "CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_OBJECT_HANDLE_INVALID", "CKR_KEY_HANDLE_INVALID", "CKR_DEVICE_ERROR")) {
        this.session = null;
        return this.signOnce(digest, false);
      }
      throw new SignerError("DEVICE_ERROR", `${this.description}: signing failed (${(error as Error).message})`, { cause: error });
    }
  }

  private reopen(): void {
    const { session } = openSession(this.lib, this.ref, this.pin, false);
    const key = findKey(this.lib, session, this.ref);
    if (key.address !== this.address) {
      this.lib.C_CloseSession(session);
      throw new SignerError("WRONG_KEY", `${this.description}: after reopening the session the key is ${key.address}, not ${this.address}: the token's key changed; restart the relayer`);
    }
    this.session = session;
    this.key = key.privateKey;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    if (this.session !== null) {
      try {
        this.lib.C_CloseSession(this.session);
      } catch {
        // the token dropped it already
      }
      this.session = null;
    }
  }
}

/** A signer for the key `ref` names, logged in with `pin`. */
export function openPkcs11Signer(ref: Pkcs11KeyRef, pin: string): DeviceSigner {
  const device = Pkcs11Device.open(ref, pin);
  return new DeviceSigner(device.address, device);
}

export interface CreatedPkcs11Key {
  readonly address: string;
  readonly label: string;
  /** CKA_ID in hex (0x...) */
  readonly id: string;
  /** the token's label */
  readonly token: string;
}

/**
 * Creates a secp256k1 key pair inside the token (C_GenerateKeyPair, CKM_EC_KEY_PAIR_GEN): the private key is a token
 * object, private, sensitive and not extractable, usable only to sign; the public key is a public token object (the
 * address is read from it). Refuses a label already used on the token. Returns the new key's address.
 */
export function createPkcs11Key(ref: Pkcs11KeyRef & { readonly keyLabel: string }, pin: string): CreatedPkcs11Key {
  const pk = pkcs11js();
  const lib = library(ref.module);
  const { slot, session } = openSession(lib, ref, pin, true);
  try {
    const existing = findObjects(lib, session, [{ type: pk.CKA_LABEL, value: ref.keyLabel }]);
    if (existing.length > 0) {
      throw new SignerError("KEY_EXISTS", `pkcs11 ${tokenName(ref)} already holds an object labelled "${ref.keyLabel}": keys are never replaced; choose another --label`);
    }
    const id = keyIdBytes(ref) ?? randomBytes(16);
    const common = [
      { type: pk.CKA_TOKEN, value: true },
      { type: pk.CKA_KEY_TYPE, value: pk.CKK_EC },
      { type: pk.CKA_LABEL, value: ref.keyLabel },
      { type: pk.CKA_ID, value: id },
    ];
    const pair = lib.C_GenerateKeyPair(
      session,
      { mechanism: pk.CKM_EC_KEY_PAIR_GEN },
      [
        { type: pk.CKA_CLASS, value: pk.CKO_PUBLIC_KEY },
        ...common,
        { type: pk.CKA_PRIVATE, value: false },
        { type: pk.CKA_VERIFY, value: true },
        { type: pk.CKA_EC_PARAMS, value: Buffer.from(SECP256K1_OID_DER) },
      ],
      [
        { type: pk.CKA_CLASS, value: pk.CKO_PRIVATE_KEY },
        ...common,
        { type: pk.CKA_PRIVATE, value: true },
        { type: pk.CKA_SIGN, value: true },
        { type: pk.CKA_SENSITIVE, value: true },
        { type: pk.CKA_EXTRACTABLE, value: false },
      ],
    );
    // what the token made is what was asked for: never keep a key that could be exported
    const [sensitive, extractable] = lib.C_GetAttributeValue(session, pair.privateKey, [{ type: pk.CKA_SENSITIVE }, { type: pk.CKA_EXTRACTABLE }]);
    if ((sensitive!.value as Buffer)[0] !== 1 || (extractable!.value as Buffer)[0] !== 0) {
      lib.C_DestroyObject(session, pair.privateKey);
      lib.C_DestroyObject(session, pair.publicKey);
      throw new SignerError("DEVICE_ERROR", `pkcs11 ${tokenName(ref)}: the token did not make the new key sensitive and non-extractable; it was destroyed`);
    }
    const [point] = lib.C_GetAttributeValue(session, pair.publicKey, [{ type: pk.CKA_EC_POINT }]);
    return { address: addressOfEcPoint(point!.value as Buffer), label: ref.keyLabel, id: `0x${id.toString("hex")}`, token: lib.C_GetTokenInfo(slot).label.trim() };
  } catch (error) {
    if (error instanceof SignerError) throw error;
    if (ckr(error, "CKR_MECHANISM_INVALID", "CKR_DOMAIN_PARAMS_INVALID")) {
      throw new SignerError("DEVICE_ERROR", `pkcs11 ${tokenName(ref)}: the token cannot make secp256k1 keys (${(error as Error).message}): Ethereum needs that curve`, { cause: error });
    }
    throw new SignerError("DEVICE_ERROR", `pkcs11 ${tokenName(ref)}: creating the key failed (${(error as Error).message})`, { cause: error });
  } finally {
    try {
      lib.C_CloseSession(session);
    } catch {
      // the token dropped it already
    }
  }
}
