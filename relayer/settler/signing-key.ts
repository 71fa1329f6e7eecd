/**
 * The settler's signing key: an encrypted JSON keystore decrypted once at start (password from an environment
 * variable), or, for development only, a raw private key in an environment variable. The key is never logged or
 * put in an error message.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";

import { Wallet } from "ethers";

import type { SignerConfig } from "../config/index.js";

export class SigningKeyError extends Error {
  override readonly name = "SigningKeyError";
}

export async function loadSigningKey(
  signer: SignerConfig,
  options: { env?: Readonly<Record<string, string | undefined>>; baseDir?: string } = {},
): Promise<{ wallet: Wallet; source: string; development: boolean }> {
  const env = options.env ?? process.env;
  if (signer.keystore !== undefined) {
    const path = isAbsolute(signer.keystore) ? signer.keystore : resolve(options.baseDir ?? process.cwd(), signer.keystore);
    let json: string;
    try {
      json = await readFile(path, "utf8");
    } catch {
      throw new SigningKeyError(`settler signer: cannot read the keystore ${path}: create one with \`agentgpt keys new\``);
    }
    const password = env[signer.passwordEnv];
    if (password === undefined || password === "") {
      throw new SigningKeyError(`settler signer: set ${signer.passwordEnv} to the password of the keystore ${path}`);
    }
    try {
      const wallet = await Wallet.fromEncryptedJson(json, password);
      return { wallet: new Wallet(wallet.privateKey), source: `keystore ${path}`, development: false };
    } catch {
      throw new SigningKeyError(`settler signer: the keystore ${path} did not open with the password in ${signer.passwordEnv}`);
    }
  }
  const name = signer.keyEnv!;
  const key = env[name];
  if (key === undefined || key === "") throw new SigningKeyError(`settler signer: set ${name} to the relayer's private key (development only)`);
  try {
    return { wallet: new Wallet(key.startsWith("0x") ? key : `0x${key}`), source: `$${name}`, development: true };
  } catch {
    throw new SigningKeyError(`settler signer: ${name} does not hold a private key (64 hex digits)`);
  }
}
