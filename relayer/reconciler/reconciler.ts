/**
 * The reconciler of one chain: per epoch, every batch settled in it (BatchSettled logs in the epoch's blocks) checked
 * against the receipts archive, and every interval those batches bill, i.e. (payer, provider, model, usage bucket
 * committed on-chain as `callsFrom`), compared as the UsageOracle compares it: ALL the settled rows of that interval,
 * whatever batch and epoch settled them, against the provider's usage report for [callsFrom, callsTo). It predicts
 * the dispute's verdict exactly (tolerance, earlier refunds, what a dispute opened now would hold), so an interval is
 * only "overcharged" when a dispute would refund at least `minRefund`. It only reads; `AutoDisputer` acts.
 */
import { getAddress } from "ethers";
import type { Logger } from "pino";

import { loadBatchFile, type BatchFileSources } from "../disputes/batch-source.js";
import type { BlockClock } from "../disputes/block-clock.js";
import type { DisputeChain } from "../disputes/dispute-chain.js";
import { DisputeError } from "../disputes/errors.js";
import { intervalLabel, type IntervalKey } from "../disputes/interval.js";
import { batchRows, intervalRowsOf, scanSettledBatches, type BatchRows } from "../disputes/interval-rows.js";
import { submittedCharges, type SettledBatch } from "../disputes/settled-batch.js";
import { checkArchive, type ArchiveCheck } from "./archive-check.js";
import type { Epoch } from "./epoch.js";
import { mapLimit } from "./map-limit.js";
import { beyondTolerance, predictedRefund } from "./refund.js";
import type { BatchCheck, EpochReport, IntervalCheck, IntervalStatus, ProviderLine, ProviderStatus } from "./report.js";
import { UsageReportError, type UsageAdapter, type UsageQuery } from "./usage-adapter.js";

export interface ReconcilerOptions {
  readonly chain: DisputeChain;
  /** the relayer's name of the chain (the archive's folder) */
  readonly chainName: string;
  readonly clock: BlockClock;
  readonly sources: BatchFileSources;
  /** the usage adapter of an on-chain provider name (lowercase); undefined: no report for it */
  readonly adapterFor: (provider: string) => UsageAdapter | undefined;
  /** differences up to this share of the billed tokens are not reported (basis points) */
  readonly toleranceBps: number;
  /** an interval is "overcharged" (worth a dispute) only when the refund would be at least this */
  readonly minRefund: bigint;
  readonly logChunkBlocks?: number | undefined;
  /** provider queries and chain reads in flight (default 4) */
  readonly concurrency?: number | undefined;
  readonly logger?: Logger | undefined;
}

interface ScannedBatch extends BatchRows {
  readonly archive: ArchiveCheck;
  readonly inEpoch: boolean;
}

export class Reconciler {
  private readonly concurrency: number;
  private readonly names = new Map<string, Promise<string>>();

  constructor(readonly options: ReconcilerOptions) {
    this.concurrency = options.concurrency ?? 4;
  }

