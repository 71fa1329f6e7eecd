/**
 * Errors of the monitor, each with a code; the message names the input or setting at fault and the fix.
 *   INVALID_INPUT   a command-line value or API parameter (--granularity, --since, --user)
 *   CHAIN           a chain could not be read (RPC down, no router, token mismatch)
 */
export type MonitorErrorCode = "INVALID_INPUT" | "CHAIN";

export class MonitorError extends Error {
  override readonly name = "MonitorError";
  constructor(
    readonly code: MonitorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
