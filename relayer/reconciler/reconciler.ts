/**
 * The reconciler of one chain: per epoch, every batch settled in it (BatchSettled logs in the epoch's blocks), its
 * rows as submitted (settlement calldata), checked against the receipts archive and against each provider's own
 * usage report (a `UsageAdapter` per provider), summed per provider. It only reads; `AutoDisputer` acts on what it
 * finds.
 *
 * Two comparisons with providers:
 * - per row, over the window the UsageOracle will ask about ([settledAt - usageLookback, settledAt)): this predicts
 *   the oracle's verdict exactly (`oracleRefund`), so a row is only marked "overcharged" when a dispute would win;
 * - per provider, the sum of the rows against the provider's report over each (payer, model)'s span of those
 *   windows. Usage of neighbouring batches inside a window can only raise the provider's figure, so a window never
 *   invents an overcharge; it can hide one, which the per-row check then shows as "short" or not at all.
 */
import { getAddress } from "ethers";
import type { Logger } from "pino";

import { loadBatchFile, type BatchFileSources } from "../disputes/batch-source.js";
import type { BlockClock } from "../disputes/block-clock.js";
import type { DisputeChain } from "../disputes/dispute-chain.js";
import { DisputeError } from "../disputes/errors.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "../disputes/logs.js";
import { decodeSettlementLogs, settlementTopics, submittedCharges, type SettledBatch } from "../disputes/settled-batch.js";
import { checkArchive, type ArchiveCheck } from "./archive-check.js";
import type { Epoch } from "./epoch.js";
import { mapLimit } from "./map-limit.js";
import { beyondTolerance, oracleRefund } from "./refund.js";
import type { BatchCheck, DisputeMark, EpochReport, ProviderLine, ProviderStatus, RowCheck, RowStatus } from "./report.js";
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
  /** a row is "overcharged" (worth a dispute) only when the oracle's refund would be at least this */
  readonly minRefund: bigint;
  /** seconds; used only when the chain has no UsageOracle (else the oracle's `usageLookback`) */
  readonly usageLookback?: number | undefined;
  readonly logChunkBlocks?: number | undefined;
  /** provider queries and chain reads in flight (default 4) */
  readonly concurrency?: number | undefined;
  readonly logger?: Logger | undefined;
}

interface ScannedBatch {
  readonly batch: SettledBatch;
  readonly archive: ArchiveCheck;
  readonly location: string | null;
  readonly closesAt: number | null;
}

const DEFAULT_LOOKBACK = 3600;

export class Reconciler {
  private readonly chunk: number;
  private readonly concurrency: number;
  private readonly names = new Map<string, Promise<string>>();

  constructor(readonly options: ReconcilerOptions) {
    this.chunk = options.logChunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS;
    this.concurrency = options.concurrency ?? 4;
  }

