/**
 * Reads a deployed suite back from the chain: every setting and every role that matters, and the rules the
 * deployment must satisfy (the deployer holds no admin power; the timelock holds it all; the governor alone
 * proposes, cancels and executes; the timelock delay exceeds the dispute window plus the sequencer grace period; the
 * governance timeout exceeds the proposal path plus its margin; the oracle, if any, is the verifier; on a public
 * network the deployer keeps at most its stated share of AGPT).
 */
import { Contract } from "ethers";

import type { RegistryEntries } from "../../deploy/modules/Registry.js";
import {
  ARBITER_ROLE,
  CANCELLER_ROLE,
  DEFAULT_ADMIN_ROLE,
  EXECUTOR_ROLE,
  PAUSER_ROLE,
  PROPOSER_ROLE,
  RELAYER_ROLE,
  type Suite,
} from "../../relayer/chain/index.js";
import { formatTokenAmount } from "../../relayer/config/amount.js";
import { governanceMargin, proposalPathSeconds } from "./parameters.js";

export interface SuiteReport {
  settings: Record<string, string>;
  /** Every registered provider: `1  openai  payee 0x...`. */
  providers: string[];
  /** Every known model: `1  gpt-4-turbo  0.12 AGPT/1k tokens, no daily budget`. */
  models: string[];
  roles: string[];
  /** Broken rules; empty when the deployment is sound. */
  problems: string[];
}

export async function inspectSuite(
  suite: Suite,
  expected: {
    deployer: string;
    relayer?: string;
    guardian?: string;
    /** The most of the AGPT supply (basis points) the deployer may hold; undefined: not checked (local nodes). */
    maxDeployerShareBps?: number;
    /** Seconds per governance-clock tick, to check the governance timeout against the proposal path. */
    blockTime?: number;
    /** Providers and models the parameters list: each must be live with exactly these values. */
    registry?: RegistryEntries;
  },
): Promise<SuiteReport> {
  const { autoPayLLM, timelock, governor, agpt } = suite;
  const [timelockAddress, governorAddress] = [await timelock.getAddress(), await governor.getAddress()];
  const [votingDelay, votingPeriod, threshold, quorumPercent, minDelay, window, clockMode, supply] =
    await Promise.all([
      governor.votingDelay(),
      governor.votingPeriod(),
      governor.proposalThreshold(),
      governor["quorumNumerator()"](),
      timelock.getMinDelay(),
      autoPayLLM.disputeWindow(),
      governor.CLOCK_MODE(),
      agpt.totalSupply(),
    ]);
  const [bucket, bond, arbiterTimeout, governanceTimeout, grace, verifier, deployerBalance, deployerVotes] =
    await Promise.all([
      autoPayLLM.usageBucket(),
      autoPayLLM.disputeBond(),
      autoPayLLM.arbiterTimeout(),
      autoPayLLM.governanceTimeout(),
      autoPayLLM.sequencerGracePeriod(),
      autoPayLLM.verifier(),
      agpt.balanceOf(expected.deployer),
      agpt.getVotes(expected.deployer),
    ]);
  const settings: Record<string, string> = {
    "payment token": `${suite.paymentUnit.symbol} ${await suite.paymentToken.getAddress()}`,
    "AGPT supply": formatTokenAmount(supply, suite.votesUnit),
    "voting delay": `${votingDelay} blocks`,
    "voting period": `${votingPeriod} blocks`,
    "proposal threshold": formatTokenAmount(threshold, suite.votesUnit),
    quorum: `${quorumPercent}% of supply`,
    "timelock delay": `${minDelay} s`,
    "dispute window": `${window} s`,
    "sequencer grace": `${grace} s`,
    "usage bucket": `${bucket} s`,
    "dispute bond": formatTokenAmount(bond, suite.paymentUnit),
    "arbiter timeout": `${arbiterTimeout} s`,
    "governance timeout": `${governanceTimeout} s (then the charge stands)`,
    verifier: verifier === `0x${"00".repeat(20)}` ? "none" : verifier,
    "timelock AGPT": formatTokenAmount(await agpt.balanceOf(timelockAddress), suite.votesUnit),
    "deployer AGPT": `${formatTokenAmount(deployerBalance, suite.votesUnit)} (votes ${formatTokenAmount(deployerVotes, suite.votesUnit)})`,
    clock: clockMode,
  };

  const checks: Array<[string, Promise<boolean>, boolean]> = [
    ["AutoPayLLM DEFAULT_ADMIN_ROLE: timelock", autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, timelockAddress), true],
    ["AutoPayLLM DEFAULT_ADMIN_ROLE: deployer", autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, expected.deployer), false],
    ["AutoPayLLM DEFAULT_ADMIN_ROLE: governor", autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, governorAddress), false],
    ["timelock DEFAULT_ADMIN_ROLE: deployer", timelock.hasRole(DEFAULT_ADMIN_ROLE, expected.deployer), false],
    ["timelock DEFAULT_ADMIN_ROLE: timelock itself", timelock.hasRole(DEFAULT_ADMIN_ROLE, timelockAddress), true],
    ["timelock PROPOSER_ROLE: governor", timelock.hasRole(PROPOSER_ROLE, governorAddress), true],
    ["timelock CANCELLER_ROLE: governor", timelock.hasRole(CANCELLER_ROLE, governorAddress), true],
    ["timelock EXECUTOR_ROLE: governor", timelock.hasRole(EXECUTOR_ROLE, governorAddress), true],
    ["timelock EXECUTOR_ROLE: anyone (address 0)", timelock.hasRole(EXECUTOR_ROLE, `0x${"00".repeat(20)}`), false],
    ["timelock PROPOSER_ROLE: deployer", timelock.hasRole(PROPOSER_ROLE, expected.deployer), false],
  ];
  if (expected.relayer !== undefined) {
    checks.push(["AutoPayLLM RELAYER_ROLE: relayer", autoPayLLM.hasRole(RELAYER_ROLE, expected.relayer), true]);
  }
  const oracle = suite.deployment.addresses.usageOracle;
  if (oracle !== undefined) {
    const usageOracle = new Contract(oracle, ["function hasRole(bytes32,address) view returns (bool)"], autoPayLLM.runner);
    const hasRole = usageOracle.getFunction("hasRole");
    checks.push(["AutoPayLLM ARBITER_ROLE: UsageOracle", autoPayLLM.hasRole(ARBITER_ROLE, oracle), true]);
    checks.push(["UsageOracle DEFAULT_ADMIN_ROLE: timelock", hasRole(DEFAULT_ADMIN_ROLE, timelockAddress), true]);
    checks.push(["UsageOracle DEFAULT_ADMIN_ROLE: deployer", hasRole(DEFAULT_ADMIN_ROLE, expected.deployer), false]);
    checks.push(["AutoPayLLM verifier: UsageOracle", Promise.resolve(verifier.toLowerCase() === oracle.toLowerCase()), true]);
  }
  if (expected.guardian !== undefined) {
    checks.push(["AutoPayLLM PAUSER_ROLE: guardian", autoPayLLM.hasRole(PAUSER_ROLE, expected.guardian), true]);
  }
  const roles: string[] = [];
  const problems: string[] = [];
  for (const [label, held, want] of checks) {
    const value = await held;
    roles.push(`${value ? "yes" : "no "}  ${label}`);
    if (value !== want) problems.push(`${label}: expected ${want ? "granted" : "not granted"}`);
  }
  if (minDelay <= window + grace) {
    problems.push(
      `timelock delay ${minDelay} s does not exceed the dispute window ${window} s + sequencer grace ${grace} s`,
    );
  }
  if (expected.blockTime !== undefined) {
    const timings = {
      blockTime: expected.blockTime,
      votingDelay: Number(votingDelay),
      votingPeriod: Number(votingPeriod),
      timelockDelay: Number(minDelay),
    };
    const needed = proposalPathSeconds(timings) + governanceMargin(timings);
    if (Number(governanceTimeout) < needed) {
      problems.push(`governance timeout ${governanceTimeout} s is shorter than the proposal path plus margin (${needed} s)`);
    }
  }
  if (expected.maxDeployerShareBps !== undefined) {
    const max = (supply * BigInt(expected.maxDeployerShareBps)) / 10_000n;
    if (deployerBalance > max || deployerVotes > max) {
      problems.push(
        `the deployer holds ${formatTokenAmount(deployerBalance, suite.votesUnit)} ` +
          `(${formatTokenAmount(deployerVotes, suite.votesUnit)} votes), more than its share ` +
          `(${expected.maxDeployerShareBps / 100} % = ${formatTokenAmount(max, suite.votesUnit)})`,
      );
    }
  }
  const { providers, models } = await readRegistry(suite, expected.registry, problems);
  if (!(await governor.timelock()).toLowerCase().startsWith(timelockAddress.toLowerCase())) {
    problems.push("the governor does not execute through the deployed timelock");
  }
  return { settings, providers, models, roles, problems };
}

