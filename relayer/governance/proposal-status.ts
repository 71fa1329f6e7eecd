/**
 * Where a proposal stands and what it is waiting for, read from the chain and explained for people: blocks until
 * voting opens or closes, votes against quorum, the timelock's ETA, and for a given account whether it can vote
 * and why not.
 */
import { ZeroAddress } from "ethers";

import { type NetworkInfo, type Suite, type TokenUnit } from "../chain/index.js";
import { formatTokenAmount } from "../config/amount.js";
import { describeCall, formatDuration } from "./actions.js";
import { GovernanceError } from "./errors.js";

/** OpenZeppelin `IGovernor.ProposalState`, in order. */
export const PROPOSAL_STATES = [
  "Pending",
  "Active",
  "Canceled",
  "Defeated",
  "Succeeded",
  "Queued",
  "Expired",
  "Executed",
] as const;
export type ProposalStateName = (typeof PROPOSAL_STATES)[number];

export interface ProposalView {
  id: bigint;
  state: ProposalStateName;
  proposer: string;
  /** Clock (block) at which voting power is counted; voting opens after it. */
  snapshot: bigint;
  /** Last clock (block) of voting. */
  deadline: bigint;
  /** When the timelock lets it execute (unix seconds); 0 until queued. */
  eta: bigint;
  votes: { against: bigint; for: bigint; abstain: bigint };
  /** For + abstain votes needed; an estimate from the current supply while the snapshot is in the future. */
  quorum: bigint;
  /** The governor's clock now (AGPT block number; on Arbitrum the L1 block number). */
  clock: bigint;
  /** Timestamp of the latest block (seconds). */
  now: bigint;
  /** The proposal's calls, described. */
  actions: string[];
}

export interface VoterView {
  address: string;
  /** Votes the account can cast on this proposal (at the snapshot; current votes while it is in the future). */
  weight: bigint;
  hasVoted: boolean;
  /** Who the account delegated its votes to (zero address: never delegated). */
  delegatee: string;
  balance: bigint;
}

/**
 * @throws GovernanceError UNKNOWN_PROPOSAL when the governor has no such proposal.
 */
export async function readProposal(suite: Suite, id: bigint): Promise<ProposalView> {
  const { governor } = suite;
  const snapshot = await governor.proposalSnapshot(id);
  if (snapshot === 0n) {
    throw new GovernanceError(
      "UNKNOWN_PROPOSAL",
      `governor ${suite.deployment.addresses.governor} (chain ${suite.deployment.chainId}) has no proposal ${id}: ` +
        "check the id and --network (`agentgpt governance status` lists the proposals)",
    );
  }
  const provider = governor.runner?.provider;
  const [state, proposer, deadline, eta, votes, clock, block, details] = await Promise.all([
    governor.state(id),
    governor.proposalProposer(id),
    governor.proposalDeadline(id),
    governor.proposalEta(id),
    governor.proposalVotes(id),
    governor.clock(),
    provider?.getBlock("latest"),
    governor.proposalDetails(id),
  ]);
  let quorum: bigint;
  if (snapshot < clock) {
    quorum = await governor.quorum(snapshot);
  } else {
    const [supply, numerator, denominator] = await Promise.all([
      suite.agpt.totalSupply(),
      governor["quorumNumerator()"](),
      governor.quorumDenominator(),
    ]);
    quorum = (supply * numerator) / denominator;
  }
  const ctx = { addresses: suite.deployment.addresses, paymentUnit: suite.paymentUnit };
  return {
    id,
    state: PROPOSAL_STATES[Number(state)] ?? "Pending",
    proposer,
    snapshot,
    deadline,
    eta,
    votes: { against: votes.againstVotes, for: votes.forVotes, abstain: votes.abstainVotes },
    quorum,
    clock,
    now: BigInt(block?.timestamp ?? Math.floor(Date.now() / 1000)),
    actions: details.targets.map((target, i) => describeCall(ctx, target, details.calldatas[i]!)),
  };
}

export async function readVoter(suite: Suite, view: ProposalView, address: string): Promise<VoterView> {
  const { governor, agpt } = suite;
  const [weight, hasVoted, delegatee, balance] = await Promise.all([
    view.snapshot < view.clock ? governor.getVotes(address, view.snapshot) : agpt.getVotes(address),
    governor.hasVoted(view.id, address),
    agpt.delegates(address),
    agpt.balanceOf(address),
  ]);
  return { address, weight, hasVoted, delegatee, balance };
}

/** What people need to read the clock: units and the network's pace. */
export interface ExplainContext {
  votesUnit: TokenUnit;
  network: Pick<NetworkInfo, "secondsPerClockTick" | "local">;
}

/** Blocks as "N blocks (about 1h 2m)". */
export function blocksAndTime(blocks: bigint, network: ExplainContext["network"]): string {
  const n = blocks < 0n ? 0n : blocks;
  const about = network.local ? "" : ` (about ${formatDuration(Number(n) * network.secondsPerClockTick)})`;
  return `${n} block${n === 1n ? "" : "s"}${about}`;
}

