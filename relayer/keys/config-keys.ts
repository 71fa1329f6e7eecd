/**
 * The relayer's keys as its configuration names them, for one chain: the chain (first answering RPC URL, router
 * from the config or the deployment), the settler's active signer and its retiring key, as addresses. Keystores
 * are read for their declared address only (no password); a development key in an environment variable is turned
 * into its address and forgotten.
 */
import { dirname, isAbsolute, resolve } from "node:path";

import { Wallet } from "ethers";

import { ChainError, loadDeployment, openChain, type ChainConnection } from "../chain/index.js";
import type { ChainConfig, RelayerConfig, SignerConfig } from "../config/index.js";
import { KeyError } from "./errors.js";
import { keystoreAddress } from "./keystore.js";
import { loadConfiguredSigner, SigningKeyError } from "./signers/load-signer.js";

export interface ConfigChain {
  readonly config: ChainConfig;
  readonly connection: ChainConnection;
  readonly router: string;
}

export interface ConfiguredKey {
  readonly address: string;
  /** "keystore /abs/path", "$VAR (development key)", "pkcs11 token ..., key ..." or "aws_kms key ..." */
  readonly source: string;
  /** absolute keystore path, when a keystore */
  readonly keystore: string | null;
  readonly passwordEnv: string;
  /** absolute path of the signer's password_file, when it reads its password from a file */
  readonly passwordFile: string | null;
  /** pkcs11 or aws_kms; absent for keystores and development keys */
  readonly kind?: "pkcs11" | "aws_kms";
}

export interface ConfiguredSigners {
  /** where in the config: "chains.local.signer" or "settler.signer" */
  readonly at: string;
  readonly active: ConfiguredKey;
  readonly retiring: ConfiguredKey | null;
}

/** `--chain`, or the config's only chain with RPC URLs. */
export function pickChain(config: RelayerConfig, name: string | undefined): ChainConfig {
  const withRpc = config.chains.filter((chain) => chain.rpcUrls.length > 0);
  if (name !== undefined) {
    const chain = config.chains.find((c) => c.name === name);
    if (chain === undefined) throw new KeyError("INVALID_INPUT", `--chain ${name}: not under chains: in ${config.files[0]} (chains: ${config.chains.map((c) => c.name).join(", ") || "none"})`);
    if (chain.rpcUrls.length === 0) throw new KeyError("INVALID_INPUT", `--chain ${name}: chains.${name}.rpc_urls is empty: add the chain's RPC URL`);
    return chain;
  }
  if (withRpc.length === 1) return withRpc[0]!;
  throw new KeyError("INVALID_INPUT", `--chain <name>: which chain? ${withRpc.length === 0 ? "none has rpc_urls in the config" : `one of ${withRpc.map((c) => c.name).join(", ")}`}`);
}

export async function openConfigChain(chain: ChainConfig, deploymentsDir?: string): Promise<ConfigChain> {
  let connection: ChainConnection | undefined;
  const failures: string[] = [];
  for (const url of chain.rpcUrls) {
    try {
      connection = await openChain({ rpc: url });
      break;
    } catch (error) {
      if (!(error instanceof ChainError)) throw error;
      failures.push(error.message);
    }
  }
  if (connection === undefined) throw new ChainError("RPC_UNREACHABLE", `chains.${chain.name}: no RPC URL answers (${failures.join("; ")})`);
  if (chain.chainId !== undefined && chain.chainId !== connection.chainId) {
    connection.provider.destroy();
    throw new ChainError("WRONG_CHAIN", `chains.${chain.name}: chain_id is ${chain.chainId} but ${connection.rpcLabel} serves chain ${connection.chainId}: fix chain_id or rpc_urls`);
  }
  const router = chain.router ?? (await loadDeployment(connection.chainId, { deploymentsDir, networkName: chain.name })).addresses.autoPayLLM;
  return { config: chain, connection, router };
}

export async function configuredSigners(
  config: RelayerConfig,
  chain: ChainConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ConfiguredSigners> {
  const signer = chain.signer ?? config.settler.signer;
  const at = chain.signer !== undefined ? `chains.${chain.name}.signer` : "settler.signer";
  if (signer === undefined) {
    throw new KeyError("NO_SIGNER", `${config.files[0]} names no settler signer for chain ${chain.name} (settler.signer or chains.${chain.name}.signer): create a key with \`agentgpt keys new\` and configure it`);
  }
  const baseDir = dirname(config.files[0] ?? ".");
  return {
    at,
    active: await configuredKey(signer, baseDir, env, at),
    retiring: signer.retiring === undefined ? null : await configuredKey(signer.retiring, baseDir, env, `${at}.retiring`),
  };
}

async function configuredKey(signer: Omit<SignerConfig, "retiring">, baseDir: string, env: Readonly<Record<string, string | undefined>>, at: string): Promise<ConfiguredKey> {
  if (signer.kind === "pkcs11" || signer.kind === "aws_kms") {
    // the address is the device's: ask it (a PKCS#11 token needs its PIN to find the key)
    let loaded;
    try {
      loaded = await loadConfiguredSigner(signer, { env, baseDir, label: at });
    } catch (error) {
      if (error instanceof SigningKeyError) throw new KeyError("NO_SIGNER", error.message, { cause: error });
      throw error;
    }
    await loaded.close();
    return { address: loaded.signer.address, source: loaded.source, keystore: null, passwordEnv: signer.passwordEnv, passwordFile: null, kind: signer.kind };
  }
  if (signer.keystore !== undefined) {
    const path = isAbsolute(signer.keystore) ? signer.keystore : resolve(baseDir, signer.keystore);
    const passwordFile = signer.passwordFile === undefined ? null : isAbsolute(signer.passwordFile) ? signer.passwordFile : resolve(baseDir, signer.passwordFile);
    return { address: await keystoreAddress(path), source: `keystore ${path}`, keystore: path, passwordEnv: signer.passwordEnv, passwordFile };
  }
  const name = signer.keyEnv!;
  const key = env[name];
  if (key === undefined || key === "") throw new KeyError("NO_SIGNER", `${at}.key_env: set ${name} (the development key) to read its address`);
  let address: string;
  try {
    address = new Wallet(key.startsWith("0x") ? key : `0x${key}`).address;
  } catch {
    throw new KeyError("NO_SIGNER", `${at}.key_env: ${name} does not hold a private key (64 hex digits)`);
  }
  return { address, source: `$${name} (development key)`, keystore: null, passwordEnv: signer.passwordEnv, passwordFile: null };
}
