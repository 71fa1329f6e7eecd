/**
 * A validated LiteLLM log becomes one queue submission: a priced Receipt, or an unbillable record with its
 * reason. Checks run in this order, the first that fails gives the reason: failed_call, per_request / zero_usage
 * (no tokens: per_request when LiteLLM still reported a cost), cache_hit, unknown_route, unpriced, no_payer /
 * payer_not_allowed.
 */
import { parseDecimal, type RelayerConfig } from "../config/index.js";
import { displayAmount, type Priced, Pricer } from "../pricing/index.js";
import { RECEIPT_VERSION, type ReceiptBody, type Submission, type UnbillableBody, type UnbillableReason } from "../queue/index.js";
import { fingerprintOf } from "./fingerprint.js";
import { PayerResolver } from "./payer-map.js";
import { billedTokens, type SpendLog } from "./spend-log.js";

export class SubmissionBuilder {
  constructor(
    private readonly pricer: Pricer,
    private readonly payers: PayerResolver,
  ) {}

  static fromConfig(config: RelayerConfig): SubmissionBuilder {
    return new SubmissionBuilder(Pricer.fromConfig(config), new PayerResolver(config.payers));
  }

  /** Every chain a receipt can be built for (one queue each). */
  get chains(): string[] {
    return this.pricer.chains.all;
  }

  build(log: SpendLog, receivedAt: number): Submission {
    const key = log.key;
    const fingerprint = fingerprintOf(log);
    const tokens = billedTokens(log);
    const verdict = this.verdict(log, tokens);
    if (!verdict.ok) {
      return { kind: "unbillable", key, fingerprint, startTime: log.startTime, body: unbillableBody(log, key, fingerprint, verdict.reason, verdict.detail, receivedAt) };
    }
    const { priced, payer } = verdict;
    const body: ReceiptBody = {
      v: RECEIPT_VERSION,
      chain: priced.chain,
      payer,
      provider: priced.provider,
      model: priced.route.model,
      route: priced.route.name,
      promptTokens: log.promptTokens,
      completionTokens: log.completionTokens,
      tokens,
      amountMilli: priced.amountMilli.toString(),
      amount: displayAmount(priced.amountMilli).toString(),
      pricing: priced.pricing,
      pricePer1k: priced.pricePer1k === null ? null : priced.pricePer1k.toString(),
      responseCostUsd: log.responseCostUsd,
      capped: priced.capped,
      startTime: log.startTime,
      endTime: log.endTime,
      latencyMs: log.latencyMs,
      cacheHit: log.cacheHit,
      litellmCallId: log.litellmCallId,
      litellmId: log.litellmId,
      litellmModel: log.model,
      modelGroup: log.modelGroup,
      litellmProvider: log.litellmProvider,
      callType: log.callType,
      keyAlias: log.keyAlias,
      keyHash: log.keyHash,
      userId: log.userId,
      teamId: log.teamId,
      endUserId: log.endUser,
      traceId: log.traceId,
      receivedAt,
    };
    return { kind: "receipt", key, fingerprint, startTime: log.startTime, body };
  }

  /**
   * The price and payer of a billable log, or why it is not billable. (No closure is made per log: tsx names every
   * closure it makes, esbuild's keepNames, and that cost as much as pricing the log.)
   */
  private verdict(
    log: SpendLog,
    tokens: number,
  ): { readonly ok: true; readonly priced: Extract<Priced, { ok: true }>; readonly payer: string } | { readonly ok: false; readonly reason: UnbillableReason; readonly detail: string } {
    if (log.status === "failure") return unbillable("failed_call", "LiteLLM logged the call as a failure");
    if (tokens === 0) {
      // AutoPayLLM bills tokens x price: a call LiteLLM priced per request (an image, audio) has nothing to bill on-chain
      if ((parseDecimal(log.responseCostUsd ?? "")?.digits ?? 0n) > 0n) {
        return unbillable(
          "per_request",
          `priced per request by LiteLLM (${log.callType ?? "call"}, response_cost ${log.responseCostUsd} USD) with no tokens: AutoPayLLM bills tokens, so it is not charged`,
        );
      }
      return unbillable("zero_usage", "no tokens used (prompt, completion and total are 0)");
    }
    if (log.cacheHit) return unbillable("cache_hit", "served from LiteLLM's cache; no provider call to pay for");

    const priced = this.pricer.price(log, tokens, log.responseCostUsd);
    if (!priced.ok) return unbillable(priced.reason, priced.detail);
    const payer = this.payers.resolve(log);
    if (!payer.ok) return unbillable(payer.reason, payer.detail);
    return { ok: true, priced, payer: payer.payer };
  }
}

function unbillable(reason: UnbillableReason, detail: string) {
  return { ok: false, reason, detail } as const;
}

function unbillableBody(
  log: SpendLog,
  key: string,
  fingerprint: string,
  reason: UnbillableReason,
  detail: string,
  receivedAt: number,
): UnbillableBody {
  return {
    v: 1,
    key,
    fingerprint,
    reason,
    detail,
    receivedAt,
    summary: {
      litellmProvider: log.litellmProvider,
      litellmModel: log.model === "" ? null : log.model,
      modelGroup: log.modelGroup,
      keyAlias: log.keyAlias,
      tokens: billedTokens(log),
      responseCostUsd: log.responseCostUsd,
    },
    log,
  };
}
