/**
 * The monitor's figures, computed from a Snapshot (pure: no I/O). Per group (provider, model, payer or route):
 *   settled    requests, cost and latency of the rows the chain charged and nobody disputes now: each row's amount,
 *              or for a resolved dispute what went to the provider (amount - refund)
 *   pending    requests and priced amount (exact, in thousandths of a unit: rows round up to a whole unit when
 *              batched) of receipts the chain has not settled: in ingest's queue, the batcher's pool, or sealed
 *              batches not yet settled
 *   inDispute  rows under an open dispute: their amounts stay in escrow until resolved
 *   rejected   rows the contract refused (RowRejected), by reason: nothing was charged
 *   refunded   what resolved disputes returned to payers
 * None of the last four is ever part of `settled`. Escrow is split the same way for the window's batches:
 * escrowed = held + released + inDispute + disputePaid + refunded, exactly.
 *
 * A settled batch whose file is not in the archive (or does not add up to what the chain escrowed) cannot be split
 * by row: its amounts appear under the group "(no batch file)".
 */
import type { TokenUnit } from "../config/index.js";
import type { UnbillableReason } from "../queue/index.js";
import type { RejectReasonName } from "../settler/outcome.js";
import type { ModelBudget } from "./budgets.js";
import type { ChainSnapshot, PayerBudgetOnChain, Snapshot } from "./collector.js";
import type { Granularity } from "./options.js";
import type { PayoutFigures } from "./payouts.js";
import type { UsageLine } from "./usage-lines.js";

export const NO_BATCH_FILE = "(no batch file)";

export interface GroupFigures {
  readonly key: string;
  readonly settled: { requests: number; amount: bigint; latencyMsTotal: number };
  readonly pending: { requests: number; amountMilli: bigint };
  readonly inDispute: { rows: number; requests: number; amount: bigint };
  readonly rejected: { rows: number; requests: number; amount: bigint; reasons: Partial<Record<RejectReasonName, number>> };
  refunded: bigint;
}

export interface EscrowFigures {
  /** Σ BatchSettled.escrowed of the window's batches (of the payer's rows, with a payer filter) */
  escrowed: bigint;
  /** still in escrow, not disputed (window open, or not yet released) */
  held: bigint;
  /** released to provider credits (BatchReleased) */
  released: bigint;
  /** under an open dispute */
  inDispute: bigint;
  /** disputes resolved: the provider's part */
  disputePaid: bigint;
  /** disputes resolved: returned to payers */
  refunded: bigint;
}

export interface QueueFigures {
  readonly ingestChunks: number;
  /** false when more chunks wait than were read: the pending figures are then a lower bound */
  readonly complete: boolean;
  readonly ingestRequests: number;
  /** epoch ms */
  readonly ingestOldestAt: number | null;
  readonly poolRequests: number;
  readonly poolOldestAt: number | null;
  /** sealed batches the chain has not settled */
  readonly batches: number;
  readonly batchRequests: number;
  readonly oldestBatchAt: number | null;
  /** of those, batches the settler marked blocked */
  readonly blocked: number;
  /**
   * batches the router refused for good because another batch id had settled their receipts root (so their receipts
   * are charged there), and their receipts; from the settlers' counters. Never pending, never settled by these ids.
   */
  readonly refused: { readonly batches: number; readonly receipts: number };
}

export interface RecentBatch {
  readonly chain: string;
  readonly batchId: string;
  /** escrowed / released once settled; else the relayer's state (sealed, queued, signed, sent, mined, blocked) */
  readonly state: string;
  /** unix seconds (block time), null while pending */
  readonly settledAt: number | null;
  /** epoch ms: sealed or submitted, for pending batches */
  readonly since: number | null;
  readonly requests: number | null;
  readonly rows: number | null;
  readonly acceptedRows: number | null;
  readonly rejectedRows: number | null;
  /** units: escrowed when settled, the rows' sum while pending */
  readonly amount: bigint;
  readonly released: bigint | null;
  readonly inDispute: bigint;
  readonly txHash: string | null;
  readonly block: number | null;
  readonly cid: string;
  /** unix seconds: when the dispute window closes */
  readonly releaseAt: number | null;
  /** unix seconds: start of the usage bucket of the batch's calls (the interval a dispute names); null without it */
  readonly callsFrom: number | null;
}

