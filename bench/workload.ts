/**
 * The reference settlement workload, generated from a fixed seed: receipts from a set of payers over a set of
 * routes (provider, model), aggregated into charge rows the way the batcher aggregates them.
 */
import type { Charge } from "../relayer/batcher/rows-tree.js";
import { prng } from "../relayer/demo/prng.js";

export { prng };

export interface Route {
  provider: number;
  model: number;
  /** token units per 1k tokens */
  pricePer1k: bigint;
}

export interface Receipt {
  user: string;
  route: number;
  tokens: bigint;
}

export function generateReceipts(seed: number, count: number, payers: readonly string[], routes: number): Receipt[] {
  const next = prng(seed);
  const receipts: Receipt[] = [];
  for (let i = 0; i < count; i++) {
    const user = payers[Math.floor(next() * payers.length)]!;
    const route = Math.floor(next() * routes);
    const tokens = BigInt(50 + Math.floor(next() * 3950));
    receipts.push({ user, route, tokens });
  }
  return receipts;
}

/**
 * Rows keyed by (payer, provider, model), sorted by payer then provider then model so each payer's rows are
 * contiguous. A row's amount is ceil(sum(tokens) * price / 1000): every token is paid for, rounded up once.
 */
export function aggregate(receipts: readonly Receipt[], routes: readonly Route[]): Charge[] {
  const rows = new Map<string, { charge: Charge; milli: bigint }>();
  for (const receipt of receipts) {
    const route = routes[receipt.route]!;
    const key = `${receipt.user.toLowerCase()}|${route.provider}|${route.model}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = { charge: { user: receipt.user, provider: route.provider, model: route.model, tokens: 0n, amount: 0n }, milli: 0n };
      rows.set(key, row);
    }
    row.charge.tokens += receipt.tokens;
    row.milli += receipt.tokens * route.pricePer1k;
  }
  const charges = [...rows.values()].map(({ charge, milli }) => ({ ...charge, amount: (milli + 999n) / 1000n }));
  charges.sort(
    (a, b) =>
      a.user.toLowerCase().localeCompare(b.user.toLowerCase()) || a.provider - b.provider || a.model - b.model,
  );
  return charges;
}
