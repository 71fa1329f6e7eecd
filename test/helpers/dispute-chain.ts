/**
 * The dispute side of the suite on a real `hardhat node` over JSON-RPC: the UsageOracle wired to the repository's
 * MockFunctionsRouter (ARBITER_ROLE on the router, the Functions source, a usage API on 127.0.0.1), a deployments
 * directory the CLI reads, batches settled by the real Batcher and Settler, and a local "DON" that answers every
 * recorded Functions request with what the Node run of oracle/functions/provider-usage.js returns against the usage
 * server (as test/contracts/UsageOracle*.test.ts do, but over JSON-RPC and in the background).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { NonceManager, Wallet, toQuantity, type JsonRpcProvider } from "ethers";
import type { Redis } from "ioredis";

import { ARBITER_ROLE } from "../../relayer/chain/roles.js";
import { LocalDon as DemoDon } from "../../relayer/demo/local-don.js";
import type { Receipt } from "../../relayer/queue/index.js";
import type { SettlementRecord } from "../../relayer/settler/settlement-store.js";
import type { MockFunctionsRouter, UsageOracle } from "../../typechain-types/index.js";
import { MockFunctionsRouter__factory } from "../../typechain-types/factories/mocks/MockFunctionsRouter__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import type { ChainSuite } from "./chain-suite.js";
import { NODE_KEYS } from "./hardhat-node.js";
import { pipeline, settleReceipts as settleWithPipeline } from "./pipeline.js";
import { CALLBACK_GAS, DON_ID, SECRETS_SLOT, SECRETS_VERSION, SOURCE, SUBSCRIPTION_ID, USAGE_API_KEY } from "./oracle.js";

export interface OracleDeployment {
  oracle: UsageOracle;
  oracleAddress: string;
  functionsRouter: MockFunctionsRouter;
}

/**
 * Deploys the UsageOracle for `suite`'s router (admin: the suite's admin), configured to ask `usageApiUrl`; with
 * `verifier`, also the router's verifier (opening a dispute then sends the oracle's first request, as deployed).
 */
export async function deployOracle(suite: ChainSuite, usageApiUrl: string, options: { verifier?: boolean } = {}): Promise<OracleDeployment> {
  const functionsRouter = await new MockFunctionsRouter__factory(suite.admin).deploy();
  await functionsRouter.waitForDeployment();
  const adminAddress = await suite.admin.getAddress();
  const oracle = await new UsageOracle__factory(suite.admin).deploy(suite.routerAddress, await functionsRouter.getAddress(), adminAddress);
  await oracle.waitForDeployment();
  const oracleAddress = await oracle.getAddress();
  await (await suite.router.grantRole(ARBITER_ROLE, oracleAddress)).wait();
  await (await oracle.setSource(SOURCE)).wait();
  await (await oracle.setUsageApi(usageApiUrl)).wait();
  await (await oracle.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, CALLBACK_GAS)).wait();
  await (await oracle.setSecretsReference(SECRETS_SLOT, SECRETS_VERSION)).wait();
  if (options.verifier === true) await (await suite.router.setVerifier(oracleAddress)).wait();
  return { oracle, oracleAddress, functionsRouter };
}

/**
 * Writes `<dir>/chain-<id>/deployed_addresses.json` as Ignition would, for relayer/chain's loadDeployment. The
 * dispute commands read only the router and the oracle; the governance entries point at the admin account.
 */
export async function writeDeployments(dir: string, suite: ChainSuite, oracleAddress?: string): Promise<void> {
  const folder = join(dir, `chain-${suite.chainId}`);
  await mkdir(folder, { recursive: true });
  const admin = await suite.admin.getAddress();
  const addresses: Record<string, string> = {
    "AGPTToken#AGPTToken": await suite.token.getAddress(),
    "AutoPayLLM#AutoPayLLM": suite.routerAddress,
    "Governance#AgentTimelock": admin,
    "Governance#AgentGovernor": admin,
  };
  if (oracleAddress !== undefined) addresses["UsageOracle#UsageOracle"] = oracleAddress;
  await writeFile(join(folder, "deployed_addresses.json"), JSON.stringify(addresses, null, 2));
}

/** Gives accounts ETH for gas (payers in the chain suite hold AGPT deposits but no ETH). */
export async function fundGas(provider: JsonRpcProvider, addresses: readonly string[]): Promise<void> {
  for (const address of addresses) await provider.send("hardhat_setBalance", [address, toQuantity(10n ** 20n)]);
}

/** Moves the node's clock forward and mines a block. */
export async function advance(provider: JsonRpcProvider, seconds: number): Promise<number> {
  await provider.send("evm_increaseTime", [seconds]);
  await provider.send("evm_mine", []);
  return (await provider.getBlock("latest"))!.timestamp;
}

/** Settles `receipts` as one batch with the real Batcher and Settler; returns the settler's final record. */
export async function settleReceipts(
  suite: ChainSuite,
  nodeUrl: string,
  redis: Redis,
  prefix: string,
  archiveDir: string,
  chain: string,
  receipts: readonly Receipt[],
): Promise<SettlementRecord> {
  return settleWithPipeline(pipeline({ suite, rpcUrls: [nodeUrl], redis, prefix, archiveDir, chain }), receipts);
}

/**
 * The demo's stand-in for the Chainlink DON (relayer/demo/local-don.ts: each recorded request run in Node through
 * oracle/functions/simulator.ts, answered through the mock router), from its own account, keeping what it
 * answered. `start()` keeps doing it in the background.
 */
export class LocalDon {
  readonly answered: { requestId: string; error?: string | undefined; response?: string | undefined }[] = [];
  private readonly don: DemoDon;
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;

  constructor(provider: JsonRpcProvider, functionsRouter: MockFunctionsRouter, secrets: Record<string, string> = { usageApiKey: USAGE_API_KEY }) {
    this.don = new DemoDon(functionsRouter, new NonceManager(new Wallet(NODE_KEYS[7], provider)), secrets);
  }

  /** Answers every request recorded since the last call; returns how many. */
  async answerPending(): Promise<number> {
    const answers = await this.don.answerPending();
    this.answered.push(...answers.map(({ requestId, error, response }) => ({ requestId, error, response })));
    return answers.length;
  }

  start(intervalMs = 200): void {
    const tick = () => {
      this.busy = this.answerPending()
        .then(() => undefined)
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = null;
    if (timer !== null) clearTimeout(timer);
    await this.busy;
  }
}
