/**
 * Errors of the backfill, each with a code; `describeBackfillError` is the one place that turns them into words
 * for people (never with the database URL: it holds a password).
 */
export type BackfillErrorCode = "no_database_url" | "database_unreachable" | "not_litellm_database" | "query_failed" | "bad_range" | "beyond_dedupe";

export class BackfillError extends Error {
  override readonly name = "BackfillError";
  constructor(
    readonly code: BackfillErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The PostgreSQL SQLSTATE or Node error code of an error, if any (never its message, which may quote a URL). */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
