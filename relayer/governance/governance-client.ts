/**
 * Walks governance proposals through their states for one account: delegate, propose, vote, queue, execute,
 * status. Before each transaction it checks what the contracts would refuse and explains what is missing (not
 * enough votes, not delegated, voting not open, still in the timelock); a revert that slips through anyway is
 * decoded into the same explanations. The CLI, scripts and tests share it.
 */
import { isError, type ContractTransactionReceipt, type ContractTransactionResponse, type Interface } from "ethers";

import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { type NetworkInfo, type Suite } from "../chain/index.js";
import { formatTokenAmount } from "../config/amount.js";
import { formatDuration, type ActionContext, type GovernanceAction } from "./actions.js";
import { GovernanceError } from "./errors.js";
import { draftProposal, type ProposalDraft } from "./proposal.js";
import {
  blocksAndTime,
  explainProposal,
  formatTimestamp,
  noVotesReason,
  readProposal,
  readVoter,
  type ExplainContext,
  type ProposalView,
  type VoterView,
} from "./proposal-status.js";

/** `GovernorCountingSimple` support values. */
export const SUPPORT = { against: 0, for: 1, abstain: 2 } as const;
export type Support = keyof typeof SUPPORT;

/** States in which an identical proposal is still live (proposing it again would clash with it). */
const OPEN_STATES = new Set(["Pending", "Active", "Succeeded", "Queued"]);

const INTERFACES: Interface[] = [
  AgentGovernor__factory.createInterface(),
  AgentTimelock__factory.createInterface(),
  AutoPayLLM__factory.createInterface(),
];

export interface SentStep {
  txHash: string;
  view: ProposalView;
}

export class GovernanceClient {
  readonly explain: ExplainContext;

  /**
   * @param suite contracts connected through the signer of `account` (reads work with a provider too)
   * @param account the address that signs (and whose votes count)
   */
  constructor(
    readonly suite: Suite,
    readonly account: string,
    readonly network: NetworkInfo,
  ) {
    this.explain = { votesUnit: suite.votesUnit, network };
  }

  get actionContext(): ActionContext {
    return { addresses: this.suite.deployment.addresses, paymentUnit: this.suite.paymentUnit };
  }

  // ------------------------------------------------------------------ votes

  /** Delegates the account's votes (to itself by default). Votes count for proposals whose snapshot is later. */
  async delegate(to: string = this.account): Promise<{ txHash: string; votes: bigint; block: number }> {
    const receipt = await this.#send(() => this.suite.agpt.delegate(to));
    return { txHash: receipt.hash, votes: await this.suite.agpt.getVotes(to), block: receipt.blockNumber };
  }

  // -------------------------------------------------------------- proposals

  /**
   * Drafts the proposal and checks it: the actions would not revert if executed now, the dispute window stays
   * below the timelock delay, and no identical proposal is open (an identical closed one gets a revision number).
   */
  async draft(actions: readonly GovernanceAction[], note?: string): Promise<ProposalDraft> {
    await this.#checkActions(actions);
    for (let revision = 1; revision <= 100; revision += 1) {
      const draft = draftProposal(actions, { proposer: this.account, note, revision });
      if ((await this.suite.governor.proposalSnapshot(draft.id)) === 0n) return draft;
      const existing = await readProposal(this.suite, draft.id);
      if (OPEN_STATES.has(existing.state)) {
        throw new GovernanceError(
          "DUPLICATE_PROPOSAL",
          `the same proposal is already ${existing.state.toLowerCase()}: id ${draft.id}. ` +
            `Follow it with \`agentgpt governance status ${draft.id}\``,
        );
      }
    }
    throw new GovernanceError("DUPLICATE_PROPOSAL", "this proposal was made 100 times already: add a --note");
  }

