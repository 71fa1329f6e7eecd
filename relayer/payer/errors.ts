/**
 * Errors of the payer commands: a code to branch on and a message that names what is short and the command that
 * fixes it. Never a key.
 */
export type PayerErrorCode =
  | "INVALID_AMOUNT"
  | "INSUFFICIENT_BALANCE"
  | "INSUFFICIENT_ALLOWANCE"
  | "INSUFFICIENT_DEPOSIT"
  | "PERMIT_UNSUPPORTED"
  | "TRANSACTION_FAILED";

export class PayerError extends Error {
  override readonly name = "PayerError";
  constructor(
    readonly code: PayerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
