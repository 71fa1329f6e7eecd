// glibc malloc settings for the commands that run for long and ingest LiteLLM's POSTs (`relayer start`, `demo`).
//
// Why: glibc gives the top of its main heap back to the kernel whenever more than 128 KB of it is free
// (M_TRIM_THRESHOLD). The ingest server's request thread reads each POST body from its socket in 64 KB pieces and
// frees them once they are copied for a parse worker: 3 MB per 512-log POST. So glibc trimmed the heap after every
// POST and the kernel faulted the same pages in again at the next one: about 240 page faults and 2 ms of kernel CPU
// per POST on the request thread, a sixth of the whole server's CPU (`npm run bench:ingest`, 2026-12-04). Keeping up
// to 64 MB of free heap removes most of those faults; the cost is at most 64 MB of resident memory per heap that the
// process would take back at the next POST anyway.
// Setting the trim threshold turns off glibc's own adjustment of the mmap threshold (it stays at 128 KB), so every
// block of 128 KB or more (a POST's encoded receipts, 270 KB, made by a parse worker; the request thread's large
// buffers) came from a fresh mmap and was faulted in page by page. An mmap threshold of 32 MB takes them from the heap
// too: the parse workers' page faults went from about 8,000 to none in 5 s of load, the request thread's from tens of
// thousands to about 1,000, and the server's peak resident memory went down (610 MB against 690 to 770).
//
// glibc reads these variables only when a process starts, so the launcher (bin/agentgpt.mjs) re-executes itself
// with them (process.execve: same PID, same stdio, signals and exit code unchanged). Nothing happens when the
// environment already names any MALLOC_ variable (the operator's own settings win, and the re-executed process
// stops there), with AGENTGPT_MALLOC_TUNING=0, off Linux, or on a Node.js without process.execve (before 22.15).
// Other C libraries (musl) ignore the variables.

/** What the launcher adds to the environment of a long-running command. */
export const MALLOC_SETTINGS = Object.freeze({
  MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
});

/** The commands the settings are for: the ones that run the ingest server. */
export function isLongRunning(args) {
  return (args[0] === "relayer" && args[1] === "start") || args[0] === "demo";
}

/**
 * The environment to re-execute with, or null to run as is. `args` are the command's arguments (after the script),
 * `env` the current environment.
 */
export function mallocTuningEnv(args, env, platform) {
  if (platform !== "linux" || env.AGENTGPT_MALLOC_TUNING === "0" || !isLongRunning(args)) return null;
  if (Object.keys(env).some((name) => name.startsWith("MALLOC_"))) return null;
  return { ...env, ...MALLOC_SETTINGS };
}