  /** Reconciles the batches settled in `epoch` (by the chain's block times) and every interval they bill. */
  async reconcile(epoch: Epoch): Promise<EpochReport> {
    const { chain } = this.options;
    const scan = { logChunkBlocks: this.options.logChunkBlocks, concurrency: this.concurrency };
    const head = await chain.provider.getBlockNumber();
    const now = (await chain.provider.getBlock(head))?.timestamp ?? Math.floor(Date.now() / 1000);
    const [bucket, oracleTolerance] = await Promise.all([chain.router.usageBucket().then(Number), this.oracleTolerance()]);

    const inEpoch = await scanSettledBatches(chain, this.options.clock, epoch.start, undefined, { ...scan, toTime: epoch.end });
    const epochIds = new Set(inEpoch.map((b) => b.batchId));
    const buckets = new Set(inEpoch.map((b) => b.callsFrom));
    // Every batch of those buckets, whenever settled (a late batch bills the same interval).
    const related = buckets.size === 0 ? [] : await scanSettledBatches(chain, this.options.clock, Math.min(...buckets), buckets, scan);
    const byId = new Map<string, SettledBatch>([...inEpoch, ...related].map((b) => [b.batchId, b]));
    const batches = await mapLimit([...byId.values()], this.concurrency, (batch) => this.readBatch(batch, epochIds.has(batch.batchId)));
    batches.sort((a, b) => (a.batch.block ?? 0) - (b.batch.block ?? 0));

    const intervals = await this.intervals(batches, bucket, now, oracleTolerance);
    const providers = this.providerLines(intervals, batches);
    const batchChecks = batches.filter((b) => b.inEpoch).map(({ batch, archive, location, charges }): BatchCheck => ({
      batchId: batch.batchId,
      settledAt: batch.settledAt,
      callsFrom: batch.callsFrom,
      block: batch.block,
      txHash: batch.txHash,
      rows: batch.rowCount,
      accepted: batch.acceptedCount,
      rejected: [...batch.rejected.entries()].sort((a, b) => a[0] - b[0]),
      escrowed: batch.escrowed,
      state: batch.state,
      rowsKnown: charges !== null,
      archive: { status: archive.status, location, problems: archive.problems },
    }));
    return {
      chain: { name: this.options.chainName, chainId: chain.chainId, router: chain.routerAddress, oracle: chain.oracleAddress ?? null },
      epoch,
      at: now,
      token: chain.token.unit,
      toleranceBps: this.options.toleranceBps,
      oracleToleranceBps: Number(oracleTolerance),
      usageBucket: bucket,
      batches: batchChecks,
      intervals,
      providers,
      findings: findingsOf(batchChecks, intervals, providers),
    };
  }

  /** The oracle's tolerance (0 without an oracle: governance is asked for the exact figure). */
  private async oracleTolerance(): Promise<bigint> {
    const oracle = this.options.chain.oracle;
    return oracle === undefined ? 0n : oracle.toleranceBps();
  }

  /** A batch's rows (calldata, else its file) and its archive check. */
  private async readBatch(batch: SettledBatch, inEpoch: boolean): Promise<ScannedBatch> {
    const { chain, sources } = this.options;
    const rows = await batchRows(chain, sources, batch);
    const submitted = rows.source === "calldata" ? rows.charges : batch.txHash === null ? null : await submittedCharges(chain, batch.batchId, batch.txHash);
    let file = null;
    let location = rows.source === "calldata" ? null : rows.location;
    let problem: string | undefined;
    try {
      const loaded = await loadBatchFile(sources, { batchId: batch.batchId, dataCid: batch.dataCid, chainId: chain.chainId, router: chain.routerAddress });
      file = loaded.file;
      location = loaded.location;
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      problem = error.message;
    }
    const archive = checkArchive(batch, submitted, file, problem);
    if (archive.status !== "ok") this.options.logger?.warn({ batchId: batch.batchId, problems: archive.problems }, "batch not backed by the archive");
    return { ...rows, archive, location, inEpoch };
  }

