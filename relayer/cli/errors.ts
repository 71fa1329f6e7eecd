/**
 * One place that turns errors into what a person reads. A `UserError` carries a message that names the field or
 * input at fault and the fix; anything else is unexpected and printed with its cause for a bug report.
 */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(
    message: string,
    /** process exit code */
    readonly exitCode = 2,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function reportAndExit(error: unknown): never {
  if (error instanceof UserError) {
    process.stderr.write(`agentgpt: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`agentgpt: unexpected error: ${message}\n`);
  process.exit(1);
}
