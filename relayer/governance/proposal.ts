/**
 * A proposal as the governor sees it (targets, values, calldatas, description) built from actions, with its id
 * computed exactly as `Governor.hashProposal` does. Descriptions are derived from the actions, so they are
 * reproducible; the governor also stores each proposal's actions and description hash (GovernorStorage), so queue
 * and execute need only the id.
 */
import { AbiCoder, getAddress, keccak256, toUtf8Bytes } from "ethers";

import type { GovernanceAction } from "./actions.js";
import { GovernanceError } from "./errors.js";

export interface ProposalDraft {
  targets: string[];
  values: bigint[];
  calldatas: string[];
  description: string;
  descriptionHash: string;
  /** `uint256(keccak256(abi.encode(targets, values, calldatas, descriptionHash)))`. */
  id: bigint;
}

export interface DraftOptions {
  /** The account that will submit it: the description ends with `#proposer=<address>`, which the governor
   * enforces, so nobody can front-run the proposal under the same id. */
  proposer: string;
  /** Free text appended to the description (why). */
  note?: string;
  /** 2, 3, ... to make an otherwise identical proposal distinct (a new vote after a defeat). */
  revision?: number;
}

/** Builds the proposal for `actions`; its description is a pure function of the actions and options. */
export function draftProposal(actions: readonly GovernanceAction[], options: DraftOptions): ProposalDraft {
  if (actions.length === 0) throw new GovernanceError("INVALID_ACTION", "a proposal needs at least one action");
  const title =
    actions.length === 1 ? actions[0]!.summary : `${actions.length} changes: ${actions.map((a) => a.summary).join("; ")}`;
  const lines = [`# ${title}`, "", ...actions.map((action, i) => `${i + 1}. ${action.summary}`)];
  const note = options.note?.trim();
  if (note !== undefined && note !== "") lines.push("", note);
  if (options.revision !== undefined && options.revision > 1) lines.push("", `Revision ${options.revision}`);
  lines.push("", `#proposer=${getAddress(options.proposer)}`);
  const description = lines.join("\n");

  const targets = actions.map((a) => getAddress(a.target));
  const values = actions.map((a) => a.value);
  const calldatas = actions.map((a) => a.calldata);
  const descriptionHash = keccak256(toUtf8Bytes(description));
  return { targets, values, calldatas, description, descriptionHash, id: proposalId(targets, values, calldatas, descriptionHash) };
}

/** `Governor.hashProposal`. */
export function proposalId(
  targets: readonly string[],
  values: readonly bigint[],
  calldatas: readonly string[],
  descriptionHash: string,
): bigint {
  const encoded = AbiCoder.defaultAbiCoder().encode(
    ["address[]", "uint256[]", "bytes[]", "bytes32"],
    [targets, values, calldatas, descriptionHash],
  );
  return BigInt(keccak256(encoded));
}

/**
 * Reads a proposal id as people pass it: decimal (as printed) or 0x hex.
 *
 * @throws GovernanceError UNKNOWN_PROPOSAL when it is neither.
 */
export function parseProposalId(text: string): bigint {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed) || /^0x[0-9a-fA-F]+$/.test(trimmed)) {
    const id = BigInt(trimmed);
    if (id < 1n << 256n) return id;
  }
  throw new GovernanceError(
    "UNKNOWN_PROPOSAL",
    `"${text}" is not a proposal id: pass the decimal id printed by propose (or see \`agentgpt governance status\`)`,
  );
}
