/**
 * Where the charged money of one router stands, in four parts that do not overlap:
 *   escrowed    in escrow and not releasable: the dispute window is open, or a dispute holds the rows
 *   releasable  the window closed, not yet released (what `release` would credit now)
 *   released    credited to providers and not withdrawn yet (the router's totalCredits)
 *   withdrawn   paid out to the providers' payees during the monitor's window (CreditsWithdrawn logs)
 * `totalEscrow` is escrowed + releasable. Releasable batches are found without a scan of the chain: the window's
 * BatchSettled logs (already read for the cost table) and the release stage's schedule (batches settled earlier and
 * not released yet); each candidate whose window closed by the head block's time is read from the router (its
 * status, its close, and what release would credit: its shares, held rows already taken out).
 */
import type { ScheduledRelease } from "../payout/release-schedule.js";
import type { AutoPayLLM } from "../../typechain-types/index.js";

export interface PayoutFigures {
  readonly escrowed: bigint;
  readonly releasable: bigint;
  /** batches in `releasable` */
  readonly releasableBatches: number;
  readonly released: bigint;
  readonly withdrawn: bigint;
}

const ESCROWED = 1n;

/**
 * Reads the four amounts. `candidates` are batch ids that may be releasable with their (earliest) window close;
 * `headTime` is the head block's time; `withdrawn` the window's CreditsWithdrawn total.
 */
export async function readPayouts(
  router: Pick<AutoPayLLM, "totalEscrow" | "totalCredits" | "batchInfo" | "batchShare" | "disputeClosesAt">,
  candidates: readonly ScheduledRelease[],
  headTime: number,
  withdrawn: bigint,
): Promise<PayoutFigures> {
  const [escrow, credits] = await Promise.all([router.totalEscrow(), router.totalCredits()]);
  const seen = new Set<string>();
  let releasable = 0n;
  let batches = 0;
  for (const { batchId, closesAt } of candidates) {
    const id = batchId.toLowerCase();
    if (seen.has(id) || closesAt > headTime) continue;
    seen.add(id);
    const info = await router.batchInfo(id);
    if (info.status !== ESCROWED || (await router.disputeClosesAt(id)) > BigInt(headTime)) continue;
    let amount = 0n;
    for (let k = 0n; k < info.shareCount; k++) amount += (await router.batchShare(id, k)).amount;
    if (amount === 0n) continue;
    releasable += amount;
    batches += 1;
  }
  return { escrowed: escrow - releasable, releasable, releasableBatches: batches, released: credits, withdrawn };
}