export type BudgetFigures =
  | { readonly kind: "models"; readonly remaining: bigint | null; readonly models: ReadonlyArray<ModelBudget & { chain: string }> }
  | { readonly kind: "user"; readonly user: string; readonly remaining: bigint; readonly chains: readonly PayerBudgetOnChain[] };

export interface SeriesFigures {
  readonly bucketMs: number;
  /** bucket starts, unix seconds */
  readonly starts: readonly number[];
  readonly groups: ReadonlyArray<{ key: string; amount: bigint[]; requests: number[]; latencyMsTotal: number[] }>;
  readonly total: { amount: bigint[]; requests: number[]; latencyMsTotal: number[] };
}

export interface UsageReport {
  /** epoch ms */
  readonly generatedAt: number;
  /** "08-FEB-2025": the UTC day of the chain's head (the day budgets count) */
  readonly date: string;
  readonly granularity: Granularity;
  readonly windowMs: number;
  /** window start and end, unix seconds (chain time), null when no chain was read */
  readonly from: number | null;
  readonly to: number | null;
  readonly token: TokenUnit;
  readonly user: string | null;
  readonly chains: ReadonlyArray<{
    name: string;
    chainId: number | null;
    router: string | null;
    head: number | null;
    fromBlock: number | null;
    offline: boolean;
    error: string | null;
  }>;
  readonly groups: readonly GroupFigures[];
  readonly total: GroupFigures;
  readonly escrow: EscrowFigures;
  /** per chain read, in its router's payment token (router-wide, whatever the payer filter) */
  readonly payouts: ReadonlyArray<ChainPayouts>;
  readonly queue: QueueFigures;
  readonly unbillable: Readonly<Record<UnbillableReason, number>>;
  readonly budget: BudgetFigures;
  readonly batches: readonly RecentBatch[];
  readonly series: SeriesFigures;
  /** settled batches whose rows could not be read from the archive */
  readonly unattributedBatches: number;
}

/** Where one router's charged money stands (monitor/payouts.ts): four parts that do not overlap. */
export interface ChainPayouts extends PayoutFigures {
  readonly chain: string;
  /** the token's symbol */
  readonly token: string;
}

export interface ReportOptions {
  readonly granularity: Granularity;
  /** only this payer's rows and receipts */
  readonly user?: string | undefined;
  /** the payer's budgets (collector.payerBudgets), with `user` */
  readonly payerBudgets?: readonly PayerBudgetOnChain[] | undefined;
  /** recent batches listed (default 20) */
  readonly recentBatches?: number;
}

const BUCKETS_MS = [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000];
const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

export function keyOf(line: UsageLine, granularity: Granularity): string {
  switch (granularity) {
    case "provider":
      return line.provider;
    case "model":
      return line.model;
    case "user":
      return line.user;
    case "route":
      return line.routes.join("+");
  }
}

function emptyGroup(key: string): GroupFigures {
  return {
    key,
    settled: { requests: 0, amount: 0n, latencyMsTotal: 0 },
    pending: { requests: 0, amountMilli: 0n },
    inDispute: { rows: 0, requests: 0, amount: 0n },
    rejected: { rows: 0, requests: 0, amount: 0n, reasons: {} },
    refunded: 0n,
  };
}

/** "08-FEB-2025" for a unix time (UTC). */
export function usageDate(unixSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  return `${String(date.getUTCDate()).padStart(2, "0")}-${MONTHS[date.getUTCMonth()]}-${date.getUTCFullYear()}`;
}

export function bucketSizeFor(windowMs: number): number {
  return BUCKETS_MS.find((size) => windowMs / size <= 48) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
}

