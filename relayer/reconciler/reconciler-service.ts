/**
 * The reconciler of one chain as a running loop. Each pass, by the chain's clock:
 * 1. checks the batches settled since the last pass, once `report_delay` has passed since their settlement (so the
 *    providers' reports have caught up), with every interval they bill (all settled rows of that payer, provider,
 *    model and usage bucket, whatever batch), and disputes the overcharged intervals of the payers the operator
 *    controls; an interval whose provider report failed is checked again next pass while a row of it can be held;
 * 2. follows EVERY dispute open on the router as a keeper: starts or retries the oracle's verification, settles
 *    those past their governance deadline as expired (found from DisputeOpened logs; on the first pass from the
 *    disputes that can still be open under the current timeouts);
 * 3. when an epoch has closed (plus `report_delay`), reconciles it as a whole and logs the per-provider summary.
 * The cursor and the open disputes live in Redis (or memory), so a restart resumes where the last pass stopped.
 *
 * Several processes may run the reconciler of one chain: with `lease`, only its holder runs passes (reconciling and
 * the auto-disputer's disputes, bonds and keeper calls: two would race for the payers' nonces and bond twice), its
 * ledger writes fenced with the lease's token; a standby takes over within the lease's `takeoverMs` (ttl + renew
 * interval) of the holder's last renewal, and carries on from the ledger's cursor.
 */
import type { Logger } from "pino";

import { FencedError, type Lease } from "../settler/lease.js";

import { formatEpoch, epochOf, type Epoch } from "./epoch.js";
import type { AutoDisputer, AutoDisputeOutcome, FollowUp } from "./auto-dispute.js";
import type { DisputeLedger } from "./dispute-ledger.js";
import { formatReport } from "./format-report.js";
import type { ReconcilerEvents } from "./metrics.js";
import type { Reconciler } from "./reconciler.js";
import type { EpochReport } from "./report.js";

export interface ReconcilerServiceOptions {
  readonly chainName: string;
  readonly reconciler: Reconciler;
  readonly disputer: AutoDisputer;
  readonly ledger: DisputeLedger;
  /** seconds */
  readonly epochSeconds: number;
  /** seconds after a settlement before its rows are compared */
  readonly reportDelaySeconds: number;
  readonly intervalMs: number;
  /** the chain's reconciler lease (renewed on its own timer); without it this process assumes it is the only one */
  readonly lease?: Lease | undefined;
  /**
   * told as each pass starts (by the lease holder): the stage fences the pass's ledger writes with the lease token
   * of that moment, so a pass that stalls past its lease and resumes after the lease was taken again (by another
   * process, or by this one: a new token) writes nothing (FENCED), as the settler's passes do
   */
  readonly onPassStart?: (() => void) | undefined;
  readonly logger?: Logger | undefined;
  /** told of each pass (relayer/reconciler/metrics.ts) */
  readonly events?: Pick<ReconcilerEvents, "pass"> | undefined;
}

export interface PassResult {
  /** the settlement-time window checked this pass (null when nothing new was due) */
  readonly window: Epoch | null;
  readonly report: EpochReport | null;
  readonly disputes: readonly AutoDisputeOutcome[];
  readonly followUps: readonly FollowUp[];
  readonly epochReport: EpochReport | null;
}

export class ReconcilerService {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly options: ReconcilerServiceOptions) {}

  start(): void {
    const lease = this.options.lease;
    lease?.start();
    const loop = async () => {
      if (this.stopped) return;
      if (lease !== undefined && !(lease.held || (await lease.acquire().catch(() => false)))) {
        // standby: look again at the lease's pace, so a takeover does not wait a whole interval
        if (!this.stopped) this.timer = setTimeout(() => void loop(), lease.renewMs);
        return;
      }
      this.options.onPassStart?.();
      this.running = this.pass()
        .then((result) => {
          this.options.events?.pass("ok", result.disputes.filter((d) => d.result === "disputed").length);
        })
        .catch((error: unknown) => {
          if (error instanceof FencedError) {
            this.options.logger?.warn({ err: error.message }, "another reconciler took the lease over: this pass stopped; standing by");
            return;
          }
          this.options.events?.pass("failed", 0);
          this.options.logger?.error({ err: { name: (error as Error).name, message: (error as Error).message } }, "reconciler pass failed; retried next interval");
        });
      await this.running;
      this.running = null;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.options.intervalMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
    await this.options.lease?.release().catch(() => undefined);
  }

  /** Throws FencedError when a lease is used and this process no longer holds it (checked before each phase). */
  private holding(): void {
    const lease = this.options.lease;
    if (lease !== undefined && !lease.held) throw new FencedError(`the reconciler lease ${lease.key} is no longer held by this process`);
  }

  async pass(): Promise<PassResult> {
    const { reconciler, disputer, ledger, logger } = this.options;
    const chain = reconciler.options.chain;
    const now = (await chain.provider.getBlock("latest"))?.timestamp ?? Math.floor(Date.now() / 1000);
    const due = now - this.options.reportDelaySeconds;

    let cursor = await ledger.getNumber("cursor");
    if (cursor === null) {
      // First run: nothing settled before the longest open window can still be disputed.
      cursor = due - Number(await chain.router.disputeWindow());
      logger?.info({ from: new Date(cursor * 1000).toISOString() }, "reconciler starts with the batches still in their dispute window");
    }
    let window: Epoch | null = null;
    let report: EpochReport | null = null;
    let disputes: AutoDisputeOutcome[] = [];
    if (due > cursor) {
      window = { start: cursor, end: due };
      report = await reconciler.reconcile(window);
      for (const finding of report.findings) logger?.warn({ window: formatEpoch(window) }, finding);
      this.holding();
      disputes = await disputer.act(report.intervals);
      for (const outcome of disputes) {
        if (outcome.result === "disputed") {
          logger?.info({ ...outcome.key, disputeId: outcome.disputeId, tx: outcome.txHash, request: outcome.requestId, note: outcome.note }, "overcharged interval disputed");
        }
      }
      // Intervals whose provider report failed are checked again next pass while a row of them can be held.
      const retry = report.intervals.filter((i) => i.status === "report-failed" && i.heldAmount > 0n).map((i) => i.settledAt);
      await ledger.setNumber("cursor", retry.length === 0 ? due : Math.min(...retry));
    }

    const [arbiter, governance] = await Promise.all([chain.router.arbiterTimeout(), chain.router.governanceTimeout()]);
    this.holding();
    const followUps = await disputer.followUp(now - Number(arbiter + governance) - 86_400);

    let epochReport: EpochReport | null = null;
    const last = epochOf(due, this.options.epochSeconds);
    const previous = { start: last.start - this.options.epochSeconds, end: last.start };
    const reported = await ledger.getNumber("epoch");
    if (reported === null) {
      await ledger.setNumber("epoch", previous.start);
    } else if (reported < previous.start) {
      epochReport = await reconciler.reconcile(previous);
      logger?.info({ epoch: formatEpoch(previous), summary: formatReport(epochReport) }, "epoch reconciled");
      await ledger.setNumber("epoch", previous.start);
    }
    return { window, report, disputes, followUps, epochReport };
  }
}
