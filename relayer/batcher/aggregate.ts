/**
 * Receipts -> charge rows. One row per (payer, provider, model), charged `ceil(sum(amountMilli) / 1000)` token
 * units: every token is paid for, rounded up once per row, and never above the contract's cap when each receipt was
 * priced at most at the governed cap. Rows are sorted by payer, then provider id, then model id (each payer's rows
 * are contiguous, which is what the contract's cost model wants); receipts follow their rows, by id within a row.
 * Deterministic: the same set of receipts gives the same rows and order.
 */
import type { Receipt } from "../queue/index.js";
import type { Charge } from "./rows-tree.js";

/** On-chain ids for provider and model names (0 when not registered: the contract then rejects the row). */
export interface Registry {
  providerId(name: string): number;
  modelId(name: string): number;
}

export interface Row extends Charge {
  providerName: string;
  modelName: string;
  /** number of receipts aggregated into the row */
  receipts: number;
}

export interface Aggregation {
  rows: Row[];
  /** receipts in batch order, each with the index of its row */
  receipts: { rowIndex: number; receipt: Receipt }[];
}

export function aggregate(receipts: readonly Receipt[], registry: Registry): Aggregation {
  const groups = new Map<string, { row: Row; milli: bigint; members: Receipt[] }>();
  for (const receipt of receipts) {
    const user = receipt.payer.toLowerCase();
    const provider = registry.providerId(receipt.provider);
    const model = registry.modelId(receipt.model);
    const key = `${user}|${provider}|${model}|${provider === 0 ? receipt.provider : ""}|${model === 0 ? receipt.model : ""}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = {
        row: {
          user: receipt.payer,
          provider,
          model,
          tokens: 0n,
          amount: 0n,
          providerName: receipt.provider,
          modelName: receipt.model,
          receipts: 0,
        },
        milli: 0n,
        members: [],
      };
      groups.set(key, group);
    }
    group.row.tokens += BigInt(receipt.tokens);
    group.row.receipts += 1;
    group.milli += BigInt(receipt.amountMilli);
    group.members.push(receipt);
  }
  const ordered = [...groups.values()].sort(
    (a, b) =>
      compare(a.row.user.toLowerCase(), b.row.user.toLowerCase()) ||
      a.row.provider - b.row.provider ||
      a.row.model - b.row.model ||
      compare(a.row.providerName, b.row.providerName) ||
      compare(a.row.modelName, b.row.modelName),
  );
  const rows: Row[] = [];
  const out: Aggregation["receipts"] = [];
  for (const group of ordered) {
    const rowIndex = rows.length;
    rows.push({ ...group.row, amount: (group.milli + 999n) / 1000n });
    for (const receipt of [...group.members].sort((a, b) => compare(a.id, b.id))) out.push({ rowIndex, receipt });
  }
  return { rows, receipts: out };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
