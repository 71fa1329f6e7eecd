/**
 * A Mocha root `afterAll` hook (registered in hardhat.config.ts) that keeps a leaked handle from holding the test
 * process open forever. Hardhat does not exit the process after `hardhat test`: it returns, and Node exits once
 * nothing is left on the event loop. A test that forgets to stop a child process, a server, a Redis connection or
 * an interval would make `npm test` (and CI) hang after the summary.
 *
 * The guard arms an unreferenced timer after the last test: it never delays a process that exits by itself. If the
 * process is still alive when it fires, it names what holds it open (child processes with their command, sockets
 * with their peer, servers with their address) so the leak can be found, and exits with the test run's own code.
 * Imports nothing: hardhat.config.ts loads it for every command.
 */

interface HandleLike {
  constructor?: { name?: string };
  spawnargs?: string[];
  pid?: number;
  remoteAddress?: string;
  remotePort?: number;
  localPort?: number;
  address?: () => unknown;
}

function describeHandle(handle: HandleLike): string {
  const kind = handle.constructor?.name ?? "unknown";
  if (Array.isArray(handle.spawnargs)) return `${kind} pid ${handle.pid}: ${handle.spawnargs.join(" ").slice(0, 160)}`;
  if (handle.remotePort !== undefined) return `${kind} ${handle.remoteAddress}:${handle.remotePort} (local port ${handle.localPort})`;
  if (typeof handle.address === "function") {
    try {
      const address = handle.address() as { port?: number } | string | null;
      if (address === null || (typeof address === "object" && address.port === undefined)) return `${kind} (a pipe)`;
      return `${kind} listening on ${JSON.stringify(address)}`;
    } catch {
      return kind;
    }
  }
  return kind;
}

/** What keeps the event loop alive, one line per handle. */
export function openHandles(): string[] {
  const getHandles = (process as unknown as { _getActiveHandles?: () => HandleLike[] })._getActiveHandles;
  const handles = typeof getHandles === "function" ? getHandles.call(process) : [];
  const lines = handles.filter((h) => h !== process.stdout && h !== process.stderr && h !== process.stdin).map(describeHandle);
  const timers = process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
  if (timers > 0) lines.push(`${timers} timer(s) (setTimeout/setInterval)`);
  return lines;
}

/**
 * @param graceMs how long after the last test the process may take to finish by itself (coverage reports and the
 *   summary are written in that time).
 */
export function exitGuard(graceMs = 60_000): () => void {
  return function armExitGuard() {
    const timer = setTimeout(() => {
      const code = typeof process.exitCode === "number" ? process.exitCode : 0;
      process.stderr.write(
        `\nexit guard: ${graceMs / 1000} s after the last test the process is still held open by:\n` +
          openHandles()
            .map((line) => `  - ${line}\n`)
            .join("") +
          `A test leaked these (close them in its after/afterEach hook). Exiting with the test run's code ${code}.\n`,
      );
      process.exit(code);
    }, graceMs);
    timer.unref();
  };
}
