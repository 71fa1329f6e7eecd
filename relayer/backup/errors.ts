/**
 * Why a backup, verification or restore cannot go on. The message names the input at fault and the fix; the code
 * is for branching (tests, exit status), never the text. Messages never hold credentials or full RPC URLs.
 */
export type BackupErrorCode =
  | "INVALID_INPUT"
  | "NO_BACKUP"
  | "NO_CHAIN"
  | "CHAIN_MISMATCH"
  | "ARCHIVE_INVALID"
  | "TARGET_FAILED"
  | "CREDENTIALS";

export class BackupError extends Error {
  override readonly name = "BackupError";
  constructor(
    readonly code: BackupErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
