/**
 * Loads the relayer configuration from YAML: the main file and the files it lists under `include:` (paths relative
 * to the including file; a directory includes its `*.yaml` and `*.yml` files in name order). This is how the seed's
 * `litellm-router.yaml` and `payment_channels` file are used unchanged beside our own settings, and how an operator
 * adds routes, aliases and payers beside them without editing them.
 *
 * Sources are merged in this order, later ones winning: each file's includes in the order listed (each after its own
 * includes), then the file itself; so the main file has the last word, and an operator's file listed after the
 * seed's overrides it. How values merge (mappings by key, routes / payment_channels / payers item by item) is in
 * ./merge-sources.ts; every value a later source replaces is returned in `overrides`, naming both places.
 * Throws a ConfigError that names the file, line and field of every problem.
 */
import { readdirSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve as resolvePath } from "node:path";

import type { z } from "zod";

import { type ConfigProblem, ConfigError } from "./config-error.js";
import { SourceMerger } from "./merge-sources.js";
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

/** `path` itself, or the YAML files of the directory `path`, in name order (null: not a directory). */
function directoryFiles(path: string): string[] | null {
  try {
    if (!statSync(path).isDirectory()) return null;
  } catch {
    return null;
  }
  return readdirSync(path)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(path, name));
}

export function loadRelayerConfig(file: string, options: LoadOptions = {}): RelayerConfig {
  const env = options.env ?? process.env;
  /** every file read, in the order read (the main one first) */
  const sources: YamlSource[] = [];
  /** the same files in merge order: each file after its includes */
  const merged: Array<{ source: YamlSource; record: Record<string, unknown> }> = [];
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
    const include = record["include"];
    if (include !== undefined) {
      if (!Array.isArray(include) || include.some((item) => typeof item !== "string" || item === "")) {
        problems.push(source.problem(["include"], "include is a list of YAML file (or directory) paths, relative to this file"));
      } else if (depth >= MAX_INCLUDE_DEPTH) {
        problems.push(source.problem(["include"], `includes nest deeper than ${MAX_INCLUDE_DEPTH} files`));
      } else {
        include.forEach((item: string, index) => {
          const target = resolvePath(dirname(source.file), item);
          const files = directoryFiles(target);
          for (const one of files ?? [target]) visit(displayPath(one), { source, index }, depth + 1);
        });
      }
    }
    merged.push({ source, record });
  };

  visit(file, undefined, 0);
  const merger = new SourceMerger();
  for (const { source, record } of merged) merger.add(source, record);
  problems.push(...merger.problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const root = sources[0]!;
  const document = merger.data;

  const problemAt = (path: readonly PropertyKey[], message: string): ConfigProblem => merger.problemAt(path, message, root);
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

  const token = tokenSection().safeParse(document["token"]);
  if (!token.success) throw new ConfigError(issueProblems(token.error.issues, ["token"]));

  const parsed = relayerConfigSchema({ token: token.data }).safeParse(document);
  if (!parsed.success) throw new ConfigError(issueProblems(parsed.error.issues));

  const result = resolve(parsed.data, token.data, sources.map((source) => source.file));
  if (result.config === undefined) {
    throw new ConfigError(result.problems.map((problem) => problemAt(problem.path, problem.message)));
  }
  return merger.overrides.length === 0 ? result.config : { ...result.config, overrides: merger.overrides };
}