  /** Reconciles the batches settled in `epoch` (by the chain's block times). */
  async reconcile(epoch: Epoch): Promise<EpochReport> {
    const { chain } = this.options;
    const head = await chain.provider.getBlockNumber();
    const now = (await chain.provider.getBlock(head))?.timestamp ?? Math.floor(Date.now() / 1000);
    const range = await this.options.clock.blocksBetween(epoch.start, epoch.end, head);
    const [lookback, oracleTolerance] = await this.oracleParams();

    const batches = range === null ? [] : await this.scan(range.fromBlock, range.toBlock);
    const disputes = range === null ? new Map<string, { refund: bigint; resolved: boolean }>() : await this.disputes(range.fromBlock, epoch, head, batches);

    const drafts: Omit<RowCheck, "reported" | "reportError" | "shortfall" | "predictedRefund" | "status">[] = [];
    for (const { batch, archive, closesAt } of batches) {
      const charges = archive.charges;
      if (charges === null) continue;
      for (const [index, charge] of charges.entries()) {
        if (batch.rejected.has(index)) continue;
        const key = `${batch.batchId}:${index}`;
        const dispute = disputes.get(key);
        drafts.push({
          batchId: batch.batchId,
          index,
          settledAt: batch.settledAt,
          payer: getAddress(charge.user),
          provider: await this.providerName(charge.provider),
          providerId: charge.provider,
          model: await this.modelName(charge.model),
          modelId: charge.model,
          tokens: charge.tokens,
          amount: charge.amount,
          archive: archive.status === "ok" ? (archive.rows.get(index) ?? null) : null,
          window: { start: Math.max(batch.settledAt - lookback, 0), end: batch.settledAt },
          dispute: (dispute === undefined ? "none" : dispute.resolved ? "resolved" : "open") satisfies DisputeMark,
          refunded: dispute?.refund ?? 0n,
          disputable: closesAt !== null && now < closesAt,
          closesAt,
        });
      }
    }

    const reports = new Map<string, Promise<bigint>>();
    const ask = (query: UsageQuery): Promise<bigint> => {
      const key = `${query.provider}|${query.model}|${query.payer}|${query.start}|${query.end}`;
      let pending = reports.get(key);
      if (pending === undefined) {
        pending = this.options.adapterFor(query.provider)!.usage(query);
        pending.catch(() => undefined);
        reports.set(key, pending);
      }
      return pending;
    };

    const rows = await mapLimit(drafts, this.concurrency, async (draft): Promise<RowCheck> => {
      if (this.options.adapterFor(draft.provider) === undefined) {
        return { ...draft, reported: null, shortfall: 0n, predictedRefund: 0n, status: "no-report" };
      }
      try {
        const reported = await ask({ provider: draft.provider, model: draft.model, payer: draft.payer.toLowerCase(), ...draft.window });
        const shortfall = reported < draft.tokens ? draft.tokens - reported : 0n;
        const predictedRefund = oracleRefund(draft.amount, draft.tokens, reported, oracleTolerance);
        let status: RowStatus = "ok";
        if (shortfall > 0n && beyondTolerance(shortfall, draft.tokens, this.options.toleranceBps)) {
          status = predictedRefund > 0n && predictedRefund >= this.options.minRefund ? "overcharged" : "short";
        }
        return { ...draft, reported, shortfall, predictedRefund, status };
      } catch (error) {
        if (!(error instanceof UsageReportError)) throw error;
        return { ...draft, reported: null, reportError: error.message, shortfall: 0n, predictedRefund: 0n, status: "report-failed" };
      }
    });

    const providers = await this.providerLines(rows, batches, lookback, ask);
    const batchChecks = batches.map(({ batch, archive, location }): BatchCheck => ({
      batchId: batch.batchId,
      settledAt: batch.settledAt,
      block: batch.block,
      txHash: batch.txHash,
      rows: batch.rowCount,
      accepted: batch.acceptedCount,
      rejected: [...batch.rejected.entries()].sort((a, b) => a[0] - b[0]),
      escrowed: batch.escrowed,
      state: batch.state,
      rowsKnown: archive.charges !== null,
      archive: { status: archive.status, location, problems: archive.problems },
    }));
    return {
      chain: { name: this.options.chainName, chainId: chain.chainId, router: chain.routerAddress, oracle: chain.oracleAddress ?? null },
      epoch,
      at: now,
      token: chain.token.unit,
      toleranceBps: this.options.toleranceBps,
      usageLookback: lookback,
      batches: batchChecks,
      rows,
      providers,
      findings: findingsOf(batchChecks, rows, providers),
    };
  }

  /** The oracle's usage window and tolerance (the config's lookback and no tolerance without an oracle). */
  private async oracleParams(): Promise<[number, bigint]> {
    const oracle = this.options.chain.oracle;
    if (oracle === undefined) return [this.options.usageLookback ?? DEFAULT_LOOKBACK, 0n];
    const [lookback, tolerance] = await Promise.all([oracle.usageLookback(), oracle.toleranceBps()]);
    return [Number(lookback), tolerance];
  }

