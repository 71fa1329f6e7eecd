/**
 * Errors of the chain helpers. Each carries a code to branch on and a message written for the person running the
 * command: it names the input at fault and the fix. Messages never contain keys or full RPC URLs.
 */
export type ChainErrorCode =
  | "INVALID_AMOUNT"
  | "INVALID_ADDRESS"
  | "UNKNOWN_NETWORK"
  | "NO_RPC_URL"
  | "RPC_UNREACHABLE"
  | "WRONG_CHAIN"
  | "DEPLOYMENT_NOT_FOUND"
  | "DEPLOYMENT_INVALID"
  | "STALE_DEPLOYMENT"
  | "NO_SIGNER"
  | "INVALID_KEY"
  | "NOT_LOCAL";

export class ChainError extends Error {
  override readonly name = "ChainError";
  constructor(
    readonly code: ChainErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
