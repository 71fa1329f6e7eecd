/**
 * Who signs: a private key from the environment, an encrypted JSON keystore, or an account unlocked on a local
 * development node. The key itself is never printed, logged, or attached to an error.
 */
import { readFile } from "node:fs/promises";

import { Wallet, type JsonRpcProvider, type Signer } from "ethers";

import { ChainError } from "./errors.js";
import { LOCAL_CHAIN_IDS, type NetworkInfo } from "./networks.js";

/** Default environment variable holding the signer's private key. */
export const PRIVATE_KEY_VARIABLE = "AGENTGPT_PRIVATE_KEY";
/** Environment variable holding the keystore password (else it is asked on the terminal). */
export const KEYSTORE_PASSWORD_VARIABLE = "AGENTGPT_KEYSTORE_PASSWORD";

export interface SignerOptions {
  /** Environment variable with the private key; default `AGENTGPT_PRIVATE_KEY`, then the network's variable. */
  keyVariable?: string;
  /** Encrypted JSON keystore (Web3 Secret Storage: geth, `cast wallet import`, ethers). */
  keystore?: string;
  /** Index of an account unlocked on a local development node (`hardhat node` account #N). */
  account?: number;
  /** Asks for the keystore password when the password variable is unset. */
  readPassword?: (prompt: string) => Promise<string>;
}

export interface LoadedSigner {
  signer: Signer;
  address: string;
  /** Where the key came from, for people ("$AGENTGPT_PRIVATE_KEY", "keystore ./k.json", "node account #0"). */
  source: string;
}

/**
 * Resolves the signer, in this order: `account` (local nodes only), `keystore`, `keyVariable`,
 * `$AGENTGPT_PRIVATE_KEY`, the network's key variable (e.g. `ARBITRUM_SEPOLIA_PRIVATE_KEY`), and on a local node
 * account #0.
 *
 * @throws ChainError NO_SIGNER or INVALID_KEY.
 */
export async function loadSigner(
  provider: JsonRpcProvider,
  network: NetworkInfo,
  options: SignerOptions = {},
): Promise<LoadedSigner> {
  const local = network.local || LOCAL_CHAIN_IDS.has(network.chainId);
  if (options.account !== undefined) {
    if (!local) {
      throw new ChainError(
        "NO_SIGNER",
        `--account selects an account unlocked on a local development node; ${network.name} is not one: ` +
          `use --keystore <file> or set ${PRIVATE_KEY_VARIABLE}`,
      );
    }
    return nodeAccount(provider, options.account);
  }
  if (options.keystore !== undefined) return keystoreSigner(provider, options.keystore, options.readPassword);

  const variables = [options.keyVariable ?? PRIVATE_KEY_VARIABLE];
  if (options.keyVariable === undefined && network.privateKeyVariable !== undefined) {
    variables.push(network.privateKeyVariable);
  }
  for (const variable of variables) {
    const key = process.env[variable];
    if (key !== undefined && key !== "") return keySigner(provider, key, `$${variable}`);
  }
  if (options.keyVariable !== undefined) {
    throw new ChainError("NO_SIGNER", `--key-env ${options.keyVariable}: that environment variable is not set`);
  }
  if (local) return nodeAccount(provider, 0);
  throw new ChainError(
    "NO_SIGNER",
    `no signer for ${network.name}: set ${variables.join(" or ")} to a private key, ` +
      `or pass --keystore <file> (password from ${KEYSTORE_PASSWORD_VARIABLE} or the terminal)`,
  );
}

function keySigner(provider: JsonRpcProvider, key: string, source: string): LoadedSigner {
  let wallet: Wallet;
  try {
    wallet = new Wallet(key.trim().startsWith("0x") ? key.trim() : `0x${key.trim()}`, provider);
  } catch {
    // No cause: it could echo the key.
    throw new ChainError("INVALID_KEY", `${source} is not a private key (expected 64 hex digits, 0x optional)`);
  }
  return { signer: wallet, address: wallet.address, source };
}

async function keystoreSigner(
  provider: JsonRpcProvider,
  file: string,
  readPassword: SignerOptions["readPassword"],
): Promise<LoadedSigner> {
  let json: string;
  try {
    json = await readFile(file, "utf8");
  } catch (error) {
    throw new ChainError("NO_SIGNER", `--keystore ${file}: cannot read the file (${(error as Error).message})`);
  }
  let password = process.env[KEYSTORE_PASSWORD_VARIABLE];
  if (password === undefined) {
    if (readPassword === undefined) {
      throw new ChainError("NO_SIGNER", `--keystore ${file}: set ${KEYSTORE_PASSWORD_VARIABLE} to its password`);
    }
    password = await readPassword(`password for ${file}: `);
  }
  let wallet: Wallet;
  try {
    const decrypted = await Wallet.fromEncryptedJson(json, password);
    wallet = new Wallet(decrypted.privateKey, provider);
  } catch {
    throw new ChainError(
      "INVALID_KEY",
      `--keystore ${file}: wrong password, or not an encrypted JSON keystore (Web3 Secret Storage)`,
    );
  }
  return { signer: wallet, address: wallet.address, source: `keystore ${file}` };
}

async function nodeAccount(provider: JsonRpcProvider, index: number): Promise<LoadedSigner> {
  const accounts = (await provider.send("eth_accounts", [])) as string[];
  const address = accounts[index];
  if (address === undefined) {
    throw new ChainError(
      "NO_SIGNER",
      `the node has ${accounts.length} unlocked accounts, so there is no account #${index}: ` +
        `pick --account 0..${Math.max(accounts.length - 1, 0)} or set ${PRIVATE_KEY_VARIABLE}`,
    );
  }
  const signer = await provider.getSigner(address);
  return { signer, address: signer.address, source: `node account #${index}` };
}
