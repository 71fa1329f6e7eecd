/**
 * Why a governance step cannot happen now. Each message says what is missing and what to do; the CLI prints it
 * as is. Codes are for branching (tests, the CLI's exit status), never the text.
 */
export type GovernanceErrorCode =
  | "INVALID_ACTION"
  | "UNKNOWN_PROPOSAL"
  | "DUPLICATE_PROPOSAL"
  | "BELOW_THRESHOLD"
  | "WINDOW_NOT_COVERED"
  | "VOTING_NOT_STARTED"
  | "VOTING_CLOSED"
  | "ALREADY_VOTED"
  | "NO_VOTING_POWER"
  | "NOT_SUCCEEDED"
  | "NOT_QUEUED"
  | "IN_TIMELOCK"
  | "NOT_LOCAL"
  | "REVERTED";

export class GovernanceError extends Error {
  override readonly name = "GovernanceError";
  constructor(
    readonly code: GovernanceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
