/**
 * A progress bar for long runs, drawn on a terminal only: when the stream is not a TTY (a pipe, a test, a log
 * file) or `enabled` is false, nothing is written at all. Redrawn at most every 100 ms, cleared when done.
 */
export interface ProgressStream {
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
  write(text: string): boolean;
}

export interface Progress {
  /** Moves forward by `n` (default 1). */
  tick(n?: number): void;
  /** Clears the bar. */
  done(): void;
}

const SILENT: Progress = { tick: () => undefined, done: () => undefined };

export function createProgress(
  label: string,
  total: number,
  options: { stream?: ProgressStream; enabled?: boolean; now?: () => number } = {},
): Progress {
  const stream = options.stream ?? process.stderr;
  const enabled = options.enabled ?? (stream.isTTY === true && process.env.CI === undefined);
  if (!enabled || total <= 0) return SILENT;
  const now = options.now ?? Date.now;
  let current = 0;
  let drawnAt = 0;
  let shown = false;
  const draw = (force: boolean) => {
    const at = now();
    if (!force && at - drawnAt < 100) return;
    drawnAt = at;
    const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - label.length - 30));
    const filled = Math.round((width * Math.min(current, total)) / total);
    const percent = Math.floor((100 * Math.min(current, total)) / total);
    stream.write(`\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${current}/${total} ${percent}%`);
    shown = true;
  };
  return {
    tick(n = 1) {
      current += n;
      draw(current >= total);
    },
    done() {
      if (shown) stream.write(`\r${" ".repeat(Math.min((stream.columns ?? 80) - 1, label.length + 60))}\r`);
    },
  };
}
