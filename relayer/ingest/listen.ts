/**
 * Listening on a configured port, with the errors a person can fix named against the configuration: a port in use
 * (another relayer, or anything else), a port the user may not open, an address that is not this machine's. Each
 * becomes a `ListenError` whose message names the address, the config key and the fix; other errors pass through.
 */
import type { FastifyInstance } from "fastify";

export class ListenError extends Error {
  override readonly name = "ListenError";
  constructor(
    readonly code: "PORT_IN_USE" | "PORT_FORBIDDEN" | "ADDRESS_NOT_LOCAL",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ListenTarget {
  readonly host: string;
  readonly port: number;
  /** the config key that sets the port, e.g. "server.port" or "dashboard.port" */
  readonly portKey: string;
  /** the config key that sets the host, e.g. "server.host" */
  readonly hostKey: string;
  /** the config file to name in the fix */
  readonly file: string | undefined;
  /** another way to set the port, e.g. "--port" */
  readonly override?: string;
}

/** `app.listen` on `target`; resolves with the URL. */
export async function listenOn(app: FastifyInstance, target: ListenTarget): Promise<string> {
  try {
    return await app.listen({ host: target.host, port: target.port });
  } catch (error) {
    throw listenError(error, target) ?? error;
  }
}

/** The ListenError for a listen failure a person can fix, or null. */
export function listenError(error: unknown, target: ListenTarget): ListenError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const where = target.host.includes(":") ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const inFile = target.file === undefined ? "" : ` in ${target.file}`;
  const setPort = `set ${target.portKey}${inFile}${target.override === undefined ? "" : ` (or ${target.override})`} to a free port`;
  if (code === "EADDRINUSE") {
    return new ListenError("PORT_IN_USE", `${target.portKey}: ${where} is already in use by another process: stop that process (another relayer?), or ${setPort}`, { cause: error });
  }
  if (code === "EACCES") {
    return new ListenError("PORT_FORBIDDEN", `${target.portKey}: this user may not listen on ${where} (ports below 1024 need privileges): ${setPort}`, { cause: error });
  }
  if (code === "EADDRNOTAVAIL") {
    return new ListenError("ADDRESS_NOT_LOCAL", `${target.hostKey}: ${target.host} is not an address of this machine: set ${target.hostKey}${inFile} to one of its addresses (e.g. 127.0.0.1)`, {
      cause: error,
    });
  }
  return null;
}
