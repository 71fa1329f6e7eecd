/**
 * Batch files and receipts reduced to what the monitor shows: one line per charge row (payer, provider, model)
 * with its routes, requests, priced and charged amounts and summed latency. A batch file is immutable, so its
 * summary is computed once and kept; receipts still pending are reduced the same way, one line per
 * (payer, provider, model, route).
 */
import type { BatchFile } from "../batcher/batch-file.js";
import type { Receipt } from "../queue/index.js";

export interface UsageLine {
  /** the payer, EIP-55 */
  readonly user: string;
  /** on-chain provider name ("openai") */
  readonly provider: string;
  /** on-chain model name ("gpt-4-turbo") */
  readonly model: string;
  /** config routes that priced the requests, sorted (one, unless a row mixes routes of the same model) */
  readonly routes: readonly string[];
  readonly requests: number;
  /** exact priced amount, thousandths of a token unit */
  readonly amountMilli: bigint;
  /** sum of the requests' latencies (ms) */
  readonly latencyMsTotal: number;
}

/** A row of a batch as submitted: its index, and `amount`, the units it charges (ceil of amountMilli / 1000). */
export interface RowLine extends UsageLine {
  readonly index: number;
  readonly amount: bigint;
}

export interface BatchLines {
  readonly batchId: string;
  readonly chain: string;
  /** epoch ms */
  readonly sealedAt: number;
  /** start (unix s) of the usage bucket of the batch's calls */
  readonly callsFrom: number;
  readonly rows: readonly RowLine[];
  readonly requests: number;
  /** Σ rows' amounts (units) */
  readonly amount: bigint;
}

export function batchLines(file: BatchFile): BatchLines {
  const extra = file.rows.map(() => ({ routes: new Set<string>(), milli: 0n, latency: 0 }));
  for (const { rowIndex, receipt } of file.receipts) {
    const row = extra[rowIndex];
    if (row === undefined) throw new Error(`batch ${file.batchId}: a receipt points at row ${rowIndex}, which does not exist`);
    row.routes.add(receipt.route);
    row.milli += BigInt(receipt.amountMilli);
    row.latency += receipt.latencyMs;
  }
  const rows = file.rows.map((row, i): RowLine => ({
    index: row.index,
    user: row.user,
    provider: row.providerName,
    model: row.modelName,
    routes: [...extra[i]!.routes].sort(),
    requests: row.receipts,
    amountMilli: extra[i]!.milli,
    latencyMsTotal: extra[i]!.latency,
    amount: BigInt(row.amount),
  }));
  return {
    batchId: file.batchId,
    chain: file.chain,
    sealedAt: file.sealedAt,
    callsFrom: file.callsFrom,
    rows,
    requests: file.receipts.length,
    amount: rows.reduce((sum, row) => sum + row.amount, 0n),
  };
}

/** Receipts not yet in a batch, one line per (payer, provider, model, route). */
export function receiptLines(receipts: Iterable<Receipt>): UsageLine[] {
  const lines = new Map<string, { user: string; provider: string; model: string; route: string; requests: number; milli: bigint; latency: number }>();
  for (const receipt of receipts) {
    const key = `${receipt.payer.toLowerCase()}|${receipt.provider}|${receipt.model}|${receipt.route}`;
    let line = lines.get(key);
    if (line === undefined) {
      line = { user: receipt.payer, provider: receipt.provider, model: receipt.model, route: receipt.route, requests: 0, milli: 0n, latency: 0 };
      lines.set(key, line);
    }
    line.requests += 1;
    line.milli += BigInt(receipt.amountMilli);
    line.latency += receipt.latencyMs;
  }
  return [...lines.values()].map((line) => ({
    user: line.user,
    provider: line.provider,
    model: line.model,
    routes: [line.route],
    requests: line.requests,
    amountMilli: line.milli,
    latencyMsTotal: line.latency,
  }));
}