  /** Every batch settled in [fromBlock, toBlock], with its rows and its archive check. */
  private async scan(fromBlock: number, toBlock: number): Promise<ScannedBatch[]> {
    const { chain } = this.options;
    const topics = settlementTopics(chain);
    const logs = await getLogsChunked(
      chain.provider,
      { address: chain.routerAddress, topics: [[topics.batchSettled, topics.rowRejected]] },
      fromBlock,
      toBlock,
      this.chunk,
    );
    const byBatch = new Map<string, typeof logs>();
    for (const log of logs) {
      const id = log.topics[1]?.toLowerCase();
      if (id === undefined) continue;
      byBatch.set(id, [...(byBatch.get(id) ?? []), log]);
    }
    const ids = [...byBatch.keys()];
    const scanned = await mapLimit(ids, this.concurrency, async (batchId) => {
      const decoded = decodeSettlementLogs(chain, batchId, byBatch.get(batchId)!);
      if (decoded === null) return null; // a RowRejected without its BatchSettled: not a settlement of this range
      const info = await chain.router.batchInfo(batchId);
      const batch: SettledBatch = {
        ...decoded,
        settledAt: Number(info.settledAt),
        releaseAt: Number(info.releaseAt),
        state: Number(info.status) === 2 ? "released" : "escrowed",
        rowCount: Number(info.rowCount),
        acceptedCount: Number(info.acceptedCount),
      };
      const submitted = batch.txHash === null ? null : await submittedCharges(chain, batchId, batch.txHash);
      let file = null;
      let location: string | null = null;
      let problem: string | undefined;
      try {
        const loaded = await loadBatchFile(this.options.sources, { batchId, dataCid: batch.dataCid, chainId: chain.chainId, router: chain.routerAddress });
        file = loaded.file;
        location = loaded.location;
      } catch (error) {
        if (!(error instanceof DisputeError)) throw error;
        problem = error.message;
      }
      const archive = checkArchive(batch, submitted, file, problem);
      const closesAt = batch.state === "escrowed" ? safeSeconds(await chain.router.disputeClosesAt(batchId)) : null;
      if (archive.status !== "ok") this.options.logger?.warn({ batchId, problems: archive.problems }, "batch not backed by the archive");
      return { batch, archive, location, closesAt };
    });
    return scanned.filter((s): s is ScannedBatch => s !== null).sort((a, b) => (a.batch.block ?? 0) - (b.batch.block ?? 0));
  }

  /**
   * Disputes of the epoch's rows, from DisputeOpened/DisputeResolved logs: from the epoch's first block to when the
   * last of them must have ended (window + arbiter and governance timeouts after the epoch), or the head.
   */
  private async disputes(
    fromBlock: number,
    epoch: Epoch,
    head: number,
    batches: readonly ScannedBatch[],
  ): Promise<Map<string, { refund: bigint; resolved: boolean }>> {
    const out = new Map<string, { refund: bigint; resolved: boolean }>();
    if (batches.length === 0) return out;
    const { chain } = this.options;
    const [window, arbiter, governance] = await Promise.all([
      chain.router.disputeWindow(),
      chain.router.arbiterTimeout(),
      chain.router.governanceTimeout(),
    ]);
    const lastTime = epoch.end + Number(window + arbiter + governance) + 86_400;
    const toBlock = Math.min(head, (await this.options.clock.firstBlockAtOrAfter(lastTime, fromBlock, head)) - 1);
    const contract = chain.router.interface;
    const logs = await getLogsChunked(
      chain.provider,
      { address: chain.routerAddress, topics: [[contract.getEvent("DisputeOpened").topicHash, contract.getEvent("DisputeResolved").topicHash]] },
      fromBlock,
      Math.max(toBlock, fromBlock),
      this.chunk,
    );
    const ids = new Set(batches.map((b) => b.batch.batchId.toLowerCase()));
    for (const log of logs) {
      const parsed = contract.parseLog({ topics: [...log.topics], data: log.data });
      if (parsed === null) continue;
      const batchId = (parsed.args.getValue("batchId") as string).toLowerCase();
      if (!ids.has(batchId)) continue;
      const key = `${batchId}:${Number(parsed.args.getValue("index"))}`;
      if (parsed.name === "DisputeOpened") out.set(key, out.get(key) ?? { refund: 0n, resolved: false });
      if (parsed.name === "DisputeResolved") out.set(key, { refund: parsed.args.getValue("refund") as bigint, resolved: true });
    }
    return out;
  }

