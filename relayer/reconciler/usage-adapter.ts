/**
 * A provider's own usage report, behind one small interface so each provider gets the adapter its API needs. The
 * question is the one the UsageOracle's Functions source asks: how many tokens did this payer use on this provider
 * and model in [start, end)?
 */
export interface UsageQuery {
  /** on-chain provider name ("openai") */
  readonly provider: string;
  /** on-chain model name ("gpt-4-turbo") */
  readonly model: string;
  /** payer, lowercase 0x address */
  readonly payer: string;
  /** unix seconds, inclusive */
  readonly start: number;
  /** unix seconds, exclusive */
  readonly end: number;
}

export interface UsageAdapter {
  /** for messages: adapter kind and where it reads (URLs redacted) */
  readonly label: string;
  /** tokens the provider reports; throws UsageReportError when it cannot tell */
  usage(query: UsageQuery): Promise<bigint>;
}

export class UsageReportError extends Error {
  override readonly name = "UsageReportError";
  constructor(
    readonly provider: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
