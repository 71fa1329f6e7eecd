/**
 * `/readyz` of the whole process, per stage: each stage registers the checks it needs (Redis for every stage; RPC,
 * chain guard, lease and signer balance for the settler; ...), each a function that answers ok or what failed. A
 * stage that stands by (another process holds its lease) is ready, and says so. Checks run in parallel, each within
 * a timeout, only when /readyz is asked (never on /healthz).
 *
 * It is also the `Readiness` other stages raise problems on (`set(component, problem)`, relayer/ingest/readiness.ts):
 * a problem raised and not read by a stage's check is reported under the stage "process".
 */
import { Readiness } from "../ingest/readiness.js";
import { within } from "./within.js";

/** What one check found. `standby`: the stage is ready but not active (another process holds its lease). */
export interface CheckResult {
  readonly ok: boolean;
  /** "ok", or what failed and what to do */
  readonly detail: string;
  readonly standby?: boolean;
}

export type Check = () => Promise<CheckResult>;

export interface StageReport {
  readonly ready: boolean;
  /** true when a check said the stage stands by (not an error) */
  readonly standby: boolean;
  readonly checks: Readonly<Record<string, CheckResult>>;
}

export interface ReadinessReport {
  readonly ready: boolean;
  /** by stage ("ingest", "settler:arbitrum", ...) */
  readonly stages: Readonly<Record<string, StageReport>>;
  /** every failed check, "stage check: detail" (empty when ready) */
  readonly failures: readonly string[];
}

export const ok = (detail = "ok"): CheckResult => ({ ok: true, detail });
export const failed = (detail: string): CheckResult => ({ ok: false, detail });

export class ProcessReadiness extends Readiness {
  private readonly checks = new Map<string, Map<string, Check>>();
  private readonly read = new Set<string>();

  /** Registers `check` as `name` of `stage` (replacing one of the same name); returns its removal. */
  add(stage: string, name: string, check: Check): () => void {
    let checks = this.checks.get(stage);
    if (checks === undefined) this.checks.set(stage, (checks = new Map()));
    checks.set(name, check);
    return () => {
      const current = this.checks.get(stage);
      if (current?.get(name) !== check) return;
      current.delete(name);
      if (current.size === 0) this.checks.delete(stage);
    };
  }

  /** A check that fails while `component` has a problem raised (with `set`); that problem is then reported here only. */
  raised(component: string): Check {
    this.read.add(component);
    return async () => {
      const problem = this.problemOf(component);
      return problem === null ? ok() : failed(problem);
    };
  }

  /** The stages with checks. */
  stages(): string[] {
    return [...this.checks.keys()];
  }

  /** Runs every check (each within `timeoutMs`) and reports per stage. */
  async report(timeoutMs = 2000): Promise<ReadinessReport> {
    const entries = [...this.checks].flatMap(([stage, checks]) => [...checks].map(([name, check]) => ({ stage, name, check })));
    const results = await Promise.all(
      entries.map(async ({ name, check }) => {
        try {
          return await within(check(), timeoutMs, name);
        } catch (error) {
          return failed(error instanceof Error ? error.message : String(error));
        }
      }),
    );
    const stages: Record<string, { ready: boolean; standby: boolean; checks: Record<string, CheckResult> }> = {};
    const failures: string[] = [];
    entries.forEach(({ stage, name }, i) => {
      const result = results[i]!;
      const report = (stages[stage] ??= { ready: true, standby: false, checks: {} });
      report.checks[name] = result;
      if (result.standby === true) report.standby = true;
      if (!result.ok) {
        report.ready = false;
        failures.push(`${stage} ${name}: ${result.detail}`);
      }
    });
    const unread = super.problems().filter((line) => !this.read.has(line.slice(0, line.indexOf(": "))));
    if (unread.length > 0) {
      const checks: Record<string, CheckResult> = {};
      for (const line of unread) {
        const at = line.indexOf(": ");
        checks[line.slice(0, at)] = failed(line.slice(at + 2));
      }
      stages["process"] = { ready: false, standby: false, checks };
      failures.push(...unread);
    }
    return { ready: failures.length === 0, stages, failures };
  }
}
