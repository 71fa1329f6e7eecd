/**
 * The report as the seed's "Real-Time Cost Dashboard" table, then what is not in it (pending, in dispute,
 * rejected), where the charged money stands (escrowed, releasable, released, withdrawn), warnings, and "Budget
 * Remaining". Every amount is exact (format-amount.ts), except pending ones: estimates until their batch settles,
 * rounded to DISPLAY_DECIMALS.
 *
 *   LLM USAGE 08-FEB-2025  (settled in the last 24h on local)
 *   ┌─────────────────┬───────────┬───────────┬───────────┐
 *   │ Provider        │ Requests  │ AGPT Cost │ Latency   │
 *   ├─────────────────┼───────────┼───────────┼───────────┤
 *   │ openai          │ 12,891    │ 182.34    │ 423ms     │
 *   ├─────────────────┼───────────┼───────────┼───────────┤
 *   │ TOTAL           │ 12,891    │ 182.34 AGPT           │
 *   └─────────────────┴───────────┴───────────────────────┘
 *   Budget Remaining: 417.82 AGPT
 */
import { boxTable, type BoxRow } from "./box-table.js";
import { formatCount, formatMilliRounded, formatUnits } from "./format-amount.js";
import { describeWindow, GROUP_TITLE } from "./options.js";
import type { GroupFigures, UsageReport } from "./usage-report.js";

const MIN_WIDTHS = [17, 11, 11, 11];

export function meanLatency(figures: { requests: number; latencyMsTotal: number }): string {
  return figures.requests === 0 ? "-" : `${formatCount(Math.round(figures.latencyMsTotal / figures.requests))}ms`;
}

export function renderReport(report: UsageReport, now = Date.now()): string {
  const { decimals, symbol } = report.token;
  const units = (value: bigint) => formatUnits(value, decimals);
  const milli = (value: bigint) => formatMilliRounded(value, decimals);
  const out: string[] = [];

  const chains = report.chains.map((chain) => chain.name).join(", ");
  const who = report.user === null ? "" : `, payer ${report.user}`;
  out.push(`LLM USAGE ${report.date}  (settled in the last ${describeWindow(report.windowMs)} on ${chains}${who})`);

  const rows: BoxRow[] = report.groups
    .filter((g) => g.settled.requests > 0 || g.settled.amount > 0n)
    .map((g) => ({ cells: [g.key, formatCount(g.settled.requests), units(g.settled.amount), meanLatency(g.settled)] }));
  if (rows.length === 0) rows.push({ cells: ["(nothing settled)", "0", "0", "-"] });
  rows.push({ cells: ["TOTAL", formatCount(report.total.settled.requests), `${units(report.total.settled.amount)} ${symbol}`], span: 2, ruleAbove: true });
  out.push(boxTable([GROUP_TITLE[report.granularity], "Requests", `${symbol} Cost`, "Latency"], rows, MIN_WIDTHS));

  const apart = report.groups.filter(hasApart);
  if (apart.length > 0) {
    out.push(`Not in the cost above (${symbol}):`);
    const cells = (g: GroupFigures) => [
      g.key,
      g.pending.requests === 0 ? "-" : `${milli(g.pending.amountMilli)} · ${formatCount(g.pending.requests)} req`,
      g.inDispute.rows === 0 ? "-" : `${units(g.inDispute.amount)} · ${plural(g.inDispute.rows, "row")}`,
      g.rejected.rows === 0 ? "-" : `${units(g.rejected.amount)} · ${plural(g.rejected.rows, "row")}`,
      g.refunded === 0n ? "-" : units(g.refunded),
    ];
    out.push(
      boxTable(
        [GROUP_TITLE[report.granularity], "Pending", "In Dispute", "Rejected", "Refunded"],
        [...apart.map((g) => ({ cells: cells(g) })), { cells: cells(report.total), ruleAbove: true }],
        [17, 11, 11, 11, 11],
      ),
    );
  }

  out.push(...payoutLines(report));

  const q = report.queue;
  if (q.ingestRequests + q.poolRequests + q.batchRequests > 0 || q.batches > 0) {
    const oldest = [q.ingestOldestAt, q.poolOldestAt, q.oldestBatchAt].filter((t): t is number => t !== null);
    out.push(
      `Pending: ${formatCount(report.total.pending.requests)} requests, ${milli(report.total.pending.amountMilli)} ${symbol} priced, not yet settled: ` +
        `${formatCount(q.ingestRequests)} in ingest's queue, ${formatCount(q.poolRequests)} in the batcher's pool, ` +
        `${formatCount(q.batchRequests)} in ${plural(q.batches, "sealed batch", "sealed batches")}${q.blocked > 0 ? ` (${q.blocked} blocked)` : ""}` +
        (oldest.length > 0 ? `; oldest waiting ${age(now - Math.min(...oldest))}` : ""),
    );
  }
  if (q.refused.batches > 0) {
    out.push(
      `Refused: ${plural(q.refused.batches, "batch", "batches")} of ${formatCount(q.refused.receipts)} requests not settled: another batch had settled ` +
        `the same receipts root (those requests are charged there); the settler's log names it`,
    );
  }
  const reasons = Object.entries(report.total.rejected.reasons).map(([reason, count]) => `${reason} ${count}`);
  if (reasons.length > 0) out.push(`Rejected rows by reason: ${reasons.join(", ")}`);
  const unbillable = Object.entries(report.unbillable).filter(([, count]) => count > 0);
  if (unbillable.length > 0) {
    out.push(`Unbillable calls kept by ingest (all payers): ${unbillable.map(([reason, count]) => `${reason} ${formatCount(count)}`).join(", ")}`);
  }

  for (const chain of report.chains) {
    if (chain.error !== null) out.push(`! chain ${chain.name} could not be read (${chain.error}): its settled figures are missing`);
    else if (chain.offline) out.push(`! chain ${chain.name} has no rpc_urls: only what the relayer holds for it is shown`);
  }
  if (report.unattributedBatches > 0) {
    out.push(`! ${plural(report.unattributedBatches, "settled batch has", "settled batches have")} no file in the archive: shown under "(no batch file)"`);
  }
  if (!q.complete) out.push(`! more ingest chunks wait than were read: pending figures are a lower bound`);

  out.push(...budgetLines(report));
  return out.join("\n");
}