export function formatTimestamp(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

/** Lines describing the proposal and, when given, the voter; the last line says what comes next. */
export function explainProposal(view: ProposalView, ctx: ExplainContext, voter?: VoterView): string[] {
  const unit = ctx.votesUnit;
  const lines = [`Proposal ${view.id}`, `  state     ${view.state}`];
  view.actions.forEach((action, i) => lines.push(`  action ${i + 1}  ${action}`));
  lines.push(`  proposer  ${view.proposer}`);
  const counted = view.votes.for + view.votes.abstain;
  const tally =
    `  votes     for ${formatTokenAmount(view.votes.for, unit)}, against ${formatTokenAmount(view.votes.against, unit)}, ` +
    `abstain ${formatTokenAmount(view.votes.abstain, unit)}`;
  const quorumLine =
    `  quorum    ${formatTokenAmount(view.quorum, unit)} (for + abstain)` +
    (counted >= view.quorum ? ": reached" : `: ${formatTokenAmount(view.quorum - counted, unit)} more needed`);

  switch (view.state) {
    case "Pending": {
      const wait = view.snapshot + 1n - view.clock;
      lines.push(
        wait <= 1n
          ? `  Voting opens after block ${view.snapshot} (now ${view.clock}): with the next block.`
          : `  Voting opens after block ${view.snapshot} (now ${view.clock}): ${blocksAndTime(wait, ctx.network)} to go.`,
        `  Voting power is counted at block ${view.snapshot}: delegate before it to take part.`,
      );
      break;
    }
    case "Active": {
      const left = view.deadline + 1n - view.clock;
      lines.push(tally, quorumLine);
      lines.push(`  Voting is open until block ${view.deadline} (now ${view.clock}): ${blocksAndTime(left, ctx.network)} left.`);
      if (counted < view.quorum) lines.push("  Not enough votes yet: without quorum the proposal is defeated.");
      else if (view.votes.for <= view.votes.against) lines.push("  More votes against than for: it would be defeated.");
      else lines.push("  On track to pass.");
      break;
    }
    case "Defeated":
      lines.push(tally, quorumLine);
      lines.push(
        counted < view.quorum
          ? "  Defeated: quorum was not reached. Nothing changes."
          : "  Defeated: not more votes for than against. Nothing changes.",
      );
      break;
    case "Succeeded":
      lines.push(tally, quorumLine, `  Passed. Next (anyone may): agentgpt governance queue ${view.id}`);
      break;
    case "Queued":
      if (view.eta > view.now) {
        lines.push(
          `  In the timelock until ${formatTimestamp(view.eta)} (ETA; ${formatDuration(Number(view.eta - view.now))} from the latest block).`,
          `  Then (anyone may): agentgpt governance execute ${view.id}`,
        );
      } else {
        lines.push(`  The timelock delay is over. Next (anyone may): agentgpt governance execute ${view.id}`);
      }
      break;
    case "Executed":
      lines.push("  Executed: the changes are in effect.");
      break;
    case "Canceled":
      lines.push("  Canceled: nothing changes.");
      break;
    case "Expired":
      lines.push("  Expired: nothing changes.");
      break;
  }
  if (voter !== undefined) lines.push(...explainVoter(view, ctx, voter));
  return lines;
}

function explainVoter(view: ProposalView, ctx: ExplainContext, voter: VoterView): string[] {
  const who = `  ${voter.address}`;
  if (voter.hasVoted) return [`${who} has voted on this proposal.`];
  if (view.state !== "Pending" && view.state !== "Active") return [];
  if (voter.weight > 0n) {
    return [`${who} can vote with ${formatTokenAmount(voter.weight, ctx.votesUnit)}.`];
  }
  return [`${who} ${noVotesReason(voter, ctx.votesUnit, view.snapshot)}`];
}

/** Why an account has no votes, and the fix. */
export function noVotesReason(voter: Omit<VoterView, "hasVoted" | "weight">, unit: TokenUnit, snapshot?: bigint): string {
  if (voter.delegatee === ZeroAddress) {
    if (voter.balance === 0n) return `holds no ${unit.symbol}, so it has no votes.`;
    return (
      `holds ${formatTokenAmount(voter.balance, unit)} but has not delegated, so it has no votes: ` +
      "run `agentgpt governance delegate` (votes count for proposals whose snapshot comes after it)."
    );
  }
  if (voter.delegatee.toLowerCase() !== voter.address.toLowerCase()) {
    return `delegated its votes to ${voter.delegatee}: that account votes for it.`;
  }
  return snapshot === undefined
    ? "delegated to itself but holds no votes yet."
    : `had no votes at the snapshot (block ${snapshot}): delegation made after it counts for later proposals only.`;
}
