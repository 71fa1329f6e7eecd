/**
 * What `/readyz` reports beyond Redis: the problems other stages of the same process raise and clear (the settler
 * when its chain was reset or replaced). Ready means no problem is raised; each problem is a reason with its fix.
 */
export class Readiness {
  private readonly problemsBy = new Map<string, string>();

  /** Raises (`problem`) or clears (null) the problem of `component`. */
  set(component: string, problem: string | null): void {
    if (problem === null) this.problemsBy.delete(component);
    else this.problemsBy.set(component, problem);
  }

  /** The problem raised for `component`, or null. */
  problemOf(component: string): string | null {
    return this.problemsBy.get(component) ?? null;
  }

  /** The raised problems, each as "component: reason". */
  problems(): string[] {
    return [...this.problemsBy].map(([component, problem]) => `${component}: ${problem}`);
  }
}
