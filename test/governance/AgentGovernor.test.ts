import { expect } from "chai";
import { network } from "hardhat";

import {
  CANCELLER_ROLE,
  DEFAULT_ADMIN_ROLE,
  EXECUTOR_ROLE,
  PAUSER_ROLE,
  PROPOSER_ROLE,
  RELAYER_ROLE,
} from "../../relayer/chain/index.js";
import {
  GovernanceError,
  disputeWindowAction,
  modelBudgetAction,
  modelPriceAction,
  registerProviderAction,
  timelockDelayAction,
  type GovernanceAction,
  type GovernanceClient,
  type Support,
} from "../../relayer/governance/index.js";
import { AGPT, TIMELOCK_DELAY, THRESHOLD, VOTING_DELAY, VOTING_PERIOD, deployGovernedSuite, type GovernedSuite } from "./fixture.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture, mine, time } = networkHelpers;

const GPT4 = "gpt-4-turbo";
const GPT4_PRICE = (12n * AGPT) / 100n; // 0.12 AGPT per 1k tokens
const OVER_MODEL_BUDGET = 7; // IAutoPayLLM.RejectReason.OverModelBudget
const CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

async function fixture(): Promise<GovernedSuite> {
  return deployGovernedSuite(connection);
}

/** A suite where the deployer has delegated and governance already registered openai and priced gpt-4-turbo. */
async function billableFixture(): Promise<GovernedSuite> {
  const g = await deployGovernedSuite(connection);
  const client = await g.client(g.deployer);
  await client.delegate();
  await pass(client, [
    registerProviderAction(client.actionContext, "openai", g.stranger.address),
    modelPriceAction(client.actionContext, GPT4, GPT4_PRICE),
  ]);
  return g;
}

async function failure(promise: Promise<unknown>): Promise<GovernanceError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof GovernanceError) return error;
    throw error;
  }
  throw new Error("expected a GovernanceError");
}

/** Proposes, votes and waits until voting is over; returns the proposal id. */
async function decide(
  proposer: GovernanceClient,
  actions: GovernanceAction[],
  votes: Array<[GovernanceClient, Support]> = [[proposer, "for"]],
): Promise<bigint> {
  const { view } = await proposer.propose(actions);
  await mine(VOTING_DELAY);
  for (const [voter, support] of votes) await voter.vote(view.id, support);
  await mine(VOTING_PERIOD);
  return view.id;
}

/** Walks a proposal through every state to Executed with the proposer's votes. */
async function pass(client: GovernanceClient, actions: GovernanceAction[]): Promise<bigint> {
  const id = await decide(client, actions);
  await client.queue(id);
  await time.increase(TIMELOCK_DELAY);
  await client.execute(id);
  return id;
}