  /** Submits `actions` as one proposal. */
  async propose(actions: readonly GovernanceAction[], note?: string): Promise<SentStep & { draft: ProposalDraft }> {
    const draft = await this.draft(actions, note);
    await this.#checkThreshold();
    const receipt = await this.#send(() =>
      this.suite.governor.propose(draft.targets, draft.values, draft.calldatas, draft.description),
    );
    const created = receipt.logs
      .map((log) => {
        try {
          return this.suite.governor.interface.parseLog(log);
        } catch {
          return null;
        }
      })
      .find((event) => event?.name === "ProposalCreated");
    const id = created?.args[0] as bigint | undefined;
    if (id !== draft.id) {
      throw new GovernanceError("REVERTED", `the governor created proposal ${id}, expected ${draft.id}`);
    }
    return { txHash: receipt.hash, draft, view: await readProposal(this.suite, id) };
  }

  async vote(id: bigint, support: Support, reason?: string): Promise<SentStep> {
    const view = await readProposal(this.suite, id);
    const voter = await readVoter(this.suite, view, this.account);
    // The vote lands in a later block than the one just read: Pending with the snapshot reached is fine.
    if (view.state === "Pending" && view.snapshot > view.clock) {
      throw new GovernanceError(
        "VOTING_NOT_STARTED",
        `voting on proposal ${id} has not started: it opens after block ${view.snapshot} (now ${view.clock}), ` +
          `${blocksAndTime(view.snapshot + 1n - view.clock, this.network)} from now${this.#advanceHint(view.snapshot - view.clock)}`,
      );
    }
    if (view.state !== "Active" && view.state !== "Pending") {
      throw new GovernanceError("VOTING_CLOSED", `voting on proposal ${id} is closed: it is ${view.state}`);
    }
    if (voter.hasVoted) throw new GovernanceError("ALREADY_VOTED", `${this.account} has already voted on proposal ${id}`);
    if (voter.weight === 0n) {
      throw new GovernanceError(
        "NO_VOTING_POWER",
        `${this.account} cannot vote on proposal ${id}: it ${noVotesReason(voter, this.suite.votesUnit, view.snapshot)}`,
      );
    }
    const receipt = await this.#send(() =>
      reason === undefined || reason === ""
        ? this.suite.governor.castVote(id, SUPPORT[support])
        : this.suite.governor.castVoteWithReason(id, SUPPORT[support], reason),
    );
    return { txHash: receipt.hash, view: await readProposal(this.suite, id) };
  }

  /** Puts a passed proposal in the timelock (anyone may). */
  async queue(id: bigint): Promise<SentStep> {
    const view = await readProposal(this.suite, id);
    // Voting that ends with the block just read is over for a transaction in the next one.
    const closing = view.state === "Active" && view.deadline <= view.clock;
    if (view.state !== "Succeeded" && !closing) {
      throw new GovernanceError("NOT_SUCCEEDED", this.#whyNot("queued", view));
    }
    const receipt = await this.#send(() => this.suite.governor["queue(uint256)"](id)).catch(async (error: unknown) => {
      const now = await readProposal(this.suite, id);
      throw now.state === "Succeeded" ? error : new GovernanceError("NOT_SUCCEEDED", this.#whyNot("queued", now));
    });
    return { txHash: receipt.hash, view: await readProposal(this.suite, id) };
  }

  /** Executes a queued proposal once its timelock delay is over (anyone may). */
  async execute(id: bigint): Promise<SentStep> {
    const view = await readProposal(this.suite, id);
    if (view.state !== "Queued") {
      throw new GovernanceError("NOT_QUEUED", this.#whyNot("executed", view));
    }
    if (view.eta > view.now) {
      const wait = Number(view.eta - view.now);
      throw new GovernanceError(
        "IN_TIMELOCK",
        `proposal ${id} is still in the timelock until ${formatTimestamp(view.eta)} ` +
          `(${formatDuration(wait)} after the latest block)` +
          (this.network.local ? `: on a local node, \`agentgpt governance advance --seconds ${wait}\`` : ""),
      );
    }
    const receipt = await this.#send(() => this.suite.governor["execute(uint256)"](id));
    return { txHash: receipt.hash, view: await readProposal(this.suite, id) };
  }

  // ----------------------------------------------------------------- status

  async status(id: bigint, voterAddress?: string): Promise<{ view: ProposalView; voter?: VoterView; lines: string[] }> {
    const view = await readProposal(this.suite, id);
    const voter = voterAddress === undefined ? undefined : await readVoter(this.suite, view, voterAddress);
    return { view, voter, lines: this.describe(view, voter) };
  }

  /** `explainProposal` plus, on a local node, how to get to the next step without waiting. */
  describe(view: ProposalView, voter?: VoterView): string[] {
    const lines = explainProposal(view, this.explain, voter);
    const hint = this.#advanceHintFor(view);
    if (hint !== "") lines.push(`  ${hint}`);
    return lines;
  }

  /** The most recent proposals, newest first (GovernorStorage keeps them on-chain). */
  async recent(limit = 10): Promise<ProposalView[]> {
    const count = await this.suite.governor.proposalCount();
    const views: ProposalView[] = [];
    for (let index = count - 1n; index >= 0n && views.length < limit; index -= 1n) {
      const [id] = await this.suite.governor.proposalDetailsAt(index);
      views.push(await readProposal(this.suite, id));
    }
    return views;
  }

  /** The account's votes now and what it could do with them. */
  async votingPower(): Promise<string[]> {
    const { agpt, governor } = this.suite;
    const [balance, votes, delegatee, threshold] = await Promise.all([
      agpt.balanceOf(this.account),
      agpt.getVotes(this.account),
      agpt.delegates(this.account),
      governor.proposalThreshold(),
    ]);
    const unit = this.suite.votesUnit;
    const lines = [
      `${this.account}`,
      `  balance    ${formatTokenAmount(balance, unit)}`,
      `  votes      ${formatTokenAmount(votes, unit)} (delegated to it, now)`,
      `  delegates  ${delegatee === "0x0000000000000000000000000000000000000000" ? "nobody (no votes)" : delegatee}`,
      `  threshold  ${formatTokenAmount(threshold, unit)} to propose`,
    ];
    if (votes === 0n) lines.push(`  It ${noVotesReason({ address: this.account, delegatee, balance }, unit)}`);
    return lines;
  }

  // --------------------------------------------------------------- internal

  /**
   * The proposer's votes must reach the threshold. The governor counts them at the block before the proposal's, so
   * the votes held now are what counts for a proposal sent now (in the next block).
   */
  async #checkThreshold(): Promise<void> {
    const { governor, agpt } = this.suite;
    const threshold = await governor.proposalThreshold();
    if (threshold === 0n) return;
    const [votes, delegatee, balance] = await Promise.all([
      agpt.getVotes(this.account),
      agpt.delegates(this.account),
      agpt.balanceOf(this.account),
    ]);
    if (votes >= threshold) return;
    const unit = this.suite.votesUnit;
    const why =
      votes === 0n
        ? `It ${noVotesReason({ address: this.account, delegatee, balance }, unit)}`
        : "Holders must delegate more votes to it.";
    throw new GovernanceError(
      "BELOW_THRESHOLD",
      `${this.account} needs ${formatTokenAmount(threshold, unit)} in votes to propose and has ` +
        `${formatTokenAmount(votes, unit)}. ${why}`,
    );
  }

  /** Each action must succeed if the timelock ran it now, and the window must stay below the delay. */
  async #checkActions(actions: readonly GovernanceAction[]): Promise<void> {
    const { governor, timelock, autoPayLLM } = this.suite;
    const provider = governor.runner?.provider;
    const timelockAddress = await timelock.getAddress();
    for (const action of actions) {
      try {
        await provider?.call({ from: timelockAddress, to: action.target, data: action.calldata, value: action.value });
      } catch (error) {
        const revert = decodeRevert(error);
        throw new GovernanceError(
          "INVALID_ACTION",
          `"${action.summary}" would fail if executed now (${revert ?? "reverted"}): fix the value`,
          { cause: error },
        );
      }
    }
    let window = await autoPayLLM.disputeWindow();
    let delay = await timelock.getMinDelay();
    const settlementAddress = (await autoPayLLM.getAddress()).toLowerCase();
    for (const action of actions) {
      const parsed = INTERFACES.map((iface) => iface.parseTransaction({ data: action.calldata })).find(Boolean);
      if (parsed?.name === "setDisputeWindow" && action.target.toLowerCase() === settlementAddress) {
        window = parsed.args[0] as bigint;
      } else if (parsed?.name === "updateDelay" && action.target.toLowerCase() === timelockAddress.toLowerCase()) {
        delay = parsed.args[0] as bigint;
      }
    }
    if (delay <= window) {
      throw new GovernanceError(
        "WINDOW_NOT_COVERED",
        `the timelock delay (${delay} s) must stay longer than the dispute window (${window} s), or a change could ` +
          `land while payers rely on an open window; the governor would refuse to execute it. Propose a window ` +
          `below ${delay} s, or raise the timelock delay above ${window} s first (or in the same proposal)`,
      );
    }
  }

  #whyNot(verb: "queued" | "executed", view: ProposalView): string {
    const lines = explainProposal(view, this.explain).slice(-2).map((line) => line.trim());
    const hint = this.#advanceHintFor(view);
    return `proposal ${view.id} cannot be ${verb}: it is ${view.state}. ${lines.join(" ")}${hint === "" ? "" : ` ${hint}`}`;
  }

  #advanceHint(blocks: bigint): string {
    return this.network.local && blocks > 0n ? ` (on a local node: \`agentgpt governance advance --blocks ${blocks}\`)` : "";
  }

  #advanceHintFor(view: ProposalView): string {
    if (!this.network.local) return "";
    // Mining N blocks puts the next transaction in block clock + N + 1.
    if (view.state === "Pending") {
      const blocks = view.snapshot - view.clock;
      return blocks <= 0n ? "The next transaction lands after the snapshot: vote now." : `On a local node: agentgpt governance advance --blocks ${blocks}`;
    }
    if (view.state === "Active") {
      const blocks = view.deadline - view.clock;
      return blocks <= 0n
        ? "Voting closes with the next block: queue now (if it passed)."
        : `On a local node, once the votes are in: agentgpt governance advance --blocks ${blocks}`;
    }
    if (view.state === "Queued" && view.eta > view.now) {
      return `On a local node: agentgpt governance advance --seconds ${view.eta - view.now}`;
    }
    return "";
  }

  async #send(send: () => Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> {
    let receipt: ContractTransactionReceipt | null;
    try {
      receipt = await (await send()).wait();
    } catch (error) {
      throw explainRevert(error);
    }
    if (receipt === null) throw new GovernanceError("REVERTED", "the transaction was dropped: try again");
    return receipt;
  }
}

