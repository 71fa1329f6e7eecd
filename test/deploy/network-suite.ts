/**
 * The suite deployed on the in-process Hardhat network exactly as `npm run deploy` would deploy it from one of the
 * shipped parameters files (deploy/parameters/<network>.json5): the same checks (checkParameters,
 * checkDeployerShare), the same graph and Ignition parameters (toIgnition, the AgentGPT module). Only what a test
 * chain cannot have is replaced, and said: a holder placeholder ("<...>") becomes a test account, the Chainlink
 * Functions router becomes contracts/mocks/MockFunctionsRouter.sol, and a relayer account is named so rows can be
 * settled. Plus a walker of the real proposal path through the deployed Governor and Timelock that mines blocks at
 * the network's `blockTime`.
 */
import { join } from "node:path";

import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { readDeploymentParameters } from "@nomicfoundation/hardhat-ignition/helpers";
import type { DeploymentParameters } from "@nomicfoundation/ignition-core";
import { AbiCoder, id, keccak256, type BaseContract } from "ethers";

import { agentGptModule, type SuiteOptions } from "../../deploy/modules/AgentGPT.js";
import { buildRowsTree, type Charge } from "../../relayer/batcher/rows-tree.js";
import {
  checkDeployerShare,
  checkParameters,
  toIgnition,
  type SuiteParameters,
} from "../../scripts/deploy/parameters.js";
import type { AGPTToken, AgentGovernor, AgentTimelock, AutoPayLLM, UsageOracle } from "../../typechain-types/index.js";
import { REPO } from "./local-node.js";

export type NetworkName = "arbitrumSepolia" | "polygonAmoy" | "localhost";
export const NETWORK_NAMES: readonly NetworkName[] = ["arbitrumSepolia", "polygonAmoy", "localhost"];

/** The parts of `network.create()` used here. */
export interface Connection {
  ethers: HardhatEthers;
  ignition: {
    deploy(
      module: ReturnType<typeof agentGptModule>,
      options: { parameters: DeploymentParameters; defaultSender?: string },
    ): Promise<unknown>;
  };
  networkHelpers: {
    mine(blocks?: number | bigint, options?: { interval?: number | bigint }): Promise<void>;
    time: {
      increaseTo(timestamp: number | bigint): Promise<void>;
      latest(): Promise<number>;
      setNextBlockTimestamp(timestamp: number | bigint): Promise<void>;
    };
  };
}

export interface NetworkSuite {
  network: NetworkName;
  params: SuiteParameters;
  options: SuiteOptions;
  agpt: AGPTToken;
  autoPayLLM: AutoPayLLM;
  timelock: AgentTimelock;
  governor: AgentGovernor;
  usageOracle?: UsageOracle;
  deployer: HardhatEthersSigner;
  relayer: HardhatEthersSigner;
  /** The accounts that received a placeholder's allocation, in file order. */
  holders: HardhatEthersSigner[];
  /** Holds enough delegated votes to propose and reach the quorum alone. */
  voter: HardhatEthersSigner;
  payer: HardhatEthersSigner;
  payee: HardhatEthersSigner;
}

export const PARAMETERS_DIR = join(REPO, "deploy", "parameters");

type Raw = Record<string, Record<string, unknown> | undefined>;

/** The raw parameters of `network`'s shipped file, as Ignition's reader returns them. */
export async function readNetworkParameters(network: NetworkName): Promise<Raw> {
  return (await readDeploymentParameters(join(PARAMETERS_DIR, `${network}.json5`))) as Raw;
}

/**
 * Deploys the suite from `network`'s shipped parameters (after `edit`, for tests of other values; `check: false`
 * deploys parameters the deploy would refuse, to show what they would do).
 */
