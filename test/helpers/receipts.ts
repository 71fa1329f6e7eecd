/** Receipts as ingest queues them, for batcher and settler tests. */
import type { Receipt } from "../../relayer/queue/index.js";
import { PRICES } from "./chain-suite.js";

let counter = 0;

/**
 * When every receipt's call started unless a test says otherwise: one instant per test run, a second before it
 * began. The batcher cuts batches at usage-bucket boundaries of the calls' start time, so receipts made a moment
 * apart across an hour boundary would otherwise land in two batches where a test expects one.
 */
const RUN_START = Date.now() - 1000;

export function receipt(
  payer: string,
  provider: string,
  model: string,
  tokens: number,
  overrides: Partial<Receipt> = {},
): Receipt {
  counter += 1;
  const price = PRICES[model] ?? 10n ** 15n;
  const amountMilli = BigInt(tokens) * price;
  const now = Date.now();
  return {
    v: 1,
    id: `call-${process.pid}-${counter}-${now}`,
    chain: "local",
    payer,
    provider,
    model,
    route: `${provider}-${model}`,
    promptTokens: Math.floor(tokens / 2),
    completionTokens: tokens - Math.floor(tokens / 2),
    tokens,
    amountMilli: amountMilli.toString(),
    amount: ((amountMilli + 999n) / 1000n).toString(),
    pricing: "per_1k_tokens",
    pricePer1k: price.toString(),
    responseCostUsd: null,
    capped: false,
    startTime: RUN_START,
    endTime: RUN_START + 500,
    latencyMs: 500,
    cacheHit: false,
    litellmCallId: null,
    litellmId: `chatcmpl-${counter}`,
    litellmModel: `${provider}/${model}`,
    modelGroup: model,
    litellmProvider: provider,
    callType: "acompletion",
    keyAlias: null,
    keyHash: null,
    userId: null,
    teamId: null,
    endUserId: null,
    traceId: null,
    receivedAt: now,
    ...overrides,
  };
}

/** What the contract should charge for these receipts: per (payer, provider, model) row, ceil(sum milli / 1000). */
export function expectedCharges(receipts: readonly Receipt[]): { byPayer: Map<string, bigint>; byProvider: Map<string, bigint> } {
  const rows = new Map<string, bigint>();
  for (const r of receipts) {
    const key = `${r.payer.toLowerCase()}|${r.provider}|${r.model}`;
    rows.set(key, (rows.get(key) ?? 0n) + BigInt(r.amountMilli));
  }
  const byPayer = new Map<string, bigint>();
  const byProvider = new Map<string, bigint>();
  for (const [key, milli] of rows) {
    const [payer = "", provider = ""] = key.split("|");
    const amount = (milli + 999n) / 1000n;
    byPayer.set(payer, (byPayer.get(payer) ?? 0n) + amount);
    byProvider.set(provider, (byProvider.get(provider) ?? 0n) + amount);
  }
  return { byPayer, byProvider };
}
