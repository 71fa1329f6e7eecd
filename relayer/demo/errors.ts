/** A demo step that cannot go on; the message says what to do. */
export class DemoError extends Error {
  override readonly name = "DemoError";
  constructor(
    message: string,
    /** process exit code: 3 when something outside (Redis, a port) is missing */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
