/** Errors of releasing escrow and paying providers: a code, and a message naming the input at fault and the fix. */
export type PayoutErrorCode = "UNKNOWN_PROVIDER" | "NOT_PAYEE" | "NOTHING_TO_WITHDRAW" | "TRANSACTION_FAILED";

export class PayoutError extends Error {
  override readonly name = "PayoutError";
  constructor(
    readonly code: PayoutErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
