/**
 * Encrypted JSON keystores (Web3 Secret Storage v3, scrypt + AES-128-CTR, as geth, `cast wallet` and ethers write
 * them): created from 32 bytes of the operating system's randomness, written with mode 0600 into a directory the
 * process makes 0700, never over an existing file. The private key exists in memory only; it is never printed,
 * logged or put in an error, and neither is the password.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

import { getAddress, hexlify, isKeystoreJson, Wallet } from "ethers";

import { KeyError } from "./errors.js";

/** Shortest password accepted for a new keystore. */
export const MIN_PASSWORD_LENGTH = 12;

export interface CreatedKeystore {
  readonly address: string;
  readonly path: string;
  /** the new key, for a caller that signs with it at once in this process (never print or store it) */
  readonly wallet: Wallet;
}

/**
 * Creates a new key and writes it, encrypted with `password`, to `path` (which must not exist).
 *
 * @throws KeyError KEYSTORE_EXISTS, WEAK_PASSWORD or KEYSTORE_UNREADABLE (cannot write).
 */
export async function createKeystore(path: string, password: string, options: { passwordSource?: string } = {}): Promise<CreatedKeystore> {
  checkNewPassword(password, options.passwordSource ?? "the password");
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  let handle;
  try {
    handle = await open(target, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new KeyError("KEYSTORE_EXISTS", `${target} exists already: keystores are never overwritten; choose another --out`);
    }
    throw new KeyError("KEYSTORE_UNREADABLE", `--out ${target}: cannot create the file (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const wallet = new Wallet(hexlify(randomBytes(32)));
    const json = await wallet.encrypt(password);
    await handle.writeFile(`${json}\n`);
    await handle.sync();
    return { address: wallet.address, path: target, wallet };
  } finally {
    await handle.close();
  }
}

export function checkNewPassword(password: string, source: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new KeyError("WEAK_PASSWORD", `${source} has ${password.length} characters: use at least ${MIN_PASSWORD_LENGTH} (a passphrase of a few random words)`);
  }
}

/** The keystore's JSON text. */
export async function readKeystore(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(resolve(path), "utf8");
  } catch (error) {
    throw new KeyError("KEYSTORE_UNREADABLE", `${resolve(path)}: cannot read the keystore (${(error as NodeJS.ErrnoException).code ?? "error"}): check the path, or create one with \`agentgpt keys new --out ${path}\``);
  }
  if (!isKeystoreJson(text)) throw new KeyError("KEYSTORE_UNREADABLE", `${resolve(path)} is not an encrypted JSON keystore (Web3 Secret Storage v3)`);
  return text;
}

/**
 * The address a keystore declares, without decrypting it (no password needed). It is what the file says: only
 * `openKeystore` proves the key inside belongs to it.
 */
export async function keystoreAddress(path: string): Promise<string> {
  const text = await readKeystore(path);
  const declared = (JSON.parse(text) as { address?: unknown }).address;
  if (typeof declared !== "string") throw new KeyError("KEYSTORE_UNREADABLE", `${resolve(path)} does not declare its address: open it with its password instead`);
  try {
    return getAddress(declared.startsWith("0x") ? declared : `0x${declared}`);
  } catch {
    throw new KeyError("KEYSTORE_UNREADABLE", `${resolve(path)} declares an invalid address`);
  }
}

/**
 * Decrypts the keystore (ethers checks the key inside matches the declared address).
 *
 * @throws KeyError WRONG_PASSWORD (no detail: it could help a guesser) or KEYSTORE_UNREADABLE.
 */
export async function openKeystore(path: string, password: string, passwordSource: string): Promise<Wallet> {
  const text = await readKeystore(path);
  try {
    const opened = await Wallet.fromEncryptedJson(text, password);
    return new Wallet(opened.privateKey);
  } catch {
    throw new KeyError("WRONG_PASSWORD", `${resolve(path)} does not open with ${passwordSource}: check the password`);
  }
}