  /** Every interval with a row in the epoch's batches, with all its rows, against the provider's report. */
  private async intervals(batches: readonly ScannedBatch[], bucket: number, now: number, oracleTolerance: bigint): Promise<IntervalCheck[]> {
    const { chain } = this.options;
    const keys = new Map<string, { key: IntervalKey; settledAt: number }>();
    for (const { batch, charges, inEpoch } of batches) {
      if (!inEpoch || charges === null) continue;
      for (const [index, charge] of charges.entries()) {
        if (batch.rejected.has(index)) continue;
        const key = { payer: getAddress(charge.user), provider: charge.provider, model: charge.model, callsFrom: batch.callsFrom };
        const label = intervalLabel(key);
        const seen = keys.get(label);
        keys.set(label, { key, settledAt: Math.min(seen?.settledAt ?? Number.MAX_SAFE_INTEGER, batch.settledAt) });
      }
    }
    const archiveOf = new Map(batches.map((b) => [b.batch.batchId, b.archive]));
    const epochOf = new Map(batches.map((b) => [b.batch.batchId, b.inEpoch]));
    const checks = await mapLimit([...keys.values()], this.concurrency, async ({ key, settledAt }): Promise<IntervalCheck> => {
      const same = batches.filter((b) => b.batch.callsFrom === key.callsFrom);
      const rowsUnknown = same.some((b) => b.charges === null);
      const rows = await intervalRowsOf(chain, same.filter((b) => b.charges !== null), key, now);
      const info = await chain.router.intervalInfo(key.payer, key.provider, key.model, key.callsFrom);
      const provider = await this.providerName(key.provider);
      const model = await this.modelName(key.model);
      const held = rows.filter((r) => r.holdable);
      const totals = {
        billedTokens: sum(rows.map((r) => r.charge.tokens)),
        heldTokens: sum(held.map((r) => r.charge.tokens)),
        heldAmount: sum(held.map((r) => r.charge.amount)),
        priorRefundedTokens: info.refundedTokens,
      };
      const openDispute = /^0x0+$/.test(info.openDispute) ? null : info.openDispute.toLowerCase();
      const base = {
        payer: key.payer,
        provider,
        providerId: key.provider,
        model,
        modelId: key.model,
        callsFrom: key.callsFrom,
        callsTo: key.callsFrom + bucket,
        rows: rows.map((r) => {
          const archive = archiveOf.get(r.batchId);
          return {
            batchId: r.batchId,
            index: r.index,
            tokens: r.charge.tokens,
            amount: r.charge.amount,
            inEpoch: epochOf.get(r.batchId) === true,
            holdable: r.holdable,
            heldBy: r.heldBy,
            archive: archive?.status === "ok" ? (archive.rows.get(r.index) ?? null) : null,
          };
        }),
        billedTokens: totals.billedTokens,
        billedAmount: sum(rows.map((r) => r.charge.amount)),
        heldTokens: totals.heldTokens,
        heldAmount: totals.heldAmount,
        refundedTokens: info.refundedTokens,
        openDispute,
        disputes: Number(info.disputes),
        settledAt,
      };
      const adapter = this.options.adapterFor(provider);
      if (adapter === undefined) return { ...base, reported: null, excess: 0n, predictedOverbilled: 0n, predictedRefund: 0n, status: "no-report" };
      let reported: bigint;
      try {
        reported = await adapter.usage({ provider, model, payer: key.payer.toLowerCase(), start: key.callsFrom, end: key.callsFrom + bucket } satisfies UsageQuery);
      } catch (error) {
        if (!(error instanceof UsageReportError)) throw error;
        return { ...base, reported: null, reportError: error.message, excess: 0n, predictedOverbilled: 0n, predictedRefund: 0n, status: "report-failed" };
      }
      const excess = totals.billedTokens > reported ? totals.billedTokens - reported : 0n;
      const verdict = predictedRefund(totals, reported, oracleTolerance);
      // what earlier disputes refunded is settled: only the rest of the excess is still owed to the payer
      const unrefunded = excess > info.refundedTokens ? excess - info.refundedTokens : 0n;
      let status: IntervalStatus = "ok";
      if (unrefunded > 0n && beyondTolerance(unrefunded, totals.billedTokens, this.options.toleranceBps)) {
        status = !rowsUnknown && verdict.refund > 0n && verdict.refund >= this.options.minRefund ? "overcharged" : "short";
      }
      return { ...base, reported, excess, predictedOverbilled: verdict.overbilled, predictedRefund: verdict.refund, status };
    });
    return checks.sort((a, b) => a.callsFrom - b.callsFrom || cmp(a.provider, b.provider) || cmp(a.model, b.model) || cmp(a.payer, b.payer));
  }

