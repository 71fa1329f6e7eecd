/**
 * The demo's dispute checks: wait for a dispute to close while the local DON answers the oracle's requests (and the
 * chain's clock moves, so the reconciler sees new settlements), then check its outcome to the token unit against
 * what the provider's usage API reports for the interval and the contracts' formula:
 *
 *   overbilled = min(max(0, billed - reported - priorRefunded), held)   (0 within the oracle's tolerance)
 *   refund     = floor(heldAmount * overbilled / heldTokens)
 */
import type { JsonRpcProvider } from "ethers";

import { advanceLocalChain } from "../chain/index.js";
import type { DisputeClient, DisputeStatus } from "../disputes/index.js";
import { disputeRefund, oracleOverbilled } from "../reconciler/refund.js";
import { DemoError } from "./errors.js";
import type { LocalDon } from "./local-don.js";
import type { DemoUsageServer } from "./usage-server.js";

export interface PollOptions {
  readonly provider: JsonRpcProvider;
  readonly don: LocalDon;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  /** for the timeout message: what was awaited */
  readonly what: string;
}

/**
 * Calls `check` every 200 ms until it returns a value; meanwhile the DON answers every recorded request and an
 * empty block is mined every 2 s (the reconciler reads time from the chain, which moves only with blocks).
 */
export async function pollUntil<T>(options: PollOptions, check: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const errors: string[] = [];
  let nextBlock = Date.now() + 2000;
  for (;;) {
    for (const answer of await options.don.answerPending()) if (answer.error !== undefined) errors.push(answer.error);
    const value = await check();
    if (value !== null) return value;
    if (options.signal.aborted) throw new DemoError("interrupted", 130);
    if (Date.now() > deadline) {
      throw new DemoError(
        `${options.what} did not happen within ${options.timeoutMs / 1000} s` +
          (errors.length > 0 ? ` (DON errors: ${errors.join("; ")})` : "") +
          "; see the reconciler's lines in the relayer log",
      );
    }
    if (Date.now() >= nextBlock) {
      await advanceLocalChain(options.provider, { blocks: 1 });
      nextBlock = Date.now() + 2000;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export interface CheckedDispute {
  readonly status: DisputeStatus;
  readonly providerName: string;
  readonly modelName: string;
  /** what the usage API reports for the interval */
  readonly reported: bigint;
  readonly toProvider: bigint;
  readonly bondReturned: boolean;
  readonly txHash: string;
}

/**
 * The closed dispute `disputeId`, checked: resolved by the oracle on exactly the usage API's figure for the
 * interval, with the overbilled tokens and the refund the contracts' formula gives.
 */
export async function checkResolution(client: DisputeClient, usage: DemoUsageServer, disputeId: string): Promise<CheckedDispute> {
  const status = await client.status(disputeId);
  const resolution = status.resolution;
  if (status.state !== "resolved" || resolution === undefined) throw new DemoError(`dispute ${disputeId} is ${status.state}, not resolved by the oracle`);
  const router = client.chain.router;
  const [providerName, modelName] = await Promise.all([
    router.providerInfo(status.provider).then((p) => p.name),
    router.modelInfo(status.model).then((m) => m.name),
  ]);
  const reported = usage.reported(providerName, modelName, status.payer, status.callsFrom, status.callsTo);
  const verified = status.history.find((event) => event.kind === "verified");
  const tolerance = client.chain.oracle === undefined ? 0n : await client.chain.oracle.toleranceBps();
  const overbilled = oracleOverbilled(
    { billedTokens: status.billedTokens, heldTokens: status.heldTokens, heldAmount: status.heldAmount, priorRefundedTokens: status.priorRefundedTokens },
    reported,
    tolerance,
  );
  const refund = disputeRefund(status.heldAmount, status.heldTokens, overbilled);
  if (verified?.kind !== "verified" || verified.reportedTokens !== reported || verified.billedTokens !== status.billedTokens) {
    throw new DemoError(`dispute ${disputeId}: the oracle saw ${verified?.kind === "verified" ? verified.reportedTokens : "no"} reported tokens; the usage API reports ${reported}`);
  }
  if (status.overbilledTokens !== overbilled || status.refund !== refund || resolution.refund !== refund || resolution.toProvider !== status.heldAmount - refund) {
    throw new DemoError(
      `dispute ${disputeId}: resolved with ${status.overbilledTokens} tokens overbilled and ${resolution.refund} units refunded; ` +
        `billed ${status.billedTokens}, reported ${reported}, held ${status.heldTokens} tokens / ${status.heldAmount} units give ${overbilled} and ${refund}`,
    );
  }
  if (resolution.bondReturned !== overbilled > 0n) throw new DemoError(`dispute ${disputeId}: the bond went the wrong way`);
  return { status, providerName, modelName, reported, toProvider: resolution.toProvider, bondReturned: resolution.bondReturned, txHash: resolution.txHash };
}
