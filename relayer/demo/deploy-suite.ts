/**
 * The demo's fast deployment: the whole suite deployed with ethers from the compiled artifacts (the typechain
 * factories), in the shape `npm run deploy` (Ignition, deploy/) produces, in a couple of seconds: AGPT, AutoPayLLM,
 * AgentTimelock + AgentGovernor wired as in deploy/modules/Governance.ts, providers and priced models, the relayer's
 * RELAYER_ROLE, and the UsageOracle on the repository's MockFunctionsRouter as the router's arbiter. With
 * `handOver`, the timelock then receives every admin power and the deployer renounces its own, as in production.
 * The addresses are written where relayer/chain's `loadDeployment` reads them (`<dir>/chain-<id>/deployed_addresses.json`).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { ContractTransactionResponse, Signer } from "ethers";

import { AGPTToken__factory } from "../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { MockFunctionsRouter__factory } from "../../typechain-types/factories/mocks/MockFunctionsRouter__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import type { AGPTToken, AgentGovernor, AgentTimelock, AutoPayLLM, MockFunctionsRouter, UsageOracle } from "../../typechain-types/index.js";
import { FUTURE_IDS, deploymentDir } from "../chain/deployment.js";
import { ARBITER_ROLE, CANCELLER_ROLE, DEFAULT_ADMIN_ROLE, EXECUTOR_ROLE, PROPOSER_ROLE, RELAYER_ROLE } from "../chain/roles.js";

export interface SuiteSpec {
  /** AGPT minted to the deployer (token units) */
  readonly supply: bigint;
  /** seconds */
  readonly disputeWindow: number;
  /** seconds; must exceed the dispute window */
  readonly timelockDelay: number;
  readonly votingDelay: number;
  readonly votingPeriod: number;
  readonly proposalThreshold: bigint;
  readonly quorumPercent: number;
  readonly providers: ReadonlyArray<{ readonly name: string; readonly payee: string }>;
  /** model name -> price cap in token units per 1k tokens */
  readonly models: ReadonlyArray<{ readonly name: string; readonly pricePer1k: bigint }>;
  /** receives RELAYER_ROLE */
  readonly relayer: string;
  /** dispute bond (token units) */
  readonly disputeBond: bigint;
  /** the UsageOracle on a MockFunctionsRouter, asking this usage API */
  readonly oracle?: { readonly usageApiUrl: string; readonly source: string; readonly subscriptionId: bigint; readonly donId: string } | undefined;
  /** give every admin power to the timelock and renounce the deployer's */
  readonly handOver: boolean;
}

export interface DeployedSuite {
  readonly agpt: AGPTToken;
  readonly router: AutoPayLLM;
  readonly timelock: AgentTimelock;
  readonly governor: AgentGovernor;
  readonly oracle?: UsageOracle | undefined;
  readonly functionsRouter?: MockFunctionsRouter | undefined;
  readonly addresses: { agpt: string; autoPayLLM: string; timelock: string; governor: string; usageOracle?: string | undefined; functionsRouter?: string | undefined };
  /** provider name -> on-chain id */
  readonly providerIds: ReadonlyMap<string, number>;
  /** transactions sent */
  readonly transactions: number;
}

