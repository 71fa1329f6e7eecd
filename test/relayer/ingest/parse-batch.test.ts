/**
 * parseBatch, the parse workers' whole job, with no I/O: whatever one entry holds, the other entries of its body are
 * kept and that entry alone is refused (or billed, or kept as unbillable), never an exception that would answer the
 * whole POST with a 500 (LiteLLM's logger does not send a refused batch again).
 */
import { expect } from "chai";

import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { batchContext, parseBatch } from "../../../relayer/ingest/parse-batch.js";
import { call, type Json, uniquePrefix, writeConfig } from "./harness.js";

describe("parseBatch: one entry's content never costs the other entries of its body", function () {
  const context = batchContext(loadRelayerConfig(writeConfig(uniquePrefix("parse")), { env: {} }));
  const keptOf = (body: string) => {
    const batch = parseBatch(Buffer.from(body, "utf8"), Date.now(), context);
    if (!batch.ok) throw new Error(`the whole body was refused: ${batch.reason}`);
    return { entries: batch.prepared.flatMap((part) => part.entries.map((entry) => entry.key)), invalid: batch.invalid.map((entry) => entry.index) };
  };

  it("refuses just the entry when NaN, Infinity or -Infinity replaces any number of a real log, nested objects included", function () {
    const entry = call({ usage: { prompt_tokens: 4, details: { cached: 5 } } }, { requester_metadata: { a: [1, { b: 2.5 }], c: 3 } });
    const [before, after] = [call(), call()];
    const text = JSON.stringify(entry);
    const numbers = [...text.matchAll(/(?<=[:,[])-?\d+(\.\d+)?([eE][+-]?\d+)?(?=[,\]}])/g)];
    expect(numbers.length).to.be.greaterThan(50);
    for (const number of numbers) {
      for (const token of ["NaN", "Infinity", "-Infinity"]) {
        const mutated = text.slice(0, number.index) + token + text.slice(number.index + number[0].length);
        const where = `${text.slice(Math.max(0, number.index - 40), number.index)}${token}`;
        expect(keptOf(`[${JSON.stringify(before)},${mutated},${JSON.stringify(after)}]`), where).to.deep.equal({
          entries: [before["id"], after["id"]],
          invalid: [1],
        });
      }
    }
  });

  it("keeps the other entries whatever odd value any field of a log holds (to three levels deep)", function () {
    const odd: unknown[] = [null, true, 0, -1, 1e300, -1e-300, 2 ** 53 + 2, "", "x".repeat(300), "1e400", "-5", "NaN", "2024-13-45T99:99:99Z", "\u0000", "\ud800", [], [1], {}, { a: 1 }, "99999999999999999999"];
    const base = call();
    const paths: string[][] = [];
    (function walk(value: unknown, path: string[]) {
      if (path.length > 0) paths.push(path);
      if (value !== null && typeof value === "object" && !Array.isArray(value) && path.length < 3) for (const [name, inner] of Object.entries(value)) walk(inner, [...path, name]);
    })(base, []);
    expect(paths.length).to.be.greaterThan(100);
    const [before, after] = [call(), call()];
    for (const path of paths) {
      for (const value of odd) {
        const entry = structuredClone(base) as Json;
        let parent = entry as Record<string, unknown>;
        for (const name of path.slice(0, -1)) parent = parent[name] as Record<string, unknown>;
        parent[path.at(-1)!] = value;
        const kept = keptOf(JSON.stringify([before, entry, after]));
        const where = `${path.join(".")} = ${JSON.stringify(value)?.slice(0, 40)}`;
        expect(kept.entries.filter((key) => key === before["id"] || key === after["id"]), where).to.have.length(2);
      }
    }
  });
});
