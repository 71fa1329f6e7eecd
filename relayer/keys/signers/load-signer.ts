/**
 * One entry point for every kind of signer the configuration can name (`settler.signer`, `chains.<name>.signer`,
 * their `retiring:` key): an encrypted keystore (or, for development, a raw key in a variable), a key in an HSM
 * through PKCS#11, or an AWS KMS key. Each gives an ethers `AbstractSigner` with its address known (`SettlerSigner`);
 * the PKCS#11 and KMS signers never hold the private key in this process. Secrets (keystore passwords, PINs) come
 * from a variable or a file and never appear in a message or a log.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";

import type { KMSClientConfig } from "@aws-sdk/client-kms";
import { Wallet } from "ethers";

import type { Pkcs11SignerConfig, SignerConfig } from "../../config/index.js";
import type { SettlerSigner } from "./device-signer.js";
import { SignerError } from "./errors.js";
import { createPkcs11Key, openPkcs11Signer, type CreatedPkcs11Key } from "./pkcs11.js";

export class SigningKeyError extends Error {
  override readonly name = "SigningKeyError";
}

export interface LoadedSettlerSigner {
  readonly signer: SettlerSigner;
  /** "keystore /abs/path", "$VAR", "pkcs11 token ..., key ...", "aws_kms key ..." */
  readonly source: string;
  /** a raw key from the environment */
  readonly development: boolean;
  /** releases a device session or client (no-op for keystores) */
  close(): Promise<void>;
}

export interface LoadSignerOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** relative paths (keystore, password_file, pin_file, module) are relative to this (the config file's directory) */
  readonly baseDir?: string;
  /** extra AWS SDK settings for aws_kms signers (tests: credentials); default: the SDK's default chain */
  readonly kmsClient?: Partial<KMSClientConfig>;
  /** how the config names this signer in messages ("settler signer", "settler signer's retiring key") */
  readonly label?: string;
}

function abs(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** Loads the signer `config` names. Errors are SigningKeyError, naming the setting and the fix. */
export async function loadConfiguredSigner(config: Omit<SignerConfig, "retiring">, options: LoadSignerOptions = {}): Promise<LoadedSettlerSigner> {
  const env = options.env ?? process.env;
  const baseDir = options.baseDir ?? process.cwd();
  const label = options.label ?? "settler signer";
  try {
    if (config.kind === "pkcs11") {
      const ref = { ...config.pkcs11!, module: abs(config.pkcs11!.module, baseDir) };
      const signer = openPkcs11Signer(ref, await pkcs11Pin(ref, baseDir, env, label));
      return { signer, source: signer.device.description, development: false, close: () => signer.close() };
    }
    if (config.kind === "aws_kms") {
      // loaded only for a KMS signer: the AWS SDK's KMS client takes about 0.3 s of every command's start-up
      const { openAwsKmsSigner } = await import("./aws-kms.js");
      const signer = await openAwsKmsSigner(config.awsKms!, options.kmsClient);
      return { signer, source: signer.device.description, development: false, close: () => signer.close() };
    }
  } catch (error) {
    if (error instanceof SignerError) throw new SigningKeyError(`${label}: ${error.message}`, { cause: error });
    throw error;
  }
  return loadKeystoreSigner(config, baseDir, env, label);
}

async function loadKeystoreSigner(
  signer: Omit<SignerConfig, "retiring">,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  label: string,
): Promise<LoadedSettlerSigner> {
  const close = async () => undefined;
  if (signer.keystore !== undefined) {
    const path = abs(signer.keystore, baseDir);
    let json: string;
    try {
      json = await readFile(path, "utf8");
    } catch {
      throw new SigningKeyError(`${label}: cannot read the keystore ${path}: create one with \`agentgpt keys new\``);
    }
    const { password, from } = await keystorePassword(signer, path, baseDir, env, label);
    try {
      const wallet = await Wallet.fromEncryptedJson(json, password);
      return { signer: new Wallet(wallet.privateKey), source: `keystore ${path}`, development: false, close };
    } catch {
      throw new SigningKeyError(`${label}: the keystore ${path} did not open with the password in ${from}`);
    }
  }
  const name = signer.keyEnv!;
  const key = env[name];
  if (key === undefined || key === "") throw new SigningKeyError(`${label}: set ${name} to the relayer's private key (development only)`);
  try {
    return { signer: new Wallet(key.startsWith("0x") ? key : `0x${key}`), source: `$${name}`, development: true, close };
  } catch {
    throw new SigningKeyError(`${label}: ${name} does not hold a private key (64 hex digits)`);
  }
}

/** A secret from a file (its first line; the line break is not part of it) or a variable. */
async function secret(
  what: string,
  file: string | undefined,
  variable: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  fix: string,
): Promise<{ value: string; from: string }> {
  if (file !== undefined) {
    const path = abs(file, baseDir);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      throw new SigningKeyError(`cannot read ${what}_file ${path}: ${fix} (one line, chmod 600)`);
    }
    const value = text.replace(/\r?\n$/, "");
    if (value === "") throw new SigningKeyError(`${what}_file ${path} is empty: ${fix}`);
    return { value, from: `${what}_file ${path}` };
  }
  const value = env[variable];
  if (value === undefined || value === "") {
    throw new SigningKeyError(
      `set ${variable} to ${fix.replace(/^write /, "").replace(/ there$/, "")} (a running relayer cannot see a variable set after it started: use ${what}_file: to change it without a restart)`,
    );
  }
  return { value, from: variable };
}

async function keystorePassword(
  signer: Omit<SignerConfig, "retiring">,
  keystore: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  label: string,
): Promise<{ password: string; from: string }> {
  try {
    const { value, from } = await secret("password", signer.passwordFile, signer.passwordEnv, baseDir, env, `write the password of the keystore ${keystore} there`);
    return { password: value, from };
  } catch (error) {
    if (error instanceof SigningKeyError) throw new SigningKeyError(`${label}: ${error.message}`);
    throw error;
  }
}

async function pkcs11Pin(config: Pkcs11SignerConfig, baseDir: string, env: Readonly<Record<string, string | undefined>>, label: string): Promise<string> {
  try {
    return (await secret("pin", config.pinFile, config.pinEnv, baseDir, env, `write the user PIN of the PKCS#11 token ${config.token ?? `in slot ${config.slot}`} there`)).value;
  } catch (error) {
    if (error instanceof SigningKeyError) throw new SigningKeyError(`${label}: ${error.message}`);
    throw error;
  }
}

/**
 * Creates a new secp256k1 key inside the PKCS#11 token `config` names (its `key_label`), logged in with the PIN
 * from `pin_env`/`pin_file`, and returns its address: what `agentgpt keys new --pkcs11` and a rotation call.
 */
export async function createPkcs11SignerKey(
  config: Pkcs11SignerConfig & { readonly keyLabel: string },
  options: Pick<LoadSignerOptions, "env" | "baseDir"> = {},
): Promise<CreatedPkcs11Key> {
  const baseDir = options.baseDir ?? process.cwd();
  const ref = { ...config, module: abs(config.module, baseDir) };
  const pin = await pkcs11Pin(ref, baseDir, options.env ?? process.env, "pkcs11 key");
  return createPkcs11Key(ref, pin);
}