export function buildReport(snapshot: Snapshot, options: ReportOptions): UsageReport {
  const { granularity } = options;
  const user = options.user?.toLowerCase();
  const mine = (line: { user: string }) => user === undefined || line.user.toLowerCase() === user;
  const groups = new Map<string, GroupFigures>();
  const group = (key: string) => {
    let found = groups.get(key);
    if (found === undefined) groups.set(key, (found = emptyGroup(key)));
    return found;
  };
  const escrow: EscrowFigures = { escrowed: 0n, held: 0n, released: 0n, inDispute: 0n, disputePaid: 0n, refunded: 0n };

  const windows = snapshot.chains.flatMap((chain) => (chain.window === null ? [] : [chain.window]));
  const from = windows.length === 0 ? null : Math.min(...windows.map((w) => w.fromTime));
  const to = windows.length === 0 ? null : Math.max(...windows.map((w) => w.headTime));
  const bucketMs = bucketSizeFor(snapshot.windowMs);
  const bucketS = bucketMs / 1000;
  const firstStart = from === null ? 0 : Math.floor(from / bucketS) * bucketS;
  const starts: number[] = [];
  if (from !== null && to !== null) for (let t = firstStart; t <= to; t += bucketS) starts.push(t);
  const series = new Map<string, { amount: bigint[]; requests: number[]; latencyMsTotal: number[] }>();
  const total = { amount: starts.map(() => 0n), requests: starts.map(() => 0), latencyMsTotal: starts.map(() => 0) };
  const plot = (key: string, at: number, amount: bigint, requests: number, latency: number) => {
    const i = Math.min(starts.length - 1, Math.max(0, Math.floor((at - firstStart) / bucketS)));
    if (starts.length === 0) return;
    let line = series.get(key);
    if (line === undefined) series.set(key, (line = { amount: starts.map(() => 0n), requests: starts.map(() => 0), latencyMsTotal: starts.map(() => 0) }));
    line.amount[i]! += amount;
    line.requests[i]! += requests;
    line.latencyMsTotal[i]! += latency;
    total.amount[i]! += amount;
    total.requests[i]! += requests;
    total.latencyMsTotal[i]! += latency;
  };

  const recent: RecentBatch[] = [];
  let unattributed = 0;
  for (const chain of snapshot.chains) {
    for (const { batch, lines } of chain.settled) {
      const accepted = lines?.rows.filter((row) => !batch.rejected.has(row.index)) ?? null;
      const consistent = accepted !== null && accepted.reduce((sum, row) => sum + row.amount, 0n) === batch.escrowed;
      let batchDispute = 0n;
      if (!consistent) {
        unattributed += 1;
        if (user === undefined) {
          const g = group(NO_BATCH_FILE);
          let disputed = 0n;
          for (const dispute of batch.disputes.values()) {
            disputed += dispute.amount;
            if (dispute.resolved === null) {
              g.inDispute.rows += 1;
              g.inDispute.amount += dispute.amount;
              escrow.inDispute += dispute.amount;
              batchDispute += dispute.amount;
            } else {
              g.settled.amount += dispute.resolved.toProvider;
              g.refunded += dispute.resolved.refund;
              escrow.disputePaid += dispute.resolved.toProvider;
              escrow.refunded += dispute.resolved.refund;
            }
          }
          g.settled.amount += batch.escrowed - disputed;
          g.rejected.rows += batch.rejected.size;
          for (const reason of batch.rejected.values()) g.rejected.reasons[reason] = (g.rejected.reasons[reason] ?? 0) + 1;
          escrow.escrowed += batch.escrowed;
          if (batch.released !== null) escrow.released += batch.released.amount;
          else escrow.held += batch.escrowed - disputed;
          plot(NO_BATCH_FILE, batch.settledAt, batch.escrowed - disputed, 0, 0);
        }
      } else {
        for (const row of lines!.rows) {
          if (!mine(row)) continue;
          const key = keyOf(row, granularity);
          const g = group(key);
          const reason = batch.rejected.get(row.index);
          if (reason !== undefined) {
            g.rejected.rows += 1;
            g.rejected.requests += row.requests;
            g.rejected.amount += row.amount;
            g.rejected.reasons[reason] = (g.rejected.reasons[reason] ?? 0) + 1;
            continue;
          }
          escrow.escrowed += row.amount;
          const dispute = batch.disputes.get(row.index);
          if (dispute !== undefined && dispute.resolved === null) {
            g.inDispute.rows += 1;
            g.inDispute.requests += row.requests;
            g.inDispute.amount += dispute.amount;
            escrow.inDispute += dispute.amount;
            batchDispute += dispute.amount;
            continue;
          }
          const paid = dispute === undefined ? row.amount : dispute.resolved!.toProvider;
          if (dispute !== undefined) {
            g.refunded += dispute.resolved!.refund;
            escrow.refunded += dispute.resolved!.refund;
            escrow.disputePaid += paid;
          } else if (batch.released !== null) {
            escrow.released += paid;
          } else {
            escrow.held += paid;
          }
          g.settled.requests += row.requests;
          g.settled.amount += paid;
          g.settled.latencyMsTotal += row.latencyMsTotal;
          plot(key, batch.settledAt, paid, row.requests, row.latencyMsTotal);
        }
      }
      const mineRows = lines?.rows.filter(mine) ?? [];
      if (user === undefined || mineRows.length > 0) {
        recent.push({
          chain: chain.name,
          batchId: batch.batchId,
          state: batch.released === null ? "escrowed" : "released",
          settledAt: batch.settledAt,
          since: lines?.sealedAt ?? null,
          requests: lines?.requests ?? null,
          rows: batch.acceptedRows + batch.rejectedRows,
          acceptedRows: batch.acceptedRows,
          rejectedRows: batch.rejectedRows,
          amount: batch.escrowed,
          released: batch.released?.amount ?? null,
          inDispute: consistent ? batchDispute : [...batch.disputes.values()].reduce((sum, d) => sum + (d.resolved === null ? d.amount : 0n), 0n),
          txHash: batch.txHash,
          block: batch.block,
          cid: batch.dataCid,
          releaseAt: batch.releaseAt,
          callsFrom: batch.callsFrom,
        });
      }
    }

    const addPending = (lines: readonly UsageLine[]) => {
      for (const line of lines) {
        if (!mine(line)) continue;
        const g = group(keyOf(line, granularity));
        g.pending.requests += line.requests;
        g.pending.amountMilli += line.amountMilli;
      }
    };
    addPending(chain.pending.ingest.lines);
    addPending(chain.pending.pool.lines);
    for (const { candidate, lines } of chain.pending.batches) {
      if (lines !== null) addPending(lines.rows);
      else if (user === undefined) {
        const g = group(NO_BATCH_FILE);
        g.pending.requests += candidate.receipts;
        g.pending.amountMilli += candidate.amount * 1000n;
      }
      if (user === undefined || (lines?.rows.some(mine) ?? false)) {
        recent.push({
          chain: chain.name,
          batchId: candidate.batchId,
          state: candidate.state,
          settledAt: null,
          since: candidate.since,
          requests: candidate.receipts,
          rows: candidate.rows,
          acceptedRows: null,
          rejectedRows: null,
          amount: candidate.amount,
          released: null,
          inDispute: 0n,
          txHash: candidate.txHash,
          block: null,
          cid: candidate.cid,
          releaseAt: null,
          callsFrom: lines?.callsFrom ?? null,
        });
      }
    }
  }

  const sorted = [...groups.values()].sort(
    (a, b) => compareBig(b.settled.amount, a.settled.amount) || compareBig(b.pending.amountMilli, a.pending.amountMilli) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
  const totalGroup = emptyGroup("TOTAL");
  for (const g of sorted) {
    totalGroup.settled.requests += g.settled.requests;
    totalGroup.settled.amount += g.settled.amount;
    totalGroup.settled.latencyMsTotal += g.settled.latencyMsTotal;
    totalGroup.pending.requests += g.pending.requests;
    totalGroup.pending.amountMilli += g.pending.amountMilli;
    totalGroup.inDispute.rows += g.inDispute.rows;
    totalGroup.inDispute.requests += g.inDispute.requests;
    totalGroup.inDispute.amount += g.inDispute.amount;
    totalGroup.rejected.rows += g.rejected.rows;
    totalGroup.rejected.requests += g.rejected.requests;
    totalGroup.rejected.amount += g.rejected.amount;
    for (const [reason, count] of Object.entries(g.rejected.reasons) as [RejectReasonName, number][]) {
      totalGroup.rejected.reasons[reason] = (totalGroup.rejected.reasons[reason] ?? 0) + count;
    }
    totalGroup.refunded += g.refunded;
  }

  recent.sort((a, b) => timeOf(b) - timeOf(a));
  return {
    generatedAt: snapshot.takenAt,
    date: usageDate(to ?? Math.floor(snapshot.takenAt / 1000)),
    granularity,
    windowMs: snapshot.windowMs,
    from,
    to,
    token: snapshot.token,
    user: options.user ?? null,
    chains: snapshot.chains.map((chain) => ({
      name: chain.name,
      chainId: chain.chainId,
      router: chain.router,
      head: chain.window?.head ?? null,
      fromBlock: chain.window?.fromBlock ?? null,
      offline: chain.offline,
      error: chain.error,
    })),
    groups: sorted,
    total: totalGroup,
    escrow,
    payouts: snapshot.chains.flatMap((chain) => (chain.payouts === null ? [] : [{ chain: chain.name, token: snapshot.token.symbol, ...chain.payouts }])),
    queue: queueFigures(snapshot.chains, user),
    unbillable: snapshot.unbillable,
    budget: budgetFigures(snapshot.chains, options),
    batches: recent.slice(0, options.recentBatches ?? 20),
    series: {
      bucketMs,
      starts,
      groups: sorted.filter((g) => series.has(g.key)).map((g) => ({ key: g.key, ...series.get(g.key)! })),
      total,
    },
    unattributedBatches: unattributed,
  };
}

function queueFigures(chains: readonly ChainSnapshot[], user: string | undefined): QueueFigures {
  const count = (lines: readonly UsageLine[]) =>
    lines.reduce((sum, line) => sum + (user === undefined || line.user.toLowerCase() === user ? line.requests : 0), 0);
  const oldest = (values: ReadonlyArray<number | null>) => {
    const present = values.filter((value): value is number => value !== null);
    return present.length === 0 ? null : Math.min(...present);
  };
  const batches = chains.flatMap((chain) => chain.pending.batches);
  return {
    ingestChunks: chains.reduce((sum, chain) => sum + chain.pending.ingest.chunks, 0),
    complete: chains.every((chain) => chain.pending.ingest.chunksRead === chain.pending.ingest.chunks),
    ingestRequests: chains.reduce((sum, chain) => sum + count(chain.pending.ingest.lines), 0),
    ingestOldestAt: oldest(chains.map((chain) => chain.pending.ingest.oldestAt)),
    poolRequests: chains.reduce((sum, chain) => sum + count(chain.pending.pool.lines), 0),
    poolOldestAt: oldest(chains.map((chain) => chain.pending.pool.oldestAt)),
    batches: batches.length,
    batchRequests: batches.reduce((sum, batch) => sum + (batch.lines === null ? (user === undefined ? batch.candidate.receipts : 0) : count(batch.lines.rows)), 0),
    oldestBatchAt: oldest(batches.map((batch) => batch.candidate.since)),
    blocked: batches.filter((batch) => batch.candidate.state === "blocked").length,
    refused: {
      batches: chains.reduce((sum, chain) => sum + (chain.stats.batches_refused ?? 0), 0),
      receipts: chains.reduce((sum, chain) => sum + (chain.stats.receipts_refused ?? 0), 0),
    },
  };
}

function budgetFigures(chains: readonly ChainSnapshot[], options: ReportOptions): BudgetFigures {
  if (options.user !== undefined) {
    const perChain = options.payerBudgets ?? [];
    return { kind: "user", user: options.user, remaining: perChain.reduce((sum, entry) => sum + (entry.budget?.remaining ?? 0n), 0n), chains: perChain };
  }
  const models = chains.flatMap((chain) => chain.models.map((model) => ({ ...model, chain: chain.name })));
  const budgeted = models.filter((model) => model.left !== null);
  return { kind: "models", remaining: budgeted.length === 0 ? null : budgeted.reduce((sum, model) => sum + model.left!, 0n), models };
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function timeOf(batch: RecentBatch): number {
  return batch.settledAt !== null ? batch.settledAt * 1000 : (batch.since ?? 0);
}

/** The report as JSON text: amounts (bigints) as decimal strings of token units (amountMilli: thousandths). */
export function reportToJson(report: UsageReport, space?: number): string {
  return jsonWithBigints(report, space);
}

/** JSON.stringify with every bigint written as its decimal string. */
export function jsonWithBigints(value: unknown, space?: number): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item), space);
}
