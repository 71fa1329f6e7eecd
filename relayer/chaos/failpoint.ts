/**
 * Failpoints for crash tests: `AGENTGPT_FAILPOINT=<name>[:<n>]` makes the process kill itself with SIGKILL the n-th
 * time (default first) it passes the named point, e.g. `after-archive`, `after-send`, `during-confirm`. Unset in
 * production, where a failpoint costs one comparison.
 */
const spec = process.env.AGENTGPT_FAILPOINT ?? "";
const [target = "", nth = "1"] = spec.split(":");
const hitsBeforeKill = Number(nth) || 1;
let hits = 0;

export function failpoint(name: string): void {
  if (target === "" || name !== target) return;
  hits += 1;
  if (hits < hitsBeforeKill) return;
  process.stderr.write(`failpoint ${name}: SIGKILL\n`);
  process.kill(process.pid, "SIGKILL");
}
