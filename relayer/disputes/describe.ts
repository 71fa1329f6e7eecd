/**
 * Dispute states as lines for people: what happened, what is pending, until when, and the next command.
 */
import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import type { DisputeStatus } from "./dispute-client.js";
import { isoTime } from "./reverts.js";

export function describeDispute(status: DisputeStatus, unit: TokenUnit, providerName?: string): string[] {
  const { batchId, index } = status.target;
  const fmt = (n: bigint) => formatTokenAmount(n, unit);
  const follow = `agentgpt dispute status --batch ${batchId} --row ${index}`;
  if (status.state === "none") return [`Row ${index} of batch ${batchId} is not disputed.`];
  const lines = [
    `Dispute of row ${index} of batch ${batchId}: ${status.state.toUpperCase()}`,
    `  payer      ${status.payer}`,
    `  provider   ${providerName ?? `#${status.provider}`}`,
    `  disputed   ${fmt(status.amount)} (bond ${fmt(status.bond)})`,
    `  opened     ${isoTime(status.openedAt)}`,
  ];
  for (const event of status.history) {
    if (event.kind === "requested") lines.push(`  oracle     request ${event.requestId.slice(0, 10)}… (attempt ${event.attempt}) in block ${event.block}`);
    if (event.kind === "verified") {
      lines.push(
        `  oracle     provider reports ${event.reportedTokens} tokens against ${event.billedTokens} billed: refund ${fmt(event.refund)}`,
      );
    }
    if (event.kind === "failed") lines.push(`  oracle     request ${event.requestId.slice(0, 10)}… failed: ${event.reason}${event.message === "" ? "" : ` (${event.message})`}`);
  }
  if (status.state === "resolved") {
    const r = status.resolution;
    if (r !== undefined) {
      lines.push(
        `  outcome    refund ${fmt(r.refund)} to the payer, ${fmt(r.toProvider)} to the provider; bond ${r.bondReturned ? "returned to the payer" : "paid to the provider"}`,
        `  resolved   by ${r.resolver} in ${r.txHash} (block ${r.block})`,
      );
    }
    return lines;
  }
  const v = status.verification;
  if (status.now < status.arbiterDeadline) {
    lines.push(`  deadline   the oracle may resolve until ${isoTime(status.arbiterDeadline)}`);
    if (v !== undefined) {
      if (v.pending !== null) {
        lines.push(`  waiting    for the oracle's answer to ${v.pending.slice(0, 10)}… (attempt ${v.attempts} of ${v.maxAttempts}; retry allowed from ${isoTime(v.retryAt)})`);
      } else if (v.attempts < v.maxAttempts) {
        lines.push(`  next       ask the oracle${v.attempts === 0 ? "" : " again"}: agentgpt dispute verify --batch ${batchId} --row ${index}`);
      } else {
        lines.push(`  next       the oracle was asked ${v.attempts} times (its limit): governance resolves after ${isoTime(status.arbiterDeadline)}`);
      }
    } else {
      lines.push("  next       no oracle: governance resolves (resolveDispute)");
    }
  } else if (status.now < status.governanceDeadline) {
    lines.push(`  deadline   the oracle's time is over; governance may resolve until ${isoTime(status.governanceDeadline)}`);
  } else {
    lines.push(`  next       nobody resolved it in time: anyone may refund it in full (AutoPayLLM.refundExpiredDispute)`);
  }
  lines.push(`  follow     ${follow}`);
  return lines;
}
