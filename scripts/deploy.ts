/**
 * `npm run deploy -- --network <name>`: deploys the whole suite with Hardhat Ignition, or completes a deployment
 * that was interrupted, or (already deployed with these parameters) changes nothing.
 *
 * 1. Reads `deploy/parameters/<network>.json5` and refuses invalid parameters before sending anything: unknown
 *    keys, out-of-range values, a timelock delay not longer than the dispute window plus the sequencer grace period,
 *    a governance timeout shorter than the proposal path plus its margin, an AGPT distribution that leaves the
 *    deployer more than `maxDeployerShare` on a public network (or nobody able to propose or reach the quorum), a
 *    payment token that is not an ERC-20, an unfunded deployer (scripts/deploy/parameters.ts).
 * 2. Runs the `AgentGPT` Ignition module (deploy/modules/AgentGPT.ts): contracts, dispute settings, the providers and
 *    priced models the parameters list (deploy/modules/Registry.ts), roles, then the hand-over of every power to the
 *    timelock. Ignition's journal and the addresses land in `deploy/deployments/chain-<chainId>/`
 *    (`deployed_addresses.json` is what relayer/chain reads). On a suite already handed over, providers or models
 *    that differ from the chain are refused with the governance command that changes them.
 * 3. Reads every role, setting, provider and model back from the chain, prints what is live, and fails loudly if
 *    the hand-over is incomplete or a listed provider or model is not live as listed.
 *
 * Environment (all optional):
 * - `LOCALHOST_RPC_URL`: the node behind `--network localhost` (default http://127.0.0.1:8545), e.g.
 *   `LOCALHOST_RPC_URL=http://127.0.0.1:8546 npm run deploy -- --network localhost`.
 * - `AGENTGPT_DEPLOY_PARAMETERS`: another parameters file.
 * - `AGENTGPT_DEPLOYMENTS_DIR`: another deployments directory (read by relayer/chain too).
 * - `HARDHAT_IGNITION_CONFIRM_DEPLOYMENT`: skip the confirmation asked before deploying to a public chain.
 *
 * RPC URLs and keys of public networks are Hardhat configuration variables (hardhat.config.ts): set them with
 * `npx hardhat keystore set ARBITRUM_SEPOLIA_PRIVATE_KEY` (or the environment); they never live in the repo.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline/promises";

import {
  HardhatArtifactResolver,
  PrettyEventHandler,
  errorDeploymentResultToExceptionMessage,
  getUserInterruptionsHandlers,
  readDeploymentParameters,
} from "@nomicfoundation/hardhat-ignition/helpers";
import { DeploymentResultType, deploy } from "@nomicfoundation/ignition-core";
import { Contract, getAddress } from "ethers";
import hre from "hardhat";

import { agentGptModule } from "../deploy/modules/AgentGPT.js";
import {
  AGPT_UNIT,
  ChainError,
  DEPLOYMENTS_DIR_VARIABLE,
  LOCAL_CHAIN_IDS,
  connectSuite,
  deploymentId,
  loadDeployment,
} from "../relayer/chain/index.js";
import { formatTokenAmount } from "../relayer/config/amount.js";
import { inspectSuite } from "./deploy/inspect-suite.js";
import { registryForRun } from "./deploy/registry-drift.js";
import { forgetStaleLocalDeployment, missingContracts } from "./deploy/local-instance.js";
import {
  ParameterError,
  checkDeployerShare,
  checkParameters,
  deployerKeeps,
  governanceMargin,
  proposalPathSeconds,
  toIgnition,
  type SuiteParameters,
} from "./deploy/parameters.js";

class DeployError extends Error {
  override readonly name = "DeployError";
}

const show = (path: string) => relative(process.cwd(), path) || ".";

async function main(): Promise<void> {
  const networkName = hre.globalOptions.network;
  if (networkName === undefined || networkName === "" || networkName === "hardhat" || networkName === "default") {
    throw new DeployError(
      "pass --network <name>: localhost (a node started with `npx hardhat node --hostname 127.0.0.1`), " +
        "arbitrumSepolia or polygonAmoy. The in-memory network forgets a deployment as soon as this command ends.",
    );
  }

  // 1. Parameters, checked before any connection is opened.
  const parametersFile = resolve(
    process.env.AGENTGPT_DEPLOY_PARAMETERS ?? join(hre.config.paths.ignition, "parameters", `${networkName}.json5`),
  );
  if (!existsSync(parametersFile)) {
    const available = (await readdir(join(hre.config.paths.ignition, "parameters"))).join(", ");
    throw new DeployError(
      `no deployment parameters for network "${networkName}": create ${show(parametersFile)} ` +
        `(copy one of ${available} in ${show(join(hre.config.paths.ignition, "parameters"))})`,
    );
  }
  const params = checkParameters(await readDeploymentParameters(parametersFile), show(parametersFile));

  // 2. The chain, the deployer, and what is already there.
  const localUrl = process.env.LOCALHOST_RPC_URL;
  const connection = await hre.network.create({
    network: networkName,
    ...(networkName === "localhost" && localUrl !== undefined && localUrl !== ""
      ? { override: { url: localUrl } }
      : {}),
  });
  const { provider, ethers } = connection;
  let chainId: number;
  try {
    chainId = Number(await provider.request({ method: "eth_chainId" }));
  } catch (error) {
    const url = networkName === "localhost" ? (localUrl || "http://127.0.0.1:8545") : `the ${networkName} RPC URL`;
    throw new DeployError(
      `no node answers at ${url}` +
        (networkName === "localhost"
          ? ": start one with `npx hardhat node --hostname 127.0.0.1`, or point LOCALHOST_RPC_URL at yours " +
            "(LOCALHOST_RPC_URL=http://127.0.0.1:8546 npm run deploy -- --network localhost)"
          : ": check the network's RPC configuration variable (hardhat.config.ts)") +
        ` [${error instanceof Error ? error.message : String(error)}]`,
    );
  }
  const accounts = (await provider.request({ method: "eth_accounts" })) as string[];
  const deployer = accounts[0] === undefined ? undefined : getAddress(accounts[0]);
  if (deployer === undefined) {
    throw new DeployError(
      `no account to deploy from on ${networkName}: set its private key with ` +
        "`npx hardhat keystore set <NETWORK>_PRIVATE_KEY` (see hardhat.config.ts)",
    );
  }
  const deploymentsDir = process.env[DEPLOYMENTS_DIR_VARIABLE]
    ? resolve(process.env[DEPLOYMENTS_DIR_VARIABLE])
    : join(hre.config.paths.ignition, "deployments");
  const deploymentDir = join(deploymentsDir, deploymentId(chainId));
  const local = LOCAL_CHAIN_IDS.has(chainId);
  checkDeployerShare(params, deployer, local, show(parametersFile));
  const { options, parameters } = toIgnition(params, deployer);
  if (local) {
    const instances = join(hre.config.paths.cache, "agentgpt-local-instances.json");
    if (await forgetStaleLocalDeployment(provider, deploymentDir, instances)) {
      console.log(`The local node was restarted: starting a fresh deployment in ${show(deploymentDir)}.`);
    }
  } else {
    const missing = await missingContracts(provider, deploymentDir);
    if (missing.length > 0) {
      throw new DeployError(
        `${show(deploymentDir)} records contracts that chain ${chainId} does not have (${missing.join(", ")}): ` +
          "it belongs to another chain or was copied by mistake; move it away to deploy afresh",
      );
    }
  }
  const resuming = existsSync(join(deploymentDir, "journal.jsonl"));
  // Handed over already: what the parameters list must be live (governance changes it now), and only what the
  // journal already holds stays in the graph, so nothing is sent from a deployer that lost its power.
  options.registry = await registryForRun({
    provider: ethers.provider,
    deploymentDir,
    deploymentsDir,
    chainId,
    networkName,
    deployer,
    registry: params.registry,
    source: show(parametersFile),
  });

  await preflight(ethers.provider, deployer, params, networkName, resuming);
  printPlan(networkName, chainId, deployer, params, show(parametersFile), show(deploymentDir), resuming);
  if (!local && !(await confirm(`Deploy to ${networkName} (chain ${chainId}) from ${deployer}?`))) {
    console.log("Deployment cancelled: nothing was sent.");
    process.exitCode = 1;
    return;
  }

  // 3. Ignition.
  const interruptionHandlers = getUserInterruptionsHandlers();
  hre.hooks.registerHandlers("userInterruptions", interruptionHandlers);
  const networkIgnition = hre.config.networks[networkName]?.ignition;
  let result;
  try {
    result = await deploy({
      // An automining local node confirms each transaction at once: poll it often instead of every second.
      config: local ? { ...hre.config.ignition, blockPollingInterval: 50 } : hre.config.ignition,
      provider,
      executionEventListener: new PrettyEventHandler(hre.interruptions),
      artifactResolver: new HardhatArtifactResolver(hre.artifacts),
      deploymentDir,
      ignitionModule: agentGptModule(options),
      deploymentParameters: parameters,
      accounts,
      defaultSender: deployer,
      strategy: "basic",
      maxFeePerGasLimit: networkIgnition?.maxFeePerGasLimit,
      maxFeePerGas: networkIgnition?.maxFeePerGas,
      maxPriorityFeePerGas: networkIgnition?.maxPriorityFeePerGas,
      gasPrice: networkIgnition?.gasPrice,
      disableFeeBumping: hre.config.ignition.disableFeeBumping ?? networkIgnition?.disableFeeBumping,
    });
  } finally {
    hre.hooks.unregisterHandlers("userInterruptions", interruptionHandlers);
  }
  if (result.type !== DeploymentResultType.SUCCESSFUL_DEPLOYMENT) {
    let hint = "";
    if (result.type === DeploymentResultType.RECONCILIATION_ERROR) {
      hint =
        "\nThe parameters differ from those this chain was deployed with. After the hand-over only governance " +
        "can change the suite: restore the parameters file, or propose the change (`agentgpt governance ...`).";
    }
    throw new DeployError(`${errorDeploymentResultToExceptionMessage(result)}${hint}`);
  }

  // 4. Read everything back.
  const suite = await connectSuite(await loadDeployment(chainId, { deploymentsDir, networkName }), ethers.provider);
  const report = await inspectSuite(suite, {
    deployer,
    relayer: params.relayer,
    guardian: params.guardian,
    maxDeployerShareBps: local ? undefined : params.maxDeployerShareBps,
    blockTime: params.blockTime,
    registry: params.registry,
  });
  console.log("\nContracts");
  for (const [name, address] of Object.entries(suite.deployment.addresses)) console.log(`  ${name.padEnd(12)} ${address}`);
  console.log("Settings");
  for (const [name, value] of Object.entries(report.settings)) console.log(`  ${name.padEnd(19)} ${value}`);
  console.log(`Providers (${report.providers.length})`);
  for (const line of report.providers) console.log(`  ${line}`);
  if (report.providers.length === 0) console.log("  none: rows are refused (UnknownProvider) until governance registers one");
  console.log(`Models (${report.models.length})`);
  for (const line of report.models) console.log(`  ${line}`);
  if (report.models.length === 0) console.log("  none: rows are refused (ModelNotPriced) until governance prices one");
  console.log("Roles");
  for (const line of report.roles) console.log(`  ${line}`);
  if (report.problems.length > 0) {
    throw new DeployError(`the deployed suite breaks its rules:\n  - ${report.problems.join("\n  - ")}`);
  }
  console.log(`\nAddresses: ${show(join(deploymentDir, "deployed_addresses.json"))} (read by relayer/chain).`);
  if (!local) {
    console.log(`Verify the sources: npx hardhat ignition verify ${deploymentId(chainId)} --network ${networkName}`);
  }
  await connection.close();
}

/** Chain-side checks that need no transaction. */
async function preflight(
  provider: { getBalance(a: string): Promise<bigint>; getCode(a: string): Promise<string> },
  deployer: string,
  params: SuiteParameters,
  networkName: string,
  resuming: boolean,
): Promise<void> {
  const balance = await provider.getBalance(deployer);
  if (balance === 0n && !resuming) {
    throw new DeployError(`the deployer ${deployer} has no native token on ${networkName} to pay gas: fund it first`);
  }
  if (params.functionsRouter !== undefined && (await provider.getCode(params.functionsRouter)) === "0x") {
    throw new DeployError(`UsageOracle.functionsRouter ${params.functionsRouter} has no code on ${networkName}`);
  }
  if (params.paymentToken !== undefined) {
    if ((await provider.getCode(params.paymentToken)) === "0x") {
      throw new DeployError(`AutoPayLLM.paymentToken ${params.paymentToken} has no code on ${networkName}`);
    }
    const token = new Contract(
      params.paymentToken,
      ["function decimals() view returns (uint8)", "function symbol() view returns (string)"],
      provider as never,
    );
    try {
      await Promise.all([token.getFunction("decimals")(), token.getFunction("symbol")()]);
    } catch {
      throw new DeployError(
        `AutoPayLLM.paymentToken ${params.paymentToken} does not answer decimals() and symbol(): not an ERC-20?`,
      );
    }
  }
}

