/**
 * Errors of the payer-side dispute client. Each has a code to branch on and a message for the person running the
 * command: it names the input at fault (the batch, the row, the archive, the bond) and the fix. Messages never carry
 * keys or full RPC/IPFS URLs.
 */
export type DisputeErrorCode =
  | "INVALID_INPUT"
  | "UNKNOWN_BATCH"
  | "BATCH_RELEASED"
  | "NO_SETTLEMENT_LOG"
  | "NO_ROW"
  | "ROW_REJECTED"
  | "NOT_PAYER"
  | "ALREADY_DISPUTED"
  | "WINDOW_CLOSED"
  | "BATCH_FILE_MISSING"
  | "BATCH_FILE_INVALID"
  | "BATCH_FILE_MISMATCH"
  | "IPFS_FAILED"
  | "BOND_NOT_COVERED"
  | "NO_ORACLE"
  | "VERIFICATION_REFUSED"
  | "DISPUTE_CLOSED"
  | "NOT_EXPIRED"
  | "NOT_RESOLVER"
  | "REVERTED";

export class DisputeError extends Error {
  override readonly name = "DisputeError";
  constructor(
    readonly code: DisputeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
