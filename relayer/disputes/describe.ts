/**
 * Dispute states as lines for people: the interval, what is billed and held, what the oracle did, until when each
 * party may act, the outcome, and the next command.
 */
import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import { nextAction, type DisputeStatus } from "./dispute-client.js";
import { isoTime } from "./reverts.js";

export interface DisputeNames {
  readonly provider?: string | undefined;
  readonly model?: string | undefined;
}

export function describeDispute(status: DisputeStatus, unit: TokenUnit, names: DisputeNames = {}): string[] {
  const fmt = (n: bigint) => formatTokenAmount(n, unit);
  const id = status.disputeId;
  const follow = `agentgpt dispute status --id ${id}`;
  if (status.state === "none") return [`Dispute ${id} does not exist on this router.`];
  const lines = [
    `Dispute ${id}: ${status.state.toUpperCase()}`,
    `  payer      ${status.payer}`,
    `  usage      ${names.provider ?? `provider #${status.provider}`}/${names.model ?? `model #${status.model}`}, calls started in [${isoTime(status.callsFrom)}, ${isoTime(status.callsTo)})`,
    `  billed     ${status.billedTokens} tokens over ${status.rows} settled row${status.rows === 1 ? "" : "s"}` +
      (status.priorRefundedTokens > 0n ? ` (${status.priorRefundedTokens} already refunded by earlier disputes)` : ""),
    `  held       ${status.heldTokens} tokens, ${fmt(status.heldAmount)} (the most this dispute can refund); bond ${fmt(status.bond)}`,
    `  opened     ${isoTime(status.openedAt)}`,
    `  deadlines  oracle until ${isoTime(status.arbiterDeadline)}; governance until ${isoTime(status.governanceDeadline)}; then the charge stands`,
  ];
  for (const event of status.history) {
    if (event.kind === "requested") lines.push(`  oracle     request ${event.requestId.slice(0, 10)}… (attempt ${event.attempt}, by ${event.requester}) in block ${event.block}`);
    if (event.kind === "verified") {
      lines.push(`  oracle     provider reports ${event.reportedTokens} tokens against ${event.billedTokens} billed: ${event.overbilledTokens} tokens overbilled`);
    }
    if (event.kind === "failed") lines.push(`  oracle     request ${event.requestId.slice(0, 10)}… failed: ${event.reason}${event.message === "" ? "" : ` (${event.message})`}`);
  }
  if (status.state === "resolved" || status.state === "expired") {
    const r = status.resolution;
    if (status.state === "expired") lines.push("  outcome    nobody judged it in time: the charge stands, the bond went back to the payer");
    else lines.push(`  outcome    ${status.overbilledTokens} tokens overbilled: refund ${fmt(status.refund)} to the payer, the rest of the held amount to the provider`);
    if (r !== undefined) {
      lines.push(
        `  paid       refund ${fmt(r.refund)}, ${fmt(r.toProvider)} to the provider; bond ${r.bondReturned ? "returned to the payer" : "paid to the provider"}`,
        `  closed     by ${r.resolver} in ${r.txHash} (block ${r.block})`,
      );
    }
    return lines;
  }
  const v = status.verification;
  switch (nextAction(status)) {
    case "request":
      lines.push(`  next       ask the oracle${v !== undefined && v.attempts > 0 ? " again" : ""} (anyone may): agentgpt dispute verify --id ${id}`);
      break;
    case "wait-oracle":
      lines.push(
        v!.pending !== null
          ? `  waiting    for the oracle's answer to ${v!.pending.slice(0, 10)}… (attempt ${v!.attempts} of ${v!.maxAttempts}; retry allowed from ${isoTime(v!.retryAt)})`
          : `  waiting    the last answer did not resolve it (attempt ${v!.attempts} of ${v!.maxAttempts}); a retry is allowed from ${isoTime(v!.retryAt)}: agentgpt dispute verify --id ${id}`,
      );
      break;
    case "wait-governance":
      lines.push(
        v === undefined
          ? "  next       no oracle: governance resolves (agentgpt dispute resolve-call prints the call)"
          : status.now < status.arbiterDeadline
            ? `  next       the oracle was asked ${v.attempts} times (its limit): governance resolves (agentgpt dispute resolve-call)`
            : "  next       the oracle's time is over: governance resolves (agentgpt dispute resolve-call)",
      );
      break;
    case "settle-expired":
      lines.push(`  next       its governance deadline passed: anyone closes it (the charge stands): agentgpt dispute settle-expired --id ${id}`);
      break;
    case "none":
      break;
  }
  lines.push(`  follow     ${follow}`);
  return lines;
}
