/**
 * An epoch report as people read it (a table per provider, then the findings and the intervals worth a dispute) and as
 * JSON (amounts and tokens as exact decimal strings, amounts also formatted in the token).
 */
import { formatTokenAmount } from "../config/amount.js";
import { formatEpoch } from "./epoch.js";
import type { EpochReport } from "./report.js";

export function formatReport(report: EpochReport): string[] {
  const fmt = (n: bigint | null) => (n === null ? "n/a" : formatTokenAmount(n, report.token));
  const num = (n: bigint | number | null) => (n === null ? "n/a" : n.toString());
  const escrowed = report.batches.filter((b) => b.state === "escrowed").length;
  const rejected = report.batches.reduce((n, b) => n + b.rejected.length, 0);
  const out = [
    `Reconciliation of ${report.chain.name} (chain ${report.chain.chainId}), epoch ${formatEpoch(report.epoch)}`,
    `router ${report.chain.router}, oracle ${report.chain.oracle ?? "none"} (tolerance ${report.oracleToleranceBps} bps); report tolerance ${report.toleranceBps} bps; ` +
      `provider usage per usage bucket of ${report.usageBucket} s committed by each batch (the oracle's window), every batch of that bucket counted`,
    `${report.batches.length} batch(es) settled in the epoch (${escrowed} escrowed, ${report.batches.length - escrowed} released), ${rejected} row(s) rejected; ` +
      `${report.intervals.length} interval(s) billed, ${report.intervals.reduce((n, i) => n + i.rows.length, 0)} row(s) in them`,
    "",
  ];
  if (report.providers.length === 0) {
    out.push("No charged rows settled in this epoch.");
  } else {
    const header = ["provider", "intervals", "rows", "tokens", "amount", "archive tokens", "archive amount", "provider tokens", "diff tokens", "diff", "overcharged", "refund due", "disputed", "refunded tokens", "status"];
    const body = report.providers.map((p) => [
      p.provider,
      num(p.intervals),
      num(p.rows),
      num(p.tokens),
      fmt(p.amount),
      num(p.archiveTokens),
      fmt(p.archiveAmount),
      num(p.reported),
      p.diffTokens === null ? "n/a" : `${p.diffTokens > 0n ? "+" : ""}${p.diffTokens}`,
      p.diffBps === null ? "n/a" : `${p.diffBps > 0 ? "+" : ""}${(p.diffBps / 100).toFixed(2)}%`,
      num(p.overchargedIntervals),
      fmt(p.predictedRefund),
      num(p.disputed),
      num(p.refundedTokens),
      p.status,
    ]);
    out.push(...table([header, ...body]));
  }
  if (report.findings.length > 0) {
    out.push("", "Findings:");
    for (const finding of report.findings) out.push(`  - ${finding}`);
  }
  const actionable = report.intervals.filter((i) => i.status === "overcharged" && i.openDispute === null && i.heldAmount > 0n);
  if (actionable.length > 0) {
    out.push("", "Intervals worth a dispute (the payer runs these, or the relayer does for payers it holds keys of):");
    for (const i of actionable) {
      out.push(
        `  agentgpt dispute --payer ${i.payer} --provider ${i.provider} --model ${i.model} --calls-from ${i.callsFrom}   # ${i.rows.length} row(s), refund ${fmt(i.predictedRefund)}`,
      );
    }
  }
  return out;
}

export function reportJson(report: EpochReport): unknown {
  return JSON.parse(
    JSON.stringify(report, (key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      return value;
    }),
  );
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  ").trimEnd());
}