/** Deploys and wires the suite from `deployer` (which must send transactions in order: a NonceManager or a node account). */
export async function deploySuite(deployer: Signer, spec: SuiteSpec, onStep: (what: string) => void = () => undefined): Promise<DeployedSuite> {
  const from = await deployer.getAddress();
  let transactions = 0;
  const send = async (what: string, tx: Promise<ContractTransactionResponse>) => {
    onStep(what);
    const receipt = await (await tx).wait();
    if (receipt === null || receipt.status !== 1) throw new Error(`deployment step failed: ${what}`);
    transactions += 1;
  };
  const deployed = async <T extends { waitForDeployment(): Promise<unknown>; getAddress(): Promise<string> }>(what: string, contract: Promise<T>): Promise<T> => {
    onStep(what);
    const instance = await contract;
    await instance.waitForDeployment();
    transactions += 1;
    return instance;
  };

  const agpt = await deployed("AGPTToken", new AGPTToken__factory(deployer).deploy(from, spec.supply));
  const router = await deployed("AutoPayLLM", new AutoPayLLM__factory(deployer).deploy(await agpt.getAddress(), from));
  const routerAddress = await router.getAddress();
  await send("dispute window", router.setDisputeWindow(spec.disputeWindow));
  await send("dispute bond", router.setDisputeBond(spec.disputeBond));
  const timelock = await deployed("AgentTimelock", new AgentTimelock__factory(deployer).deploy(spec.timelockDelay, [], [], from));
  const governor = await deployed(
    "AgentGovernor",
    new AgentGovernor__factory(deployer).deploy(await agpt.getAddress(), await timelock.getAddress(), routerAddress, spec.votingDelay, spec.votingPeriod, spec.proposalThreshold, spec.quorumPercent),
  );
  const governorAddress = await governor.getAddress();
  for (const role of [PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE]) await send("timelock roles", timelock.grantRole(role, governorAddress));

  const providerIds = new Map<string, number>();
  for (const provider of spec.providers) {
    await send(`provider ${provider.name}`, router.registerProvider(provider.name, provider.payee));
    providerIds.set(provider.name, Number(await router.providerId(provider.name)));
  }
  for (const model of spec.models) await send(`model ${model.name}`, router.setModelPrice(model.name, model.pricePer1k));
  await send("relayer role", router.grantRole(RELAYER_ROLE, spec.relayer));

  let oracle: UsageOracle | undefined;
  let functionsRouter: MockFunctionsRouter | undefined;
  if (spec.oracle !== undefined) {
    functionsRouter = await deployed("MockFunctionsRouter", new MockFunctionsRouter__factory(deployer).deploy());
    oracle = await deployed("UsageOracle", new UsageOracle__factory(deployer).deploy(routerAddress, await functionsRouter.getAddress(), from));
    await send("arbiter role", router.grantRole(ARBITER_ROLE, await oracle.getAddress()));
    // opening a dispute then asks the oracle itself (anyone may still ask again)
    await send("verifier", router.setVerifier(await oracle.getAddress()));
    await send("oracle source", oracle.setSource(spec.oracle.source));
    await send("oracle usage API", oracle.setUsageApi(spec.oracle.usageApiUrl));
    await send("oracle Functions config", oracle.setFunctionsConfig(spec.oracle.subscriptionId, spec.oracle.donId, 300_000));
    await send("oracle secrets", oracle.setSecretsReference(0, 1));
  }

  if (spec.handOver) {
    const timelockAddress = await timelock.getAddress();
    await send("hand-over", router.grantRole(DEFAULT_ADMIN_ROLE, timelockAddress));
    if (oracle !== undefined) {
      await send("hand-over", oracle.grantRole(DEFAULT_ADMIN_ROLE, timelockAddress));
      await send("hand-over", oracle.renounceRole(DEFAULT_ADMIN_ROLE, from));
    }
    await send("hand-over", router.renounceRole(DEFAULT_ADMIN_ROLE, from));
    await send("hand-over", timelock.renounceRole(DEFAULT_ADMIN_ROLE, from));
  }

  return {
    agpt,
    router,
    timelock,
    governor,
    oracle,
    functionsRouter,
    addresses: {
      agpt: await agpt.getAddress(),
      autoPayLLM: routerAddress,
      timelock: await timelock.getAddress(),
      governor: governorAddress,
      usageOracle: oracle === undefined ? undefined : await oracle.getAddress(),
      functionsRouter: functionsRouter === undefined ? undefined : await functionsRouter.getAddress(),
    },
    providerIds,
    transactions,
  };
}

/** Writes `deployed_addresses.json` as Ignition would, for `loadDeployment(chainId, { deploymentsDir })`. */
export async function writeDeployment(deploymentsDir: string, chainId: number, suite: DeployedSuite): Promise<string> {
  const dir = deploymentDir(chainId, deploymentsDir);
  await mkdir(dir, { recursive: true });
  const recorded: Record<string, string> = {
    [FUTURE_IDS.agpt]: suite.addresses.agpt,
    [FUTURE_IDS.autoPayLLM]: suite.addresses.autoPayLLM,
    [FUTURE_IDS.timelock]: suite.addresses.timelock,
    [FUTURE_IDS.governor]: suite.addresses.governor,
  };
  if (suite.addresses.usageOracle !== undefined) recorded[FUTURE_IDS.usageOracle] = suite.addresses.usageOracle;
  const file = join(dir, "deployed_addresses.json");
  await writeFile(file, `${JSON.stringify(recorded, null, 2)}\n`);
  return file;
}
