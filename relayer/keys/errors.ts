/**
 * Why a key command cannot go on. Messages name the input at fault and the fix, and never hold a key, a password,
 * a keystore's contents or a full RPC URL. Codes are for branching (tests, exit status), never the text.
 */
export type KeyErrorCode =
  | "INVALID_INPUT"
  | "KEYSTORE_EXISTS"
  | "KEYSTORE_UNREADABLE"
  | "WRONG_PASSWORD"
  | "NO_PASSWORD"
  | "WEAK_PASSWORD"
  | "NO_SIGNER"
  | "LEDGER_UNAVAILABLE"
  | "NOT_READY";

export class KeyError extends Error {
  override readonly name = "KeyError";
  constructor(
    readonly code: KeyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
