/**
 * The governed suite on the in-process Hardhat network, deployed by the same Ignition modules as production
 * (deploy/modules/AgentGPT.ts), with short timings: voting delay 1 block, period 5 blocks, quorum 4%, threshold
 * 1,000 AGPT, timelock 2 h over the default 1 h dispute window. Account #0 deploys and holds the supply.
 */
import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type { DeploymentParameters } from "@nomicfoundation/ignition-core";

import { agentGptModule, type SuiteOptions } from "../../deploy/modules/AgentGPT.js";
import { connectSuite, networkByName, type Suite } from "../../relayer/chain/index.js";
import { GovernanceClient } from "../../relayer/governance/index.js";

export const AGPT = 10n ** 18n;
export const VOTING_DELAY = 1;
export const VOTING_PERIOD = 5;
export const TIMELOCK_DELAY = 7200;
export const THRESHOLD = 1_000n * AGPT;

export const PARAMETERS: DeploymentParameters = {
  AGPTToken: { initialSupply: 100_000_000n * AGPT },
  AutoPayLLM: { disputeWindow: 3600 },
  Governance: {
    votingDelay: VOTING_DELAY,
    votingPeriod: VOTING_PERIOD,
    proposalThreshold: THRESHOLD,
    quorumPercent: 4,
    timelockDelay: TIMELOCK_DELAY,
  },
};

/** The part of `network.create()` a fixture needs. */
export interface Connection {
  ethers: HardhatEthers;
  ignition: {
    deploy(module: ReturnType<typeof agentGptModule>, options: { parameters: DeploymentParameters }): Promise<unknown>;
  };
}

export interface GovernedSuite {
  suite: Suite;
  deployer: HardhatEthersSigner;
  relayer: HardhatEthersSigner;
  guardian: HardhatEthersSigner;
  /** Holds 10,000,000 AGPT (10% of the supply), not delegated. */
  holder: HardhatEthersSigner;
  /** Holds 500 AGPT (below the threshold), not delegated. */
  minnow: HardhatEthersSigner;
  stranger: HardhatEthersSigner;
  /** A governance client signing as `signer`. */
  client(signer: HardhatEthersSigner): Promise<GovernanceClient>;
}

export async function deployGovernedSuite(
  connection: Connection,
  options: Partial<SuiteOptions> = {},
  parameters: DeploymentParameters = PARAMETERS,
  // UsageOracle parameters (functionsRouter) go in `parameters` when `options.oracle`.
): Promise<GovernedSuite> {
  const { ethers, ignition } = connection;
  const [deployer, relayer, guardian, holder, minnow, stranger] = await ethers.getSigners();
  const full: SuiteOptions = { paymentToken: "fresh", relayer: true, guardian: true, oracle: false, ...options };
  const deployed = (await ignition.deploy(agentGptModule(full), {
    parameters: {
      ...parameters,
      ...(full.relayer ? { RelayerRole: { relayer: relayer!.address } } : {}),
      ...(full.guardian ? { GuardianRole: { guardian: guardian!.address } } : {}),
    },
  })) as Record<"agpt" | "autoPayLLM" | "timelock" | "governor", { getAddress(): Promise<string> }> & {
    usageOracle?: { getAddress(): Promise<string> };
  };
  const deployment = {
    chainId: Number((await ethers.provider.getNetwork()).chainId),
    dir: "(in-memory)",
    addresses: {
      agpt: await deployed.agpt.getAddress(),
      autoPayLLM: await deployed.autoPayLLM.getAddress(),
      timelock: await deployed.timelock.getAddress(),
      governor: await deployed.governor.getAddress(),
      ...(deployed.usageOracle === undefined ? {} : { usageOracle: await deployed.usageOracle.getAddress() }),
    },
  };
  const suite = await connectSuite(deployment, deployer!);
  await suite.agpt.transfer(holder!.address, 10_000_000n * AGPT);
  await suite.agpt.transfer(minnow!.address, 500n * AGPT);
  const local = { ...networkByName("localhost"), name: "hardhat" };
  return {
    suite,
    deployer: deployer!,
    relayer: relayer!,
    guardian: guardian!,
    holder: holder!,
    minnow: minnow!,
    stranger: stranger!,
    client: async (signer) => new GovernanceClient(await connectSuite(deployment, signer), signer.address, local),
  };
}
