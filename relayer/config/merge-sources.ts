/**
 * Merges the configuration's YAML files into one document, later sources winning, and remembers where every value
 * came from (so a problem is reported at its own file, line and field) and what each later source overrode (so the
 * operator is told, naming both places).
 *
 * The rules, by shape:
 * - mappings merge key by key, at every depth (`chains.arbitrum.rpc_urls` of a later file replaces only that value);
 * - `routes` (by `route`), `payment_channels` (by `provider`) and `payers` (by the selectors of the rule: the same
 *   `key_alias: x` is the same rule; `any: true` is one rule) merge item by item: an item with a known name merges
 *   into the earlier one where it stands, field by field (`- route: cost_optimized` with only a `budget:` changes
 *   the price and keeps the rest), a new one is appended;
 * - any other value (a scalar, another list) is replaced whole;
 * - a value whose shape differs from the earlier one (a list where a mapping was) is a problem, never a silent
 *   replacement.
 * A replaced value that is equal to the earlier one is not reported.
 */
import { type ConfigProblem, formatField } from "./config-error.js";
import { SELECTORS } from "./sections/payers.js";
import type { YamlSource } from "./yaml-file.js";

/** A value of a later source that replaced one of an earlier source. */
export interface ConfigOverride {
  /** where the winning value is */
  readonly at: ConfigPlace;
  /** where the value it replaced is */
  readonly overrides: ConfigPlace;
}

export interface ConfigPlace {
  readonly file: string;
  readonly line?: number | undefined;
  readonly column?: number | undefined;
  /** the field in that file, e.g. `routes[0].budget` */
  readonly field: string;
}

function formatPlace(place: ConfigPlace): string {
  return `${place.line === undefined ? place.file : `${place.file}:${place.line}:${place.column ?? 1}`} ${place.field}`;
}

/** `ops.yaml:3:5 routes[0] overrides config/litellm-router.yaml:3:5 routes[0] (later sources win)` */
export function formatOverride(override: ConfigOverride): string {
  return `${formatPlace(override.at)} overrides ${formatPlace(override.overrides)} (later sources win)`;
}

type Path = readonly PropertyKey[];

interface Origin {
  readonly source: YamlSource;
  /** the path in that source */
  readonly path: Path;
}

const KEYED_LISTS: Readonly<Record<string, (item: unknown) => string | undefined>> = {
  routes: (item) => nameOf(item, "route"),
  payment_channels: (item) => nameOf(item, "provider"),
  payers: payerRuleKey,
};

function nameOf(item: unknown, field: string): string | undefined {
  if (!isMapping(item)) return undefined;
  const value = item[field];
  return typeof value === "string" ? value.trim() : undefined;
}

/** The selectors of a payer rule, e.g. `key_alias=prod-backend`: two rules with the same selectors are one rule. */
function payerRuleKey(item: unknown): string | undefined {
  if (!isMapping(item)) return undefined;
  if (item["any"] === true) return "any";
  const parts = SELECTORS.filter((selector) => item[selector] !== undefined).map((selector) => {
    const value = item[selector];
    const values = Array.isArray(value) ? value.map(String).sort() : [String(value)];
    return `${selector}=${values.join(",")}`;
  });
  return parts.length === 0 ? undefined : parts.join("&");
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function shapeOf(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (isMapping(value)) return "a mapping";
  return value === null ? "empty" : "a single value";
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const SEPARATOR = "\u0000";
const keyOf = (path: Path) => path.map(String).join(SEPARATOR);

export class SourceMerger {
  /** the merged document */
  readonly data: Record<string, unknown> = {};
  readonly overrides: ConfigOverride[] = [];
  readonly problems: ConfigProblem[] = [];
  private readonly origins = new Map<string, Origin>();

  /** Merges one file's top-level sections (`include` excluded) over what was merged before. */
  add(source: YamlSource, record: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(record)) {
      if (key === "include") continue;
      this.merge(this.data, key, value, source, [key], [key]);
    }
  }

  /** The source and its own path of the value at `path` of the merged document (null: no source has it). */
  originOf(path: Path): Origin | null {
    for (let depth = path.length; depth > 0; depth--) {
      const origin = this.origins.get(keyOf(path.slice(0, depth)));
      if (origin !== undefined) return { source: origin.source, path: [...origin.path, ...path.slice(depth)] };
    }
    return null;
  }

  /** A problem at `path` of the merged document, placed in the file (and at the field) it came from. */
  problemAt(path: Path, message: string, fallback: YamlSource): ConfigProblem {
    const origin = this.originOf(path);
    return origin === null ? fallback.problem(path, message) : origin.source.problem(origin.path, message);
  }

  private merge(parent: Record<string, unknown> | unknown[], key: string | number, value: unknown, source: YamlSource, path: Path, sourcePath: Path): void {
    const slot = parent as Record<string | number, unknown>;
    const current = slot[key];
    if (current === undefined) {
      slot[key] = structuredClone(value);
      this.setOrigin(path, source, sourcePath);
      return;
    }
    const keyed = path.length === 1 ? KEYED_LISTS[String(path[0])] : undefined;
    if (keyed !== undefined && Array.isArray(current) && Array.isArray(value)) {
      this.mergeList(current, value, keyed, source, path, sourcePath);
      return;
    }
    if (isMapping(current) && isMapping(value)) {
      for (const [name, item] of Object.entries(value)) this.merge(current, name, item, source, [...path, name], [...sourcePath, name]);
      return;
    }
    const before = this.originOf(path);
    if (shapeOf(current) !== shapeOf(value) && value !== null && current !== null) {
      const where = before === null ? "an earlier file" : this.placeOf(before).file;
      this.problems.push(
        source.problem(sourcePath, `is ${shapeOf(value)} here but ${shapeOf(current)} in ${where} (${formatField(before?.path ?? path)}): write it in the same form to override it`),
      );
      return;
    }
    this.replace(slot, key, value, source, path, sourcePath, before);
  }

  private mergeList(current: unknown[], value: readonly unknown[], keyed: (item: unknown) => string | undefined, source: YamlSource, path: Path, sourcePath: Path): void {
    const named = new Set<string>();
    value.forEach((item, index) => {
      const name = keyed(item);
      const at = name === undefined || named.has(name) ? -1 : current.findIndex((existing) => keyed(existing) === name);
      if (name !== undefined) named.add(name);
      if (at === -1) {
        // a new item, or one named twice in this file (resolve reports that at its place)
        current.push(structuredClone(item));
        this.setOrigin([...path, current.length - 1], source, [...sourcePath, index]);
        return;
      }
      this.merge(current, at, item, source, [...path, at], [...sourcePath, index]);
    });
  }

  private replace(slot: Record<string | number, unknown>, key: string | number, value: unknown, source: YamlSource, path: Path, sourcePath: Path, before: Origin | null): void {
    if (!equal(slot[key], value) && before !== null) {
      this.overrides.push({ at: this.placeOf({ source, path: sourcePath }), overrides: this.placeOf(before) });
    }
    slot[key] = structuredClone(value);
    const prefix = keyOf(path);
    for (const known of [...this.origins.keys()]) if (known === prefix || known.startsWith(prefix + SEPARATOR)) this.origins.delete(known);
    this.setOrigin(path, source, sourcePath);
  }

  private setOrigin(path: Path, source: YamlSource, sourcePath: Path): void {
    this.origins.set(keyOf(path), { source, path: sourcePath });
  }

  private placeOf(origin: Origin): ConfigPlace {
    const position = origin.source.locate(origin.path);
    return { file: origin.source.file, line: position?.line, column: position?.column, field: formatField(origin.path) };
  }
}
