/**
 * Where a deployment's addresses live, and how to read them.
 *
 * `npm run deploy -- --network <name>` runs Hardhat Ignition, which records every deployed contract in
 * `deploy/deployments/chain-<chainId>/deployed_addresses.json` (its journal sits beside it, which is what makes a
 * second run a no-op). That file is the single source of addresses: this module reads it for the relayer and the
 * CLI. Testnet deployments are committed; local ones (chain 31337) are git-ignored. The payment token is not in it:
 * it is read from `AutoPayLLM.paymentToken()` when connecting (it may be an existing ERC-20).
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";

import { getAddress, isAddress } from "ethers";

import { PACKAGE_ROOT } from "../config/package-root.js";
import { ChainError } from "./errors.js";

/** Addresses of the suite's contracts on one chain. */
export interface SuiteAddresses {
  /** AGPTToken: the votes token (and the payment token unless an existing ERC-20 was chosen). */
  agpt: string;
  autoPayLLM: string;
  /** AgentTimelock (OpenZeppelin TimelockController): holds every admin power. */
  timelock: string;
  governor: string;
  /** UsageOracle (the oracle adapter, AutoPayLLM's arbiter), when the deployment included it. */
  usageOracle?: string;
  /** RelayerKeyRotator (scheduled key rotation without a vote), when the deployment included it. */
  relayerKeyRotator?: string;
}

export interface Deployment {
  chainId: number;
  /** The Ignition deployment directory the addresses were read from. */
  dir: string;
  addresses: SuiteAddresses;
}

/** Ignition future ids (`<module>#<contract>`) of each contract in deployed_addresses.json. */
export const FUTURE_IDS: Readonly<Record<keyof SuiteAddresses, string>> = {
  agpt: "AGPTToken#AGPTToken",
  autoPayLLM: "AutoPayLLM#AutoPayLLM",
  timelock: "Governance#AgentTimelock",
  governor: "Governance#AgentGovernor",
  usageOracle: "UsageOracle#UsageOracle",
  relayerKeyRotator: "RelayerKeyRotator#RelayerKeyRotator",
};

/** Contracts a deployment may leave out. */
const OPTIONAL: ReadonlySet<keyof SuiteAddresses> = new Set(["usageOracle", "relayerKeyRotator"]);

/** Environment variable that moves the deployments directory (tests, or several checkouts sharing one). */
export const DEPLOYMENTS_DIR_VARIABLE = "AGENTGPT_DEPLOYMENTS_DIR";

/** `$AGENTGPT_DEPLOYMENTS_DIR`, else `<repo>/deploy/deployments` (Ignition's directory under `paths.ignition`). */
export function defaultDeploymentsDir(): string {
  const fromEnv = process.env[DEPLOYMENTS_DIR_VARIABLE];
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(PACKAGE_ROOT, "deploy", "deployments");
}

/** Ignition's deployment id for a chain: `chain-<chainId>`. */
export function deploymentId(chainId: number): string {
  return `chain-${chainId}`;
}

/** The directory holding the deployment of `chainId`. */
export function deploymentDir(chainId: number, deploymentsDir = defaultDeploymentsDir()): string {
  return join(deploymentsDir, deploymentId(chainId));
}

/**
 * Reads the suite's addresses on `chainId`.
 *
 * @throws ChainError DEPLOYMENT_NOT_FOUND when nothing was deployed there (with the command that deploys), or
 * DEPLOYMENT_INVALID when the file is unreadable or a contract is missing from it (an interrupted deployment).
 */
export async function loadDeployment(
  chainId: number,
  options: { deploymentsDir?: string; networkName?: string } = {},
): Promise<Deployment> {
  const dir = deploymentDir(chainId, options.deploymentsDir);
  const file = join(dir, "deployed_addresses.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      const network = options.networkName ?? "<network>";
      throw new ChainError(
        "DEPLOYMENT_NOT_FOUND",
        `no deployment of the suite on chain ${chainId} (${file} does not exist): ` +
          `deploy it with \`npm run deploy -- --network ${network}\``,
        { cause: error },
      );
    }
    throw error;
  }
  let recorded: Record<string, unknown>;
  try {
    recorded = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new ChainError("DEPLOYMENT_INVALID", `${file} is not valid JSON: restore it from git or redeploy`, {
      cause: error,
    });
  }
  const addresses = {} as SuiteAddresses;
  for (const [key, futureId] of Object.entries(FUTURE_IDS) as [keyof SuiteAddresses, string][]) {
    const value = recorded[futureId];
    if (value === undefined && OPTIONAL.has(key)) continue;
    if (typeof value !== "string" || !isAddress(value)) {
      throw new ChainError(
        "DEPLOYMENT_INVALID",
        `${file} has no address for ${futureId}: the deployment did not finish; ` +
          `run \`npm run deploy -- --network ${options.networkName ?? "<network>"}\` again to complete it`,
      );
    }
    addresses[key] = getAddress(value);
  }
  return { chainId, dir, addresses };
}
