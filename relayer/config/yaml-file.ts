/**
 * One YAML file, parsed with positions kept, so every later problem (a zod issue, a bad amount, an unknown
 * route) can be reported at its line. `${NAME}` and `${NAME:-default}` in string values are replaced from the
 * environment here, before validation; a missing variable without a default is a problem at its line.
 */
import { readFileSync } from "node:fs";

import { isMap, isSeq, LineCounter, parseDocument, type Document } from "yaml";

import { type ConfigProblem, ConfigError, formatField } from "./config-error.js";

export interface YamlSource {
  readonly file: string;
  /** the document as plain data, environment variables substituted */
  readonly data: unknown;
  /** 1-based line and column of the value at `path`, or of its nearest existing parent */
  locate(path: readonly PropertyKey[]): { line: number; column: number } | undefined;
  /** a problem at `path` in this file */
  problem(path: readonly PropertyKey[], message: string): ConfigProblem;
}

export type Env = Readonly<Record<string, string | undefined>>;

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function readYamlFile(file: string, env: Env = process.env): YamlSource {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(error);
    throw new ConfigError([{ file, field: "", message: `cannot read the configuration file (${reason})` }]);
  }
  return parseYamlText(text, file, env);
}

export function parseYamlText(text: string, file: string, env: Env = process.env): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((error) => {
        const position = lineCounter.linePos(error.pos[0]);
        return { file, line: position.line, column: position.col, field: "", message: `YAML: ${firstLine(error.message)}` };
      }),
    );
  }
  const locate = (path: readonly PropertyKey[]) => locateIn(doc, lineCounter, path);
  const problem = (path: readonly PropertyKey[], message: string): ConfigProblem => {
    const position = locate(path);
    return { file, line: position?.line, column: position?.column, field: formatField(path), message };
  };
  const problems: ConfigProblem[] = [];
  const data = substitute(doc.toJS({ maxAliasCount: 100 }), [], env, (path, message) => problems.push(problem(path, message)));
  if (problems.length > 0) throw new ConfigError(problems);
  return { file, data, locate, problem };
}

function firstLine(message: string): string {
  return message.split("\n", 1)[0] ?? message;
}

/** Where `path` is written: the key of a mapping entry (its line is what people look for), else the item itself. */
function locateIn(
  doc: Document,
  lineCounter: LineCounter,
  path: readonly PropertyKey[],
): { line: number; column: number } | undefined {
  const at = (range: readonly number[] | null | undefined) => {
    if (range === undefined || range === null || range[0] === undefined) return undefined;
    const position = lineCounter.linePos(range[0]);
    return { line: position.line, column: position.col };
  };
  for (let depth = path.length; depth >= 0; depth--) {
    const prefix = path.slice(0, depth);
    if (prefix.length === 0) return at((doc.contents as { range?: number[] } | null)?.range);
    const parent = prefix.length === 1 ? doc.contents : doc.getIn(prefix.slice(0, -1), true);
    const last = prefix[prefix.length - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((item) => (item.key as { value?: unknown } | null)?.value === last);
      const found = at((pair?.key as { range?: number[] } | undefined)?.range);
      if (found !== undefined) return found;
    } else if (isSeq(parent) && typeof last === "number") {
      const found = at((parent.items[last] as { range?: number[] } | undefined)?.range);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function substitute(
  value: unknown,
  path: PropertyKey[],
  env: Env,
  report: (path: readonly PropertyKey[], message: string) => void,
): unknown {
  if (typeof value === "string") {
    if (!value.includes("${")) return value;
    return value.replace(VARIABLE, (whole, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== "") return found;
      if (fallback !== undefined) return fallback;
      report(path, `environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
      return whole;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substitute(item, [...path, index], env, report));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = substitute(item, [...path, key], env, report);
    return out;
  }
  return value;
}