/** Lists what is billable: every provider and model, and checks the listed ones against the chain. */
export async function readRegistry(
  suite: Suite,
  expected: RegistryEntries | undefined,
  problems: string[],
): Promise<{ providers: string[]; models: string[] }> {
  const { autoPayLLM } = suite;
  const providers: string[] = [];
  const models: string[] = [];
  const livePayees = new Map<string, string>();
  const liveModels = new Map<string, { price: bigint; budget: bigint }>();
  const providerCount = Number(await autoPayLLM.providerCount());
  for (let id = 1; id <= providerCount; id += 1) {
    const [name, payee] = await autoPayLLM.providerInfo(id);
    livePayees.set(name, payee);
    providers.push(`${String(id).padStart(3)}  ${name.padEnd(16)} payee ${payee}`);
  }
  const modelCount = Number(await autoPayLLM.modelCount());
  for (let id = 1; id <= modelCount; id += 1) {
    const [name, price, budget] = await autoPayLLM.modelInfo(id);
    liveModels.set(name, { price, budget });
    const priced = price === 0n ? "not billable (no price cap)" : `${formatTokenAmount(price, suite.paymentUnit)}/1k tokens`;
    const limit = budget === 0n ? "no daily budget" : `daily budget ${formatTokenAmount(budget, suite.paymentUnit)}`;
    models.push(`${String(id).padStart(3)}  ${name.padEnd(16)} ${priced}, ${limit}`);
  }
  for (const provider of expected?.providers ?? []) {
    const payee = livePayees.get(provider.name);
    if (payee === undefined) problems.push(`provider "${provider.name}" is not registered`);
    else if (payee.toLowerCase() !== provider.payee.toLowerCase()) {
      problems.push(`provider "${provider.name}" is paid to ${payee}, not ${provider.payee}`);
    }
  }
  for (const model of expected?.models ?? []) {
    const live = liveModels.get(model.name);
    if (live === undefined) problems.push(`model "${model.name}" is not registered`);
    else if (live.price !== model.maxPricePer1k || live.budget !== model.dailyBudget) {
      problems.push(
        `model "${model.name}" has price cap ${live.price} and daily budget ${live.budget} token units, not ` +
          `${model.maxPricePer1k} and ${model.dailyBudget}`,
      );
    }
  }
  return { providers, models };
}
