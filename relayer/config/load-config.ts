/**
 * Loads the relayer configuration from YAML: the main file and the files it lists under `include:` (paths
 * relative to the including file), merged by top-level key (a key defined in two files is an error). This is how
 * the seed's `litellm-router.yaml` and `payment_channels` file are used unchanged beside our own settings.
 * Throws a ConfigError that names the file, line and field of every problem.
 */
import { dirname, isAbsolute, relative, resolve as resolvePath } from "node:path";

import type { z } from "zod";

import { type ConfigProblem, ConfigError } from "./config-error.js";
import { relayerConfigSchema, resolve, tokenSection, type RelayerConfig } from "./relayer-config.js";
import { type Env, readYamlFile, type YamlSource } from "./yaml-file.js";

export interface LoadOptions {
  /** environment for ${VAR} substitution and defaults; process.env by default */
  readonly env?: Env;
}

const MAX_INCLUDE_DEPTH = 8;

/** An included file as people read it: relative to the working directory when it is below it. */
function displayPath(absolute: string): string {
  const shown = relative(process.cwd(), absolute);
  return shown === "" || shown.startsWith("..") || isAbsolute(shown) ? absolute : shown;
}

export function loadRelayerConfig(file: string, options: LoadOptions = {}): RelayerConfig {
  const env = options.env ?? process.env;
  const sources: YamlSource[] = [];
  const owner = new Map<string, YamlSource>();
  const merged: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];

  const visit = (path: string, from: { source: YamlSource; index: number } | undefined, depth: number): void => {
    const absolute = resolvePath(path);
    if (sources.some((source) => resolvePath(source.file) === absolute)) {
      if (from !== undefined) problems.push(from.source.problem(["include", from.index], `${path} is included twice (or includes itself)`));
      return;
    }
    let source: YamlSource;
    try {
      source = readYamlFile(path, env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      if (from !== undefined && error.problems.length === 1 && error.problems[0]!.line === undefined) {
        problems.push(from.source.problem(["include", from.index], `${path}: ${error.problems[0]!.message}`));
      } else {
        problems.push(...error.problems);
      }
      return;
    }
    sources.push(source);
    const data = source.data ?? {};
    if (typeof data !== "object" || Array.isArray(data)) {
      problems.push(source.problem([], "the top level must be a mapping of sections (server:, redis:, routes:, ...)"));
      return;
    }
    const record = data as Record<string, unknown>;
    for (const [key, value] of Object.entries(record)) {
      if (key === "include") continue;
      const previous = owner.get(key);
      if (previous !== undefined) {
        problems.push(source.problem([key], `"${key}" is already defined in ${previous.file}; keep one of them`));
        continue;
      }
      owner.set(key, source);
      merged[key] = value;
    }
    const include = record["include"];
    if (include === undefined) return;
    if (!Array.isArray(include) || include.some((item) => typeof item !== "string" || item === "")) {
      problems.push(source.problem(["include"], "include is a list of YAML file paths (relative to this file)"));
      return;
    }
    if (depth >= MAX_INCLUDE_DEPTH) {
      problems.push(source.problem(["include"], `includes nest deeper than ${MAX_INCLUDE_DEPTH} files`));
      return;
    }
    include.forEach((item: string, index) => visit(displayPath(resolvePath(dirname(source.file), item)), { source, index }, depth + 1));
  };

  visit(file, undefined, 0);
  if (problems.length > 0) throw new ConfigError(problems);
  const root = sources[0]!;

  const problemAt = (path: readonly PropertyKey[], message: string): ConfigProblem => {
    const first = path[0];
    const source = typeof first === "string" ? (owner.get(first) ?? root) : root;
    return source.problem(path, message);
  };
  const issueProblems = (issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []) =>
    issues.flatMap((issue) => {
      const path = [...prefix, ...issue.path];
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((key) =>
          problemAt([...path, key], `unknown field "${key}" (a typo, or a section this version does not have?)`),
        );
      }
      return [problemAt(path, issue.message)];
    });

  const token = tokenSection().safeParse(merged["token"]);
  if (!token.success) throw new ConfigError(issueProblems(token.error.issues, ["token"]));

  const parsed = relayerConfigSchema({ token: token.data }).safeParse(merged);
  if (!parsed.success) throw new ConfigError(issueProblems(parsed.error.issues));

  const result = resolve(parsed.data, token.data, sources.map((source) => source.file));
  if (result.config === undefined) {
    throw new ConfigError(result.problems.map((problem) => problemAt(problem.path, problem.message)));
  }
  return result.config;
}