/**
 * Where the charged money stands, per chain's token: four parts that do not overlap (monitor/payouts.ts).
 *
 *   Payouts              Escrowed   Releasable   Released   Withdrawn (24h)
 *   AGPT on local        12.5       3.25         0          40
 */
export function payoutLines(report: UsageReport): string[] {
  if (report.payouts.length === 0) return [];
  const units = (value: bigint) => formatUnits(value, report.token.decimals);
  const rows: BoxRow[] = report.payouts.map((p) => ({
    cells: [`${p.token} on ${p.chain}`, units(p.escrowed), p.releasableBatches === 0 ? units(p.releasable) : `${units(p.releasable)} · ${plural(p.releasableBatches, "batch", "batches")}`, units(p.released), units(p.withdrawn)],
  }));
  return [
    boxTable(["Payouts", "Escrowed", "Releasable", "Released", `Withdrawn (${describeWindow(report.windowMs)})`], rows, [17, 11, 11, 11, 11]),
    "  escrowed: dispute window open or held by a dispute; releasable: window closed, not yet released; " +
      "released: in providers' credits, not yet withdrawn; withdrawn: paid to providers' payees",
  ];
}

function budgetLines(report: UsageReport): string[] {
  const { decimals, symbol } = report.token;
  const units = (value: bigint) => formatUnits(value, decimals);
  const budget = report.budget;
  if (budget.kind === "user") {
    const lines = [`Budget Remaining: ${units(budget.remaining)} ${symbol}  (payer ${budget.user}, today)`];
    for (const entry of budget.chains) {
      if (entry.budget === null) {
        lines.push(`  ${entry.chain}: not read (${entry.error})`);
        continue;
      }
      const b = entry.budget;
      const pullable = b.allowance < b.walletBalance ? b.allowance : b.walletBalance;
      const cap = b.capLeft === null ? "no daily cap" : `daily cap ${units(b.dailyCap)} - spent today ${units(b.spentToday)} = ${units(b.capLeft)}`;
      lines.push(
        `  ${entry.chain}: ${cap}; funds: deposit ${units(b.deposit)} + ${units(pullable)} the allowance can pull ` +
          `(allowance ${units(b.allowance)}, wallet ${units(b.walletBalance)}) = ${units(b.funds)}; ${b.capLeft !== null && b.capLeft < b.funds ? "the cap" : "the funds"} limit${b.capLeft !== null && b.capLeft < b.funds ? "s" : ""}`,
      );
    }
    return lines;
  }
  if (budget.models.length === 0) {
    const read = report.chains.some((chain) => !chain.offline && chain.error === null);
    return [read ? "Budget Remaining: no model is registered on the router" : "Budget Remaining: unknown (no chain could be read)"];
  }
  const lines = [
    budget.remaining === null
      ? `Budget Remaining: unlimited (no model has a governed daily budget)`
      : `Budget Remaining: ${units(budget.remaining)} ${symbol}  (governed model budgets left today)`,
  ];
  const multi = new Set(budget.models.map((model) => model.chain)).size > 1;
  const width = Math.max(...budget.models.map((model) => model.name.length + (multi ? model.chain.length + 1 : 0)));
  for (const model of budget.models) {
    const name = (multi ? `${model.chain}/${model.name}` : model.name).padEnd(width);
    lines.push(
      model.left === null
        ? `  ${name}  no daily budget (spent today ${units(model.spentToday)})`
        : `  ${name}  ${units(model.left)} of ${units(model.dailyLimit)} left`,
    );
  }
  return lines;
}

function hasApart(g: GroupFigures): boolean {
  return g.pending.requests > 0 || g.inDispute.rows > 0 || g.rejected.rows > 0 || g.refunded > 0n;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${formatCount(count)} ${count === 1 ? one : many}`;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}