export async function deployNetworkSuite(
  connection: Connection,
  network: NetworkName,
  { edit, check = true }: { edit?: (raw: Raw) => void; check?: boolean } = {},
): Promise<NetworkSuite> {
  const { ethers } = connection;
  const signers = await ethers.getSigners();
  const [deployer, relayer] = [signers[0]!, signers[1]!];
  const [payer, payee] = [signers[11]!, signers[12]!];
  const raw = await readNetworkParameters(network);
  edit?.(raw);

  const holders: HardhatEthersSigner[] = [];
  const allocations = (raw.AGPTToken?.allocations ?? []) as Array<{ to: string }>;
  for (const entry of allocations) {
    if (entry.to.startsWith("<")) {
      const holder = signers[13 + holders.length]!;
      entry.to = holder.address;
      holders.push(holder);
    }
  }
  raw.RelayerRole = { relayer: relayer.address };
  if (raw.UsageOracle !== undefined) {
    const router = await ethers.deployContract("MockFunctionsRouter");
    raw.UsageOracle.functionsRouter = await router.getAddress();
  }

  const source = `${network}.json5`;
  let params: SuiteParameters;
  if (check) {
    params = checkParameters(raw, source);
    checkDeployerShare(params, deployer.address, network === "localhost", source);
  } else {
    params = uncheckedParameters(raw, source);
  }
  const { options, parameters } = toIgnition(params, deployer.address);
  const deployed = (await connection.ignition.deploy(agentGptModule(options), {
    parameters,
    defaultSender: deployer.address,
  })) as Record<string, BaseContract>;
  const at = async <T>(name: string, key: string) =>
    (await ethers.getContractAt(name, await deployed[key]!.getAddress())) as unknown as T;
  const suite: NetworkSuite = {
    network,
    params,
    options,
    agpt: await at<AGPTToken>("AGPTToken", "agpt"),
    autoPayLLM: await at<AutoPayLLM>("AutoPayLLM", "autoPayLLM"),
    timelock: await at<AgentTimelock>("AgentTimelock", "timelock"),
    governor: await at<AgentGovernor>("AgentGovernor", "governor"),
    deployer,
    relayer,
    holders,
    voter: holders[0] ?? deployer,
    payer,
    payee,
  };
  if (deployed.usageOracle !== undefined) suite.usageOracle = await at<UsageOracle>("UsageOracle", "usageOracle");
  return suite;
}

/** checkParameters with the governance-timeout rule waived: for showing what refused parameters would do. */
function uncheckedParameters(raw: Raw, source: string): SuiteParameters {
  const timeouts = raw.AutoPayLLM?.disputeTimeouts as { arbiter: number; governance: number } | undefined;
  const lenient = structuredClone(raw);
  if (lenient.AutoPayLLM !== undefined) delete lenient.AutoPayLLM.disputeTimeouts;
  const params = checkParameters(lenient, source);
  if (timeouts !== undefined) {
    params.arbiterTimeout = timeouts.arbiter;
    params.governanceTimeout = timeouts.governance;
  }
  return params;
}

/** One governance proposal: the calls and their description. */
export interface Proposal {
  targets: string[];
  values: bigint[];
  calldatas: string[];
  description: string;
}

export function proposal(calls: Array<[BaseContract & { target: unknown }, string, unknown[]]>, description: string): Proposal {
  return {
    targets: calls.map(([contract]) => contract.target as string),
    values: calls.map(() => 0n),
    calldatas: calls.map(([contract, fn, args]) => contract.interface.encodeFunctionData(fn, args)),
    description,
  };
}

/**
 * Walks `p` through the real proposal path up to the timelock, with `voter`'s votes: propose, wait out the voting
 * delay, vote for, wait out the voting period, queue. Every block, mined or carrying a transaction, comes
 * `params.blockTime` seconds after the previous one, as the network would make them; nothing is skipped. Returns when it was proposed and queued (block timestamps).
 */
export async function proposeAndQueue(
  connection: Connection,
  s: NetworkSuite,
  p: Proposal,
): Promise<{ proposedAt: number; queuedAt: number }> {
  const { ethers, networkHelpers } = connection;
  const governor = s.governor.connect(s.voter);
  const interval = s.params.blockTime;
  const block = async () => (await ethers.provider.getBlock("latest"))!;
  // A transaction's block comes `blockTime` after the previous one, like every mined block.
  const paced = async () => networkHelpers.time.setNextBlockTimestamp((await block()).timestamp + interval);

  await paced();
  await (await governor.propose(p.targets, p.values, p.calldatas, p.description)).wait();
  const proposedAt = (await block()).timestamp;
  const descriptionHash = id(p.description);
  const proposalId = await governor.hashProposal(p.targets, p.values, p.calldatas, descriptionHash);
  // The vote's block must come after the snapshot, the queue's after the deadline: mine up to each.
  const toSnapshot = (await governor.proposalSnapshot(proposalId)) - BigInt((await block()).number);
  if (toSnapshot > 0n) await networkHelpers.mine(toSnapshot, { interval });
  await paced();
  await (await governor.castVote(proposalId, 1)).wait();
  const toDeadline = (await governor.proposalDeadline(proposalId)) - BigInt((await block()).number);
  if (toDeadline > 0n) await networkHelpers.mine(toDeadline, { interval });
  await paced();
  await (await governor["queue(address[],uint256[],bytes[],bytes32)"](p.targets, p.values, p.calldatas, descriptionHash)).wait();
  return { proposedAt, queuedAt: (await block()).timestamp };
}