function printPlan(
  networkName: string,
  chainId: number,
  deployer: string,
  p: SuiteParameters,
  parametersFile: string,
  deploymentDir: string,
  resuming: boolean,
): void {
  const what = resuming ? "Completing or re-checking (journal found; Ignition sends only what is missing)" : "Deploying";
  console.log(`${what} the AgentGPT suite on ${networkName} (chain ${chainId})`);
  console.log(`  deployer        ${deployer} (renounces every admin role at the end)`);
  console.log(`  parameters      ${parametersFile}`);
  console.log(`  journal         ${deploymentDir}`);
  console.log(`  payment token   ${p.paymentToken ?? "a fresh AGPT"}`);
  console.log(`  AGPT supply     ${formatTokenAmount(p.initialSupply, AGPT_UNIT)}`);
  for (const a of p.allocations) {
    const to = a.to === "timelock" ? "the timelock (treasury)" : a.to === "deployer" ? "the deployer" : a.to;
    console.log(`    to            ${to}: ${formatTokenAmount(a.amount, AGPT_UNIT)}`);
  }
  const kept = deployerKeeps(p, deployer);
  console.log(
    `    deployer keeps ${formatTokenAmount(kept, AGPT_UNIT)} (at most ${p.maxDeployerShareBps / 100} % on a public network)`,
  );
  console.log(
    `  governance      delay ${p.votingDelay} blocks, period ${p.votingPeriod} blocks at ${p.blockTime} s, ` +
      `threshold ${formatTokenAmount(p.proposalThreshold, AGPT_UNIT)}, quorum ${p.quorumPercent}%`,
  );
  const grace = p.sequencerGracePeriod > 0 ? ` + sequencer grace ${p.sequencerGracePeriod} s` : "";
  console.log(`  timelock        ${p.timelockDelay} s > dispute window ${p.disputeWindow} s${grace}`);
  const path = proposalPathSeconds(p);
  console.log(
    `  disputes        bucket ${p.usageBucket} s, bond ${p.paymentToken === undefined ? formatTokenAmount(p.disputeBond, AGPT_UNIT) : `${p.disputeBond} units`}, ` +
      `arbiter ${p.arbiterTimeout} s, then governance ${p.governanceTimeout} s >= proposal path ${path} s + margin ` +
      `${governanceMargin(p)} s; after that the charge stands`,
  );
  console.log(
    `  sequencer feed  ${p.sequencerUptimeFeed === undefined ? "none" : `${p.sequencerUptimeFeed}, grace ${p.sequencerGracePeriod} s`}`,
  );
  for (const provider of p.registry.providers) {
    console.log(`  provider        ${provider.name}, paid to ${provider.payee}`);
  }
  const unit = p.paymentToken === undefined ? AGPT_UNIT : { symbol: "units", decimals: 0 };
  for (const model of p.registry.models) {
    const budget = model.dailyBudget === 0n ? "no daily budget" : `daily budget ${formatTokenAmount(model.dailyBudget, unit)}`;
    console.log(`  model           ${model.name}, ${formatTokenAmount(model.maxPricePer1k, unit)}/1k tokens, ${budget}`);
  }
  if (p.registry.providers.length === 0 && p.registry.models.length === 0) {
    console.log("  billing         no providers or models listed: governance registers them after the deploy");
  }
  console.log(`  relayer         ${p.relayer ?? "none yet (grant RELAYER_ROLE by governance later)"}`);
  console.log(`  guardian        ${p.guardian ?? "none yet (grant PAUSER_ROLE by governance later)"}`);
  console.log(
    `  oracle          ${p.functionsRouter === undefined ? "none (no UsageOracle.functionsRouter): governance judges disputes" : `UsageOracle on Functions router ${p.functionsRouter}, arbiter and verifier`}`,
  );
  if (p.functionsRouter !== undefined) {
    const v = p.verification;
    console.log(`                  ${v.maxAttempts} attempts, ${v.requestTimeout} s apart; tolerance ${v.toleranceBps} bps`);
  }
  if (p.relayer === deployer || p.guardian === deployer) {
    console.log("  note            the deployer is also the relayer or guardian: use a separate key in production");
  }
}

async function confirm(question: string): Promise<boolean> {
  if (process.env.HARDHAT_IGNITION_CONFIRM_DEPLOYMENT !== undefined) return true;
  if (!process.stdin.isTTY) {
    throw new DeployError(
      "deploying to a public chain needs a confirmation: run in a terminal, or set HARDHAT_IGNITION_CONFIRM_DEPLOYMENT=1",
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

try {
  await main();
} catch (error) {
  if (error instanceof DeployError || error instanceof ParameterError || error instanceof ChainError) {
    console.error(`\ndeploy: ${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
