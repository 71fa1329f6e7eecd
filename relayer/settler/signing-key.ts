/**
 * The settler's signing key: an encrypted JSON keystore decrypted at start and again on each reload (SIGHUP), its
 * password from an environment variable (`password_env`, fixed when the process starts) or from a file
 * (`password_file`, read again on each reload, so a rotation to a key with another password needs no restart), or,
 * for development only, a raw private key in an environment variable. The key and its password are never logged
 * or put in an error message.
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
    const { password, from } = await keystorePassword(signer, path, options.baseDir ?? process.cwd(), env);
    try {
      const wallet = await Wallet.fromEncryptedJson(json, password);
      return { wallet: new Wallet(wallet.privateKey), source: `keystore ${path}`, development: false };
    } catch {
      throw new SigningKeyError(`settler signer: the keystore ${path} did not open with the password in ${from}`);
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

/** The keystore's password from `password_file` (one line; a trailing newline is not part of it) or `password_env`. */
async function keystorePassword(
  signer: SignerConfig,
  keystore: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ password: string; from: string }> {
  if (signer.passwordFile !== undefined) {
    const file = isAbsolute(signer.passwordFile) ? signer.passwordFile : resolve(baseDir, signer.passwordFile);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      throw new SigningKeyError(`settler signer: cannot read password_file ${file}: write the password of the keystore ${keystore} there (one line, chmod 600)`);
    }
    const password = text.replace(/\r?\n$/, "");
    if (password === "") throw new SigningKeyError(`settler signer: password_file ${file} is empty: write the password of the keystore ${keystore} there`);
    return { password, from: `password_file ${file}` };
  }
  const password = env[signer.passwordEnv];
  if (password === undefined || password === "") {
    throw new SigningKeyError(
      `settler signer: set ${signer.passwordEnv} to the password of the keystore ${keystore} (a running relayer cannot see a variable set after it started: use password_file: to change passwords without a restart)`,
    );
  }
  return { password, from: signer.passwordEnv };
}