/**
 * Waits out the timelock delay of a queued proposal (to the first second it may run) and sends `execute`, unwaited,
 * so a test can assert how it fails.
 */
export async function executeWhenReady(connection: Connection, s: NetworkSuite, p: Proposal) {
  const descriptionHash = id(p.description);
  const eta = await s.governor.proposalEta(await s.governor.hashProposal(p.targets, p.values, p.calldatas, descriptionHash));
  if (BigInt(await connection.networkHelpers.time.latest()) < eta - 1n) {
    await connection.networkHelpers.time.increaseTo(eta - 1n);
  }
  return s.governor.connect(s.voter)["execute(address[],uint256[],bytes[],bytes32)"](p.targets, p.values, p.calldatas, descriptionHash);
}

/** The whole path: {@link proposeAndQueue}, then {@link executeWhenReady}; returns when it was executed. */
export async function passProposal(connection: Connection, s: NetworkSuite, p: Proposal): Promise<number> {
  await proposeAndQueue(connection, s, p);
  const receipt = (await (await executeWhenReady(connection, s, p)).wait())!;
  return (await connection.ethers.provider.getBlock(receipt.blockNumber))!.timestamp;
}

export const GPT4 = "gpt-4-turbo";
export const GPT4_PRICE = (12n * 10n ** 18n) / 100n; // 0.12 AGPT per 1k tokens

/**
 * Governance's first act on a fresh suite, through the same real path: register openai (paid to `payee`) and price
 * gpt-4-turbo. The voter delegates to itself first and funds the payer, which deposits.
 */
export async function openForBusiness(connection: Connection, s: NetworkSuite): Promise<void> {
  await (await s.agpt.connect(s.voter).delegate(s.voter.address)).wait();
  await (await s.agpt.connect(s.voter).transfer(s.payer.address, 1_000n * 10n ** 18n)).wait();
  await (await s.agpt.connect(s.payer).approve(await s.autoPayLLM.getAddress(), 1_000n * 10n ** 18n)).wait();
  await (await s.autoPayLLM.connect(s.payer).deposit(100n * 10n ** 18n)).wait();
  // A network whose parameters register them (localhost) is open for business from the deploy on.
  const calls: Array<[BaseContract & { target: unknown }, string, unknown[]]> = [];
  if ((await s.autoPayLLM.providerId("openai")) === 0n) calls.push([s.autoPayLLM, "registerProvider", ["openai", s.payee.address]]);
  const model = await s.autoPayLLM.modelId(GPT4);
  if (model === 0n || (await s.autoPayLLM.modelInfo(model))[1] !== GPT4_PRICE) {
    calls.push([s.autoPayLLM, "setModelPrice", [GPT4, GPT4_PRICE]]);
  }
  if (calls.length === 0) return;
  await passProposal(connection, s, proposal(calls, `Register openai and price ${GPT4} (${s.network})`));
}

let batchCounter = 0;

/**
 * Settles one row of `tokens` for the payer in the current usage bucket, and has the payer dispute it; returns the
 * dispute id and the row's charge.
 */
export async function settleAndDispute(
  connection: Connection,
  s: NetworkSuite,
  tokens = 10_000n,
): Promise<{ disputeId: string; charge: Charge }> {
  const now = BigInt(await connection.networkHelpers.time.latest());
  const bucket = BigInt(s.params.usageBucket);
  const callsFrom = (now / bucket) * bucket;
  const charge: Charge = {
    user: s.payer.address,
    provider: 1,
    model: 1,
    tokens,
    amount: (tokens * GPT4_PRICE + 999n) / 1000n,
  };
  const batchId = keccak256(AbiCoder.defaultAbiCoder().encode(["string", "uint256"], ["batch", ++batchCounter]));
  const receiptsRoot = keccak256(AbiCoder.defaultAbiCoder().encode(["string", "bytes32"], ["receipts", batchId]));
  await (
    await s.autoPayLLM
      .connect(s.relayer)
      .settleBatchAt(batchId, [charge], receiptsRoot, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", callsFrom)
  ).wait();
  const tree = buildRowsTree([charge]);
  const receipt = (await (
    await s.autoPayLLM.connect(s.payer).dispute([{ batchId, index: 0, charge, proof: tree.proof(0) }])
  ).wait())!;
  const opened = receipt.logs
    .map((log) => s.autoPayLLM.interface.parseLog(log))
    .find((parsed) => parsed?.name === "DisputeOpened");
  return { disputeId: opened!.args.disputeId as string, charge };
}