  private providerLines(intervals: readonly IntervalCheck[], batches: readonly ScannedBatch[]): ProviderLine[] {
    const archiveOk = new Map(batches.map((b) => [b.batch.batchId, b.archive.status === "ok"]));
    const byProvider = new Map<string, IntervalCheck[]>();
    for (const interval of intervals) byProvider.set(interval.provider, [...(byProvider.get(interval.provider) ?? []), interval]);
    const lines: ProviderLine[] = [];
    for (const [provider, list] of [...byProvider.entries()].sort(([a], [b]) => cmp(a, b))) {
      const rows = list.flatMap((i) => i.rows);
      const tokens = sum(list.map((i) => i.billedTokens));
      const allArchived = rows.every((r) => r.archive !== null && archiveOk.get(r.batchId) === true);
      const failed = list.some((i) => i.status === "report-failed");
      const noReport = list.some((i) => i.status === "no-report");
      const reported = failed || noReport ? null : sum(list.map((i) => i.reported ?? 0n));
      const diffTokens = reported === null ? null : tokens - reported;
      const diffBps = diffTokens === null || tokens === 0n ? null : Number((diffTokens * 10_000n) / tokens);
      let status: ProviderStatus = "ok";
      if (!allArchived) status = "archive-mismatch";
      else if (failed) status = "report-failed";
      else if (diffTokens === null) status = "no-report";
      else if (diffTokens > 0n && beyondTolerance(diffTokens, tokens, this.options.toleranceBps)) status = "overcharged";
      else if (diffTokens < 0n && beyondTolerance(-diffTokens, tokens, this.options.toleranceBps)) status = "undercharged";
      lines.push({
        provider,
        intervals: list.length,
        rows: rows.length,
        tokens,
        amount: sum(list.map((i) => i.billedAmount)),
        archiveReceipts: allArchived ? rows.reduce((n, r) => n + r.archive!.receipts, 0) : null,
        archiveTokens: allArchived ? sum(rows.map((r) => r.archive!.tokens)) : null,
        archiveAmount: allArchived ? sum(rows.map((r) => r.archive!.amount)) : null,
        reported,
        diffTokens,
        diffBps,
        overchargedIntervals: list.filter((i) => i.status === "overcharged").length,
        predictedRefund: sum(list.filter((i) => i.status === "overcharged").map((i) => i.predictedRefund)),
        disputed: list.filter((i) => i.disputes > 0).length,
        refundedTokens: sum(list.map((i) => i.refundedTokens)),
        status,
      });
    }
    return lines;
  }

  private providerName(id: number): Promise<string> {
    return this.name(`p${id}`, async () => (await this.options.chain.router.providerInfo(id)).name.toLowerCase());
  }

  private modelName(id: number): Promise<string> {
    return this.name(`m${id}`, async () => (await this.options.chain.router.modelInfo(id)).name);
  }

  private name(key: string, load: () => Promise<string>): Promise<string> {
    let pending = this.names.get(key);
    if (pending === undefined) {
      pending = load();
      this.names.set(key, pending);
    }
    return pending;
  }
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((a, b) => a + b, 0n);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function findingsOf(batches: readonly BatchCheck[], intervals: readonly IntervalCheck[], providers: readonly ProviderLine[]): string[] {
  const out: string[] = [];
  for (const batch of batches) {
    if (batch.archive.status === "missing") out.push(`batch ${batch.batchId}: no batch file (${batch.archive.problems.join("; ")})`);
    if (batch.archive.status === "mismatch") out.push(`batch ${batch.batchId}: the archive does not back the chain: ${batch.archive.problems.join("; ")}`);
    if (!batch.rowsKnown) {
      out.push(`batch ${batch.batchId}: its ${batch.accepted} charged rows are left out of every total (not a direct settlement call, and no matching batch file)`);
    }
  }
  for (const i of intervals) {
    const where = `${i.payer} on ${i.provider}/${i.model}, calls from ${iso(i.callsFrom)} to ${iso(i.callsTo)}`;
    if (i.status === "overcharged" || i.status === "short") {
      const batches = new Set(i.rows.map((r) => r.batchId)).size;
      out.push(
        `${where}: billed ${i.billedTokens} tokens in ${i.rows.length} row(s) of ${batches} batch(es), the provider reports ${i.reported} ` +
          `(${i.excess} over); a dispute now would find ${i.predictedOverbilled} overbilled and refund ${i.predictedRefund} units` +
          (i.refundedTokens > 0n ? ` (${i.refundedTokens} tokens refunded before)` : "") +
          (i.openDispute !== null ? `; dispute ${i.openDispute} is open` : i.heldAmount === 0n ? "; no row can be held any more" : "") +
          (i.status === "short" && i.openDispute === null && i.heldAmount > 0n ? " (below min_refund, or a batch's rows are unknown: not disputed)" : ""),
      );
    }
    if (i.status === "report-failed") out.push(`${where}: ${i.reportError}`);
  }
  for (const line of providers) {
    if (line.status === "overcharged" || line.status === "undercharged") {
      out.push(`${line.provider}: billed ${line.tokens} tokens, the provider reports ${line.reported} (${line.status}, ${line.diffBps} bps)`);
    }
  }
  return out;
}
