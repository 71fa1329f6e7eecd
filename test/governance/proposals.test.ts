/**
 * relayer/governance: actions, drafts and ids, and the client's explanations of what a step is missing.
 */
import { expect } from "chai";
import { network } from "hardhat";

import {
  GovernanceError,
  describeCall,
  disputeWindowAction,
  draftProposal,
  formatDuration,
  modelBudgetAction,
  modelPriceAction,
  parseProposalId,
  registerProviderAction,
  settlementRoleAction,
  type ActionContext,
} from "../../relayer/governance/index.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AGPT, TIMELOCK_DELAY, VOTING_DELAY, VOTING_PERIOD, deployGovernedSuite, type GovernedSuite } from "./fixture.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture, mine } = networkHelpers;

const CTX: ActionContext = {
  addresses: {
    agpt: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    autoPayLLM: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    timelock: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    governor: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
  },
  paymentUnit: { symbol: "AGPT", decimals: 18 },
};
const PROPOSER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

function thrown(run: () => unknown): GovernanceError {
  try {
    run();
  } catch (error) {
    if (error instanceof GovernanceError) return error;
    throw error;
  }
  throw new Error("expected a GovernanceError");
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

async function fixture(): Promise<GovernedSuite> {
  return deployGovernedSuite(connection);
}

describe("relayer/governance", function () {
  describe("actions", function () {
    it("encode AutoPayLLM calls with a summary, so nobody hand-encodes calldata", function () {
      const action = modelBudgetAction(CTX, "gpt-4-turbo", 500n * AGPT);
      expect(action.target).to.equal(CTX.addresses.autoPayLLM);
      expect(action.value).to.equal(0n);
      const call = AutoPayLLM__factory.createInterface().parseTransaction({ data: action.calldata });
      expect(call?.name).to.equal("setModelBudget");
      expect([...call!.args]).to.deep.equal(["gpt-4-turbo", 500n * AGPT]);
      expect(action.summary).to.equal('Set the daily budget of model "gpt-4-turbo" to 500 AGPT per UTC day');
      expect(modelBudgetAction(CTX, "gpt-4-turbo", 0n).summary).to.equal('Remove the daily budget of model "gpt-4-turbo"');
      expect(modelPriceAction(CTX, "gpt-4-turbo", 12n * 10n ** 16n).summary).to.equal(
        'Set the price cap of model "gpt-4-turbo" to 0.12 AGPT/1k tokens',
      );
    });

    it("refuse values the contract would refuse at execution", function () {
      expect(thrown(() => modelBudgetAction(CTX, "m".repeat(65), 1n)).message).to.contain("1 to 64 bytes");
      expect(thrown(() => modelBudgetAction(CTX, "gpt-4-turbo", 1n << 128n)).code).to.equal("INVALID_ACTION");
      expect(thrown(() => disputeWindowAction(CTX, 59n)).message).to.contain("60 to 2592000 seconds");
      expect(thrown(() => registerProviderAction(CTX, "openai", ethers.ZeroAddress)).message).to.contain("non-zero");
      expect(thrown(() => settlementRoleAction(CTX, "grant", "ADMIN", PROPOSER)).message).to.contain(
        "RELAYER, ARBITER, PAUSER",
      );
    });

    it("read back as calls people can check", function () {
      const role = settlementRoleAction(CTX, "grant", "relayer_role", PROPOSER);
      expect(describeCall(CTX, role.target, role.calldata)).to.equal(`AutoPayLLM.grantRole(RELAYER_ROLE, ${PROPOSER})`);
      const budget = modelBudgetAction(CTX, "gpt-4-turbo", 500n * AGPT);
      expect(describeCall(CTX, budget.target, budget.calldata)).to.equal('AutoPayLLM.setModelBudget("gpt-4-turbo", 500 AGPT)');
      expect(formatDuration(172_800)).to.equal("2d");
      expect(formatDuration(3_660)).to.equal("1h 1m");
    });
  });

  describe("draftProposal", function () {
    it("derives a reproducible description that binds the proposer, and the governor's id", async function () {
      const { suite } = await loadFixture(fixture);
      const actions = [modelBudgetAction(CTX, "gpt-4-turbo", 500n * AGPT)];
      const draft = draftProposal(actions, { proposer: PROPOSER.toLowerCase(), note: "Q3 budget" });
      expect(draftProposal(actions, { proposer: PROPOSER, note: "Q3 budget" })).to.deep.equal(draft);
      expect(draft.description).to.equal(
        [
          '# Set the daily budget of model "gpt-4-turbo" to 500 AGPT per UTC day',
          "",
          '1. Set the daily budget of model "gpt-4-turbo" to 500 AGPT per UTC day',
          "",
          "Q3 budget",
          "",
          `#proposer=${PROPOSER}`,
        ].join("\n"),
      );
      expect(draft.id).to.equal(
        await suite.governor.hashProposal(draft.targets, draft.values, draft.calldatas, draft.descriptionHash),
      );
      const revised = draftProposal(actions, { proposer: PROPOSER, note: "Q3 budget", revision: 2 });
      expect(revised.description).to.contain("Revision 2");
      expect(revised.id).to.not.equal(draft.id);
    });

    it("reads ids as printed (decimal) or hex, and refuses anything else", function () {
      expect(parseProposalId("1234")).to.equal(1234n);
      expect(parseProposalId("0x4d2")).to.equal(1234n);
      expect(thrown(() => parseProposalId("latest")).code).to.equal("UNKNOWN_PROPOSAL");
    });
  });

  describe("GovernanceClient", function () {
    it("explains a vote before voting opens, without votes, twice, and after it closed", async function () {
      const g = await loadFixture(fixture);
      const [owner, holder] = [await g.client(g.deployer), await g.client(g.holder)];
      await owner.delegate();
      const { view } = await owner.propose([modelBudgetAction(owner.actionContext, "gpt-4-turbo", AGPT)]);

      const early = await failure(owner.vote(view.id, "for"));
      expect(early.code).to.equal("VOTING_NOT_STARTED");
      expect(early.message).to.contain(`opens after block ${view.snapshot}`);
      await mine(VOTING_DELAY);

      const undelegated = await failure(holder.vote(view.id, "for"));
      expect(undelegated.code).to.equal("NO_VOTING_POWER");
      expect(undelegated.message).to.contain("holds 10000000 AGPT but has not delegated");

      await owner.vote(view.id, "for");
      expect((await failure(owner.vote(view.id, "against"))).code).to.equal("ALREADY_VOTED");
      const { lines } = await owner.status(view.id, g.deployer.address);
      expect(lines.join("\n")).to.contain("has voted on this proposal");

      await mine(VOTING_PERIOD);
      expect((await failure(owner.vote(view.id, "for"))).code).to.equal("VOTING_CLOSED");
    });

    it("refuses a duplicate of an open proposal, and numbers a new vote after a defeat", async function () {
      const g = await loadFixture(fixture);
      const owner = await g.client(g.deployer);
      await owner.delegate();
      const actions = [modelBudgetAction(owner.actionContext, "gpt-4-turbo", AGPT)];
      const { view } = await owner.propose(actions);
      const duplicate = await failure(owner.propose(actions));
      expect(duplicate.code).to.equal("DUPLICATE_PROPOSAL");
      expect(duplicate.message).to.contain(`id ${view.id}`);

      await mine(VOTING_DELAY);
      await owner.vote(view.id, "against");
      await mine(VOTING_PERIOD);
      const again = await owner.propose(actions);
      expect(again.view.id).to.not.equal(view.id);
      expect(again.draft.description).to.contain("Revision 2");
    });

    it("refuses an action that would fail if executed now, with the contract's reason", async function () {
      const g = await loadFixture(fixture);
      const owner = await g.client(g.deployer);
      await owner.delegate();
      const register = registerProviderAction(owner.actionContext, "openai", g.stranger.address);
      const { view } = await owner.propose([register]);
      await mine(VOTING_DELAY);
      await owner.vote(view.id, "for");
      await mine(VOTING_PERIOD);
      await owner.queue(view.id);
      await networkHelpers.time.increase(TIMELOCK_DELAY);
      await owner.execute(view.id);

      const refused = await failure(owner.draft([registerProviderAction(owner.actionContext, "openai", g.holder.address)]));
      expect(refused.code).to.equal("INVALID_ACTION");
      expect(refused.message).to.contain('would fail if executed now (AutoPayLLMProviderExists("openai", 1))');
    });

    it("lists recent proposals newest first, from the governor's storage", async function () {
      const g = await loadFixture(fixture);
      const owner = await g.client(g.deployer);
      await owner.delegate();
      const first = await owner.propose([modelBudgetAction(owner.actionContext, "a", AGPT)]);
      const second = await owner.propose([modelBudgetAction(owner.actionContext, "b", AGPT)]);
      expect((await owner.recent()).map((view) => view.id)).to.deep.equal([second.view.id, first.view.id]);
    });
  });
});
