/**
 * What the demo must undo, however it ends (success, failure, Ctrl-C): actions run once, last added first, each
 * whatever the others did. Child processes are also killed synchronously when the process exits, as a last resort.
 */
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

export class Cleanup {
  private readonly actions: Array<{ readonly name: string; readonly run: () => Promise<void> }> = [];
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();
  private running: Promise<string[]> | null = null;
  private readonly onExit = () => {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  };

  constructor() {
    process.once("exit", this.onExit);
  }

  add(name: string, run: () => Promise<void>): void {
    this.actions.push({ name, run });
  }

  /** A child process killed on exit if nothing stopped it before. */
  watchChild(child: ChildProcess | null): void {
    if (child !== null) this.children.add(child);
  }

  /** A directory removed on exit if nothing removed it before. */
  watchDir(dir: string): void {
    this.dirs.add(dir);
  }

  /** Runs every action once (later calls get the same result): the names of those that failed. */
  runAll(): Promise<string[]> {
    this.running ??= (async () => {
      const failed: string[] = [];
      for (const action of [...this.actions].reverse()) {
        try {
          await within(action.run(), 15_000);
        } catch (error) {
          failed.push(`${action.name} (${error instanceof Error ? error.message : String(error)})`);
        }
      }
      this.onExit();
      process.removeListener("exit", this.onExit);
      return failed;
    })();
    return this.running;
  }
}

/** `work`, or a "timed out" error after `ms`; the timer never outlives the race (it would hold the process open). */
export async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timed out")), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for `child` to exit, at most `ms`: true when it did. */
export async function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return within(
    new Promise<boolean>((resolve) => child.once("exit", () => resolve(true))),
    ms,
  ).catch(() => false);
}