/** The custom error a call reverted with, as `Name(arg, ...)`, decoded with the suite's ABIs. */
export function decodeRevert(error: unknown): string | undefined {
  if (isError(error, "CALL_EXCEPTION") && error.revert !== null && error.revert !== undefined) {
    return `${error.revert.name}(${error.revert.args.map(formatArg).join(", ")})`;
  }
  const data = revertData(error);
  if (data === undefined) return undefined;
  for (const iface of INTERFACES) {
    try {
      const parsed = iface.parseError(data);
      if (parsed !== null) return `${parsed.name}(${parsed.args.map(formatArg).join(", ")})`;
    } catch {
      // not this interface's error
    }
  }
  return `unknown error ${data.slice(0, 10)}`;
}

function formatArg(value: unknown): string {
  return typeof value === "string" && !value.startsWith("0x") ? JSON.stringify(value) : String(value);
}

/** Revert data wherever the provider put it (ethers, Hardhat's in-process errors, nested JSON-RPC errors). */
function revertData(error: unknown, depth = 0): string | undefined {
  if (typeof error !== "object" || error === null || depth > 4) return undefined;
  const record = error as Record<string, unknown>;
  const data = record.data;
  if (typeof data === "string" && /^0x[0-9a-fA-F]{8}/.test(data)) return data;
  for (const key of ["data", "error", "info", "cause"]) {
    const found = revertData(record[key], depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A failed send as a GovernanceError that says what the contract refused. */
function explainRevert(error: unknown): Error {
  const revert = decodeRevert(error);
  if (revert === undefined) return error instanceof Error ? error : new Error(String(error));
  const name = revert.slice(0, revert.indexOf("("));
  const messages: Record<string, string> = {
    GovernorInsufficientProposerVotes: "not enough votes to propose (delegate first, then wait a block)",
    GovernorAlreadyCastVote: "this account has already voted",
    GovernorUnexpectedProposalState: "the proposal is not in the state this step needs (see `status`)",
    AgentGovernorDelayNotAboveDisputeWindow:
      "executing would leave the dispute window as long as the timelock delay or longer; the governor refuses it",
    TimelockUnexpectedOperationState: "the timelock operation is not ready yet",
  };
  return new GovernanceError("REVERTED", `the contract refused: ${messages[name] ?? "see the error"} [${revert}]`, {
    cause: error,
  });
}
