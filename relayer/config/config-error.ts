/**
 * Everything wrong with a configuration, each problem pinned to its file, line and field, so the person fixing
 * it never has to guess. The message lists every problem, one a line: `file:line:col: field: what to do`.
 */

export interface ConfigProblem {
  /** the file as the user named it (or as an include resolved it) */
  readonly file: string;
  /** 1-based; absent when the problem has no place in a file (a missing file, a missing section) */
  readonly line?: number | undefined;
  readonly column?: number | undefined;
  /** the field, e.g. `routes[0].budget`; "" for the whole file */
  readonly field: string;
  readonly message: string;
}

export function formatProblem(problem: ConfigProblem): string {
  const place =
    problem.line === undefined ? problem.file : `${problem.file}:${problem.line}:${problem.column ?? 1}`;
  return problem.field === "" ? `${place}: ${problem.message}` : `${place}: ${problem.field}: ${problem.message}`;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "CONFIG_INVALID";
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      problems.length === 1
        ? `invalid configuration: ${formatProblem(problems[0]!)}`
        : `invalid configuration (${problems.length} problems):\n${problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`,
    );
  }
}

/** `["routes", 0, "budget"]` -> `routes[0].budget` */
export function formatField(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}
