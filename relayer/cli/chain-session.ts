/**
 * The chain options every on-chain command takes (network or RPC, deployments directory, who signs) and the one
 * way to open them: the chain checked, the deployment's contracts connected, the signer loaded when one is needed.
 */
import type { Command } from "commander";

import {
  ChainError,
  KEYSTORE_PASSWORD_VARIABLE,
  PRIVATE_KEY_VARIABLE,
  connectSuite,
  loadDeployment,
  loadSigner,
  openChain,
  redactUrls,
  type ChainConnection,
  type LoadedSigner,
  type Suite,
} from "../chain/index.js";
import { KeyError } from "../keys/errors.js";
import { readPassword as readKeystorePassword } from "../keys/password.js";
import { UserError } from "./errors.js";

export interface ChainOptions {
  network?: string;
  rpc?: string;
  deployments?: string;
  nodeAccount?: string;
  keystore?: string;
  keyEnv?: string;
  confirmations?: string;
}

export interface ChainSession {
  chain: ChainConnection;
  suite: Suite;
  signer?: LoadedSigner;
  /** blocks to wait for after a transaction */
  confirmations: number;
}

export function withChainOptions(command: Command): Command {
  return command
    .option("--network <name>", "localhost, arbitrumSepolia or polygonAmoy (default: localhost)")
    .option("--rpc <url>", "JSON-RPC URL (default: the network's variable, e.g. ARBITRUM_SEPOLIA_RPC_URL)")
    .option("--deployments <dir>", "deployments directory (default: deploy/deployments, or $AGENTGPT_DEPLOYMENTS_DIR)")
    .option("--keystore <file>", `encrypted JSON keystore to sign with (password: $${KEYSTORE_PASSWORD_VARIABLE} or prompt)`)
    .option("--key-env <name>", `environment variable holding the private key (default: ${PRIVATE_KEY_VARIABLE})`)
    .option("--node-account <index>", "sign with account #index unlocked on a local node (default there: 0)");
}

/** `--confirmations <n>`, for commands that send transactions and wait for them. */
export function withConfirmations(command: Command): Command {
  return command.option("--confirmations <n>", "blocks to wait for after each transaction (default: 1)");
}

/** Connects to the chain and the deployed suite; loads the signer when `sign` (else only if one is configured). */
export async function openSession(options: ChainOptions, sign: boolean): Promise<ChainSession> {
  const chain = await openChain({ network: options.network, rpc: options.rpc });
  const deployment = await loadDeployment(chain.chainId, { deploymentsDir: options.deployments, networkName: chain.network.name });
  let signer: LoadedSigner | undefined;
  try {
    signer = await loadSigner(chain.provider, chain.network, {
      account: options.nodeAccount === undefined ? undefined : wholeNumber("--node-account", options.nodeAccount),
      keystore: options.keystore,
      keyVariable: options.keyEnv,
      readPassword,
    });
  } catch (error) {
    if (sign || !(error instanceof ChainError && error.code === "NO_SIGNER")) throw error;
  }
  const suite = await connectSuite(deployment, signer?.signer ?? chain.provider);
  const confirmations = options.confirmations === undefined ? 1 : wholeNumber("--confirmations", options.confirmations);
  if (confirmations < 1) throw new UserError(`--confirmations "${options.confirmations}": expected 1 or more`);
  return { chain, suite, signer, confirmations };
}

async function readPassword(prompt: string): Promise<string> {
  try {
    return (await readKeystorePassword(KEYSTORE_PASSWORD_VARIABLE, prompt)).password;
  } catch (error) {
    if (error instanceof KeyError) {
      throw new UserError(`--keystore needs its password: ${error.message}`, error.message === "cancelled" ? 130 : 2, { cause: error });
    }
    throw error;
  }
}

export function wholeNumber(option: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UserError(`${option} "${text}": expected a whole number (0, 1, ...)`);
  return Number(text.trim());
}

/**
 * Runs a command body with one error mapping: errors of the given classes (and chain errors) become UserErrors
 * (message kept, exit code 2); provider errors lose any RPC URL (providers put API keys in URLs).
 */
export function runCommand<A extends unknown[]>(
  known: ReadonlyArray<abstract new (...args: never[]) => Error>,
  body: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      if (error instanceof ChainError || known.some((k) => error instanceof k)) {
        throw new UserError(redactUrls((error as Error).message), 2, { cause: error });
      }
      if (error instanceof Error) {
        error.message = redactUrls(error.message);
        if (error.stack !== undefined) error.stack = redactUrls(error.stack);
      }
      throw error;
    }
  };
}

export function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.join("\n")}\n`);
}