  private async providerLines(
    rows: readonly RowCheck[],
    batches: readonly ScannedBatch[],
    lookback: number,
    ask: (query: UsageQuery) => Promise<bigint>,
  ): Promise<ProviderLine[]> {
    const archiveOk = new Map(batches.map((b) => [b.batch.batchId, b.archive.status === "ok"]));
    const byProvider = new Map<string, RowCheck[]>();
    for (const row of rows) byProvider.set(row.provider, [...(byProvider.get(row.provider) ?? []), row]);
    const lines: ProviderLine[] = [];
    for (const [provider, list] of [...byProvider.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const tokens = sum(list.map((r) => r.tokens));
      const allArchived = list.every((r) => r.archive !== null && archiveOk.get(r.batchId) === true);
      let reported: bigint | null = null;
      let failed = false;
      if (this.options.adapterFor(provider) !== undefined) {
        // One query per (payer, model): the span of its rows' oracle windows.
        const spans = new Map<string, { payer: string; model: string; start: number; end: number }>();
        for (const r of list) {
          const key = `${r.payer.toLowerCase()}|${r.model}`;
          const span = spans.get(key);
          spans.set(key, {
            payer: r.payer.toLowerCase(),
            model: r.model,
            start: Math.min(span?.start ?? Number.MAX_SAFE_INTEGER, Math.max(r.settledAt - lookback, 0)),
            end: Math.max(span?.end ?? 0, r.settledAt),
          });
        }
        try {
          const figures = await mapLimit([...spans.values()], this.concurrency, (span) => ask({ provider, ...span }));
          reported = sum(figures);
        } catch (error) {
          if (!(error instanceof UsageReportError)) throw error;
          failed = true;
        }
      }
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
        rows: list.length,
        tokens,
        amount: sum(list.map((r) => r.amount)),
        archiveReceipts: allArchived ? list.reduce((n, r) => n + r.archive!.receipts, 0) : null,
        archiveTokens: allArchived ? sum(list.map((r) => r.archive!.tokens)) : null,
        archiveAmount: allArchived ? sum(list.map((r) => r.archive!.amount)) : null,
        reported,
        diffTokens,
        diffBps,
        overchargedRows: list.filter((r) => r.status === "overcharged").length,
        predictedRefund: sum(list.filter((r) => r.status === "overcharged").map((r) => r.predictedRefund)),
        disputed: list.filter((r) => r.dispute !== "none").length,
        refunded: sum(list.map((r) => r.refunded)),
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

/** Seconds as a number; "never" (the window waits for the L2 sequencer) as MAX_SAFE_INTEGER. */
function safeSeconds(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((a, b) => a + b, 0n);
}

function findingsOf(batches: readonly BatchCheck[], rows: readonly RowCheck[], providers: readonly ProviderLine[]): string[] {
  const out: string[] = [];
  for (const batch of batches) {
    if (batch.archive.status === "missing") out.push(`batch ${batch.batchId}: no batch file (${batch.archive.problems.join("; ")})`);
    if (batch.archive.status === "mismatch") out.push(`batch ${batch.batchId}: the archive does not back the chain: ${batch.archive.problems.join("; ")}`);
    if (!batch.rowsKnown) {
      out.push(`batch ${batch.batchId}: its ${batch.accepted} charged rows are left out of every total (not a direct settleBatch call, and no matching batch file)`);
    }
  }
  for (const row of rows) {
    const where = `batch ${row.batchId} row ${row.index} (${row.payer}, ${row.provider}/${row.model})`;
    if (row.status === "overcharged" || row.status === "short") {
      out.push(
        `${where}: billed ${row.tokens} tokens, the provider reports ${row.reported} ` +
          `(${row.shortfall} short); the oracle would refund ${row.predictedRefund} units` +
          (row.status === "short" ? " (below min_refund: not worth a dispute)" : "") +
          (row.dispute !== "none" ? `; dispute ${row.dispute}` : row.disputable ? "" : "; its dispute window is closed"),
      );
    }
    if (row.status === "report-failed") out.push(`${where}: ${row.reportError}`);
  }
  for (const line of providers) {
    if (line.status === "overcharged" || line.status === "undercharged") {
      out.push(`${line.provider}: settled ${line.tokens} tokens, the provider reports ${line.reported} (${line.status}, ${line.diffBps} bps)`);
    }
  }
  return out;
}
