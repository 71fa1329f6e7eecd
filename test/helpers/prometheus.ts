/** Reading Prometheus: a text exposition parsed into samples, and the metric names a PromQL expression uses. */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  /** every name a query may use: each # TYPE'd metric, and a histogram's _bucket, _sum, _count (a summary's _sum, _count) */
  readonly names: ReadonlySet<string>;
  readonly samples: readonly Sample[];
}

/** Parses the Prometheus text format (version 0.0.4), as prom-client writes it. */
export function parseExposition(text: string): Exposition {
  const names = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      names.add(name!);
      if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${name}${suffix}`);
      if (type === "summary") for (const suffix of ["_sum", "_count"]) names.add(`${name}${suffix}`);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { names, samples };
}

/** The samples of `name` whose labels include `labels`. */
export function samplesOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the samples of `name` whose labels include `labels` (0 when there are none). */
export function total(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return samplesOf(exposition, name, labels).reduce((sum, s) => sum + s.value, 0);
}

/** The metric names (agentgpt_*) a PromQL expression reads. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bagentgpt_[a-z0-9_]+/g) ?? [])];
}
