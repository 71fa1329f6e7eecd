/**
 * The keys the reconciler signs with: the payers the operator controls and, optionally, a keeper account (it starts
 * the oracle's verifications and settles expired disputes; it pays gas only). An encrypted JSON keystore decrypted once at start (password from an environment
 * variable), or for development a raw key in an environment variable. Keys are never logged or put in messages;
 * errors name the config field and the fix.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";

import { Wallet, getAddress } from "ethers";

import type { KeySource, ReconcilerPayer } from "../config/sections/reconciler.js";

export class ReconcilerKeyError extends Error {
  override readonly name = "ReconcilerKeyError";
}

export interface LoadedKey {
  readonly wallet: Wallet;
  /** "keystore <path>" or "$VAR" */
  readonly source: string;
  readonly development: boolean;
}

export interface KeyOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** keystore paths are relative to it (the config file's folder) */
  readonly baseDir?: string;
}

/** Loads the key of `field` (e.g. "reconciler.payers[0]"), checking it against `expected` when given. */
export async function loadKey(source: KeySource, field: string, options: KeyOptions = {}, expected?: string): Promise<LoadedKey> {
  const env = options.env ?? process.env;
  let loaded: LoadedKey;
  if (source.keystore !== undefined) {
    const path = isAbsolute(source.keystore) ? source.keystore : resolve(options.baseDir ?? process.cwd(), source.keystore);
    let json: string;
    try {
      json = await readFile(path, "utf8");
    } catch {
      throw new ReconcilerKeyError(`${field}.keystore: cannot read ${path}: check the path (relative to the config file)`);
    }
    const password = env[source.passwordEnv];
    if (password === undefined || password === "") {
      throw new ReconcilerKeyError(`${field}: set ${source.passwordEnv} to the password of the keystore ${path}`);
    }
    try {
      const decrypted = await Wallet.fromEncryptedJson(json, password);
      loaded = { wallet: new Wallet(decrypted.privateKey), source: `keystore ${path}`, development: false };
    } catch {
      throw new ReconcilerKeyError(`${field}: the keystore ${path} did not open with the password in ${source.passwordEnv}`);
    }
  } else {
    const name = source.keyEnv!;
    const key = env[name]?.trim();
    if (key === undefined || key === "") throw new ReconcilerKeyError(`${field}.key_env: set ${name} to the private key (development only)`);
    try {
      loaded = { wallet: new Wallet(key.startsWith("0x") ? key : `0x${key}`), source: `$${name}`, development: true };
    } catch {
      throw new ReconcilerKeyError(`${field}.key_env: ${name} does not hold a private key (64 hex digits)`);
    }
  }
  if (expected !== undefined && getAddress(expected) !== loaded.wallet.address) {
    throw new ReconcilerKeyError(`${field}: the key (${loaded.source}) is for ${loaded.wallet.address}, not the address ${getAddress(expected)}`);
  }
  return loaded;
}

export async function loadPayerKeys(payers: readonly ReconcilerPayer[], options: KeyOptions = {}): Promise<LoadedKey[]> {
  const out: LoadedKey[] = [];
  for (const [i, payer] of payers.entries()) {
    const key = await loadKey(payer, `reconciler.payers[${i}]`, options, payer.address);
    if (out.some((k) => k.wallet.address === key.wallet.address)) {
      throw new ReconcilerKeyError(`reconciler.payers[${i}]: ${key.wallet.address} is listed twice`);
    }
    out.push(key);
  }
  return out;
}