describe("AgentGovernor", function () {
  describe("deployment (deploy/modules/AgentGPT.ts)", function () {
    it("hands every admin power of AutoPayLLM and the timelock to the timelock: the deployer keeps none", async function () {
      const { suite, deployer } = await loadFixture(fixture);
      const timelock = await suite.timelock.getAddress();
      const governor = await suite.governor.getAddress();
      expect(await suite.autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, timelock)).to.equal(true);
      expect(await suite.timelock.hasRole(DEFAULT_ADMIN_ROLE, timelock)).to.equal(true);
      for (const account of [deployer.address, governor]) {
        expect(await suite.autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, account)).to.equal(false);
        expect(await suite.timelock.hasRole(DEFAULT_ADMIN_ROLE, account)).to.equal(false);
      }
    });

    it("makes the governor the timelock's only proposer, canceller and executor", async function () {
      const { suite, deployer } = await loadFixture(fixture);
      const governor = await suite.governor.getAddress();
      for (const role of [PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE]) {
        expect(await suite.timelock.hasRole(role, governor)).to.equal(true);
        expect(await suite.timelock.hasRole(role, deployer.address)).to.equal(false);
        expect(await suite.timelock.hasRole(role, ethers.ZeroAddress)).to.equal(false);
      }
      expect(await suite.governor.timelock()).to.equal(await suite.timelock.getAddress());
    });

    it("grants RELAYER_ROLE and PAUSER_ROLE to the named accounts only", async function () {
      const { suite, deployer, relayer, guardian } = await loadFixture(fixture);
      expect(await suite.autoPayLLM.hasRole(RELAYER_ROLE, relayer.address)).to.equal(true);
      expect(await suite.autoPayLLM.hasRole(PAUSER_ROLE, guardian.address)).to.equal(true);
      expect(await suite.autoPayLLM.hasRole(RELAYER_ROLE, deployer.address)).to.equal(false);
      expect(await suite.autoPayLLM.hasRole(PAUSER_ROLE, deployer.address)).to.equal(false);
    });

    it("counts votes in AGPT block numbers with the deployment's settings", async function () {
      const { suite } = await loadFixture(fixture);
      expect(await suite.governor.CLOCK_MODE()).to.equal("mode=blocknumber&from=default");
      expect(await suite.governor.clock()).to.equal(BigInt(await ethers.provider.getBlockNumber()));
      expect(await suite.governor.votingDelay()).to.equal(BigInt(VOTING_DELAY));
      expect(await suite.governor.votingPeriod()).to.equal(BigInt(VOTING_PERIOD));
      expect(await suite.governor.proposalThreshold()).to.equal(THRESHOLD);
      expect(await suite.governor["quorumNumerator()"]()).to.equal(4n);
      expect(await suite.timelock.getMinDelay()).to.equal(BigInt(TIMELOCK_DELAY));
      expect(await suite.governor.token()).to.equal(await suite.agpt.getAddress());
      expect(await suite.governor.settlement()).to.equal(await suite.autoPayLLM.getAddress());
      const [covered, delay, window] = await suite.governor.disputeWindowCovered();
      expect([covered, delay, window]).to.deep.equal([true, BigInt(TIMELOCK_DELAY), 3600n]);
    });

    it("refuses a timelock delay that does not exceed the dispute window", async function () {
      const { suite, deployer } = await loadFixture(fixture);
      const timelock = await ethers.deployContract("AgentTimelock", [3600, [], [], deployer.address]);
      const factory = await ethers.getContractFactory("AgentGovernor");
      const [agpt, settlement] = [await suite.agpt.getAddress(), await suite.autoPayLLM.getAddress()];
      await expect(factory.deploy(agpt, await timelock.getAddress(), settlement, 1, 5, 0, 4))
        .to.be.revertedWithCustomError(factory, "AgentGovernorDelayNotAboveDisputeWindow")
        .withArgs(3600n, 3600n);
      await expect(factory.deploy(agpt, await timelock.getAddress(), ethers.ZeroAddress, 1, 5, 0, 4)).to.be.revertedWithCustomError(
        factory,
        "AgentGovernorZeroAddress",
      );
    });
  });

  describe("a budget vote, end to end", function () {
    it("delegate, propose setModelBudget, vote, queue, wait out the timelock, execute: the budget limits a batch", async function () {
      const g = await loadFixture(billableFixture);
      const { suite } = g;
      const client = await g.client(g.deployer);
      const action = modelBudgetAction(client.actionContext, GPT4, 5n * AGPT);

      const { view: proposed } = await client.propose([action]);
      expect(proposed.state).to.equal("Pending");
      expect(proposed.actions).to.deep.equal([`AutoPayLLM.setModelBudget("${GPT4}", 5 AGPT)`]);
      await mine(VOTING_DELAY);
      const { view: voted } = await client.vote(proposed.id, "for");
      expect(voted.state).to.equal("Active");
      expect(voted.votes.for).to.equal(await suite.agpt.getVotes(g.deployer.address));

      expect((await failure(client.queue(proposed.id))).code).to.equal("NOT_SUCCEEDED");
      await mine(VOTING_PERIOD);
      const { view: queued } = await client.queue(proposed.id);
      expect(queued.state).to.equal("Queued");
      expect(queued.eta).to.equal(BigInt(await time.latest()) + BigInt(TIMELOCK_DELAY));

      // Still in the timelock: the client explains, the contracts refuse.
      const early = await failure(client.execute(proposed.id));
      expect(early.code).to.equal("IN_TIMELOCK");
      expect(early.message).to.match(/still in the timelock until \d{4}-\d\d-\d\dT/);
      await expect(suite.governor["execute(uint256)"](proposed.id)).to.be.revertedWithCustomError(
        suite.timelock,
        "TimelockUnexpectedOperationState",
      );
      expect((await suite.autoPayLLM.modelInfo(1)).dailyLimit).to.equal(0n);

      await time.increaseTo(queued.eta);
      const { view: executed } = await client.execute(proposed.id);
      expect(executed.state).to.equal("Executed");
      const model = await suite.autoPayLLM.modelId(GPT4);
      expect((await suite.autoPayLLM.modelInfo(model)).dailyLimit).to.equal(5n * AGPT);

      // The new budget limits a settled batch: 4 AGPT fits, 2 AGPT more would make 6 > 5.
      await suite.agpt.connect(g.holder).approve(await suite.autoPayLLM.getAddress(), 100n * AGPT);
      await suite.autoPayLLM.connect(g.holder).deposit(100n * AGPT);
      const provider = await suite.autoPayLLM.providerId("openai");
      const rows = [
        { user: g.holder.address, provider, model, tokens: 40_000n, amount: 4n * AGPT },
        { user: g.holder.address, provider, model, tokens: 20_000n, amount: 2n * AGPT },
      ];
      const batchId = ethers.id("governed-batch");
      await expect(suite.autoPayLLM.connect(g.relayer).settleBatch(batchId, rows, ethers.id("receipts"), CID))
        .to.emit(suite.autoPayLLM, "RowRejected")
        .withArgs(batchId, 1n, g.holder.address, OVER_MODEL_BUDGET);
      expect((await suite.autoPayLLM.batchInfo(batchId)).acceptedCount).to.equal(1n);
      expect(await suite.autoPayLLM.totalEscrow()).to.equal(4n * AGPT);
      expect((await suite.autoPayLLM.modelInfo(model)).spentToday).to.equal(4n * AGPT);
    });
  });

  describe("a defeated proposal", function () {
    it("changes nothing when more votes are against", async function () {
      const g = await loadFixture(billableFixture);
      const [owner, holder] = [await g.client(g.deployer), await g.client(g.holder)];
      await holder.delegate();
      const id = await decide(holder, [modelBudgetAction(holder.actionContext, GPT4, 1n * AGPT)], [
        [holder, "for"],
        [owner, "against"],
      ]);
      expect((await holder.status(id)).view.state).to.equal("Defeated");
      expect((await holder.status(id)).lines.join("\n")).to.contain("not more votes for than against");
      expect((await failure(holder.queue(id))).code).to.equal("NOT_SUCCEEDED");
      await expect(g.suite.governor["queue(uint256)"](id)).to.be.revertedWithCustomError(
        g.suite.governor,
        "GovernorUnexpectedProposalState",
      );
      expect((await g.suite.autoPayLLM.modelInfo(await g.suite.autoPayLLM.modelId(GPT4))).dailyLimit).to.equal(0n);
    });

    it("changes nothing without quorum", async function () {
      const g = await loadFixture(fixture);
      const [holder, minnow] = [await g.client(g.holder), await g.client(g.minnow)];
      await holder.delegate();
      await minnow.delegate();
      // The holder votes nothing; the minnow's 500 AGPT are far from 4% of the supply.
      const id = await decide(holder, [modelBudgetAction(holder.actionContext, GPT4, 1n * AGPT)], [[minnow, "for"]]);
      const { view, lines } = await holder.status(id);
      expect(view.state).to.equal("Defeated");
      expect(view.quorum).to.equal(4_000_000n * AGPT);
      expect(lines.join("\n")).to.contain("quorum was not reached");
      expect(await g.suite.autoPayLLM.modelId(GPT4)).to.equal(0n);
    });
  });

  describe("a cancelled proposal", function () {
    it("its proposer cancels it while pending: it can be neither voted nor queued, and changes nothing", async function () {
      const g = await loadFixture(billableFixture);
      const governor = g.suite.governor.connect(g.deployer);
      const target = await g.suite.autoPayLLM.getAddress();
      const data = g.suite.autoPayLLM.interface.encodeFunctionData("setModelBudget", [GPT4, 1n * AGPT]);
      const description = "cancel me";
      await (await governor.propose([target], [0n], [data], description)).wait();
      const id = await governor.getProposalId([target], [0n], [data], ethers.id(description));
      const cancel = "cancel(address[],uint256[],bytes[],bytes32)" as const;
      await expect(governor.connect(g.stranger)[cancel]([target], [0n], [data], ethers.id(description)))
        .to.be.revertedWithCustomError(governor, "GovernorUnableToCancel");
      await expect(governor[cancel]([target], [0n], [data], ethers.id(description))).to.emit(governor, "ProposalCanceled").withArgs(id);
      expect(await governor.state(id)).to.equal(2n); // Canceled
      await mine(VOTING_DELAY + 1);
      await expect(governor.castVote(id, 1)).to.be.revertedWithCustomError(governor, "GovernorUnexpectedProposalState");
      expect((await g.suite.autoPayLLM.modelInfo(await g.suite.autoPayLLM.modelId(GPT4))).dailyLimit).to.equal(0n);
    });
  });

  describe("who can change a budget", function () {
    it("only the timelock: the deployer, governor, relayer, guardian and strangers are refused", async function () {
      const { suite, deployer, relayer, guardian, stranger } = await loadFixture(fixture);
      const governorAddress = await suite.governor.getAddress();
      await networkHelpers.impersonateAccount(governorAddress);
      await networkHelpers.setBalance(governorAddress, 10n ** 18n);
      const governorSigner = await ethers.getSigner(governorAddress);
      for (const account of [deployer, relayer, guardian, stranger, governorSigner]) {
        await expect(suite.autoPayLLM.connect(account).setModelBudget(GPT4, 1n))
          .to.be.revertedWithCustomError(suite.autoPayLLM, "AccessControlUnauthorizedAccount")
          .withArgs(account.address, DEFAULT_ADMIN_ROLE);
      }
      // Nor can anyone but the governor put an operation in the timelock or run one.
      const call = suite.autoPayLLM.interface.encodeFunctionData("setModelBudget", [GPT4, 1n]);
      const target = await suite.autoPayLLM.getAddress();
      await expect(suite.timelock.connect(deployer).schedule(target, 0, call, ethers.ZeroHash, ethers.ZeroHash, TIMELOCK_DELAY))
        .to.be.revertedWithCustomError(suite.timelock, "AccessControlUnauthorizedAccount")
        .withArgs(deployer.address, PROPOSER_ROLE);
      await expect(suite.timelock.connect(stranger).execute(target, 0, call, ethers.ZeroHash, ethers.ZeroHash))
        .to.be.revertedWithCustomError(suite.timelock, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, EXECUTOR_ROLE);
    });
  });

  describe("proposal threshold", function () {
    it("refuses a proposal from an account whose votes are below the threshold", async function () {
      const g = await loadFixture(fixture);
      const minnow = await g.client(g.minnow);
      await minnow.delegate();
      const action = modelBudgetAction(minnow.actionContext, GPT4, 1n * AGPT);
      const refused = await failure(minnow.propose([action]));
      expect(refused.code).to.equal("BELOW_THRESHOLD");
      expect(refused.message).to.contain("needs 1000 AGPT in votes to propose and has 500 AGPT");
      const draft = await minnow.draft([action]);
      await expect(g.suite.governor.connect(g.minnow).propose(draft.targets, draft.values, draft.calldatas, draft.description))
        .to.be.revertedWithCustomError(g.suite.governor, "GovernorInsufficientProposerVotes")
        .withArgs(g.minnow.address, 500n * AGPT, THRESHOLD);
    });

    it("explains that a balance which was never delegated carries no votes", async function () {
      const g = await loadFixture(fixture);
      const holder = await g.client(g.holder);
      const refused = await failure(holder.propose([modelBudgetAction(holder.actionContext, GPT4, 1n * AGPT)]));
      expect(refused.code).to.equal("BELOW_THRESHOLD");
      expect(refused.message).to.contain("holds 10000000 AGPT but has not delegated");
    });
  });

  describe("the dispute window stays below the timelock delay", function () {
    it("refuses to execute a proposal that makes the window as long as the delay", async function () {
      const g = await loadFixture(fixture);
      const client = await g.client(g.deployer);
      await client.delegate();
      const action = disputeWindowAction(client.actionContext, BigInt(TIMELOCK_DELAY));
      expect((await failure(client.draft([action]))).code).to.equal("WINDOW_NOT_COVERED");

      // Past the client's check (a hand-made proposal), the governor still refuses at execution.
      const { governor } = g.suite;
      const description = "window as long as the delay";
      await governor.propose([action.target], [0n], [action.calldata], description);
      const id = await governor.getProposalId([action.target], [0n], [action.calldata], ethers.id(description));
      await mine(VOTING_DELAY);
      await client.vote(id, "for");
      await mine(VOTING_PERIOD);
      await client.queue(id);
      await time.increase(TIMELOCK_DELAY);
      await expect(governor["execute(uint256)"](id))
        .to.be.revertedWithCustomError(governor, "AgentGovernorDelayNotAboveDisputeWindow")
        .withArgs(BigInt(TIMELOCK_DELAY), BigInt(TIMELOCK_DELAY));
      expect(await g.suite.autoPayLLM.disputeWindow()).to.equal(3600n);
    });

    // P6 (issue #12): the check counts the window a sequencer outage makes (window + grace period). Fails on the
    // previous code, whose governor compared the delay with the window alone and executed this proposal.
    it("refuses to execute a sequencer grace period that makes window + grace as long as the delay", async function () {
      const g = await loadFixture(fixture);
      const client = await g.client(g.deployer);
      await client.delegate();
      const { governor, autoPayLLM } = g.suite;
      const feed = await ethers.deployContract("MockAggregator", [0]);
      const now = BigInt(await time.latest());
      await feed.setRound(1, 0, now - 86_400n, now - 86_400n, 1); // the sequencer up for a day
      const window = await autoPayLLM.disputeWindow();

      const propose = async (grace: bigint) => {
        const calldata = autoPayLLM.interface.encodeFunctionData("setSequencerUptimeFeed", [await feed.getAddress(), grace]);
        const target = await autoPayLLM.getAddress();
        const description = `sequencer feed, grace ${grace} s`;
        await governor.propose([target], [0n], [calldata], description);
        const id = await governor.getProposalId([target], [0n], [calldata], ethers.id(description));
        await mine(VOTING_DELAY);
        await client.vote(id, "for");
        await mine(VOTING_PERIOD);
        await client.queue(id);
        await time.increase(TIMELOCK_DELAY);
        return id;
      };
      const tooLong = await propose(BigInt(TIMELOCK_DELAY) - window); // window + grace == delay
      await expect(governor["execute(uint256)"](tooLong))
        .to.be.revertedWithCustomError(governor, "AgentGovernorDelayNotAboveDisputeWindow")
        .withArgs(BigInt(TIMELOCK_DELAY), BigInt(TIMELOCK_DELAY));
      expect(await autoPayLLM.sequencerGracePeriod()).to.equal(0n);

      const justShorter = await propose(BigInt(TIMELOCK_DELAY) - window - 1n);
      await governor["execute(uint256)"](justShorter);
      expect(await autoPayLLM.sequencerGracePeriod()).to.equal(BigInt(TIMELOCK_DELAY) - window - 1n);
      expect((await governor.disputeWindowCovered()).covered).to.equal(true);
    });

    it("executes a longer window together with a longer delay", async function () {
      const g = await loadFixture(fixture);
      const client = await g.client(g.deployer);
      await client.delegate();
      const ctx = client.actionContext;
      await pass(client, [timelockDelayAction(ctx, 3n * 86_400n), disputeWindowAction(ctx, 2n * 86_400n)]);
      expect(await g.suite.timelock.getMinDelay()).to.equal(3n * 86_400n);
      expect(await g.suite.autoPayLLM.disputeWindow()).to.equal(2n * 86_400n);
    });
  });
});
