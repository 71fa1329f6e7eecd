/**
 * Why a signer cannot be opened or cannot sign. Messages name the setting at fault and the fix; they never hold a
 * PIN, a password, a key or a credential. Codes are for branching, never the text.
 */
export type SignerErrorCode =
  | "MODULE_MISSING"
  | "MODULE_UNLOADABLE"
  | "TOKEN_NOT_FOUND"
  | "NO_PIN"
  | "LOGIN_FAILED"
  | "KEY_NOT_FOUND"
  | "KEY_EXISTS"
  | "WRONG_KEY"
  | "DEVICE_ERROR";

export class SignerError extends Error {
  override readonly name = "SignerError";
  constructor(
    readonly code: SignerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
