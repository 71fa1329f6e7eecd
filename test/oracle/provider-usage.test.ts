/**
 * The Chainlink Functions source oracle/functions/provider-usage.js, run in Node by oracle/functions/simulator.ts
 * against a usage API on 127.0.0.1: what it answers, and every way it refuses to answer.
 */
import { readFileSync } from "node:fs";

import { expect } from "chai";

import { decodeRequest, encodeInt256, encodeString, encodeUint256, runSource, toFulfillment } from "../../oracle/functions/simulator.js";
import { send, UsageServer } from "./usage-server.js";

const SOURCE = readFileSync(new URL("../../oracle/functions/provider-usage.js", import.meta.url), "utf8");
const KEY = "usage-key-for-node-tests";
const PAYER = "0x00000000000000000000000000000000000a11ce";

function uint(bytes: Uint8Array | undefined): bigint {
  return BigInt("0x" + Buffer.from(bytes!).toString("hex"));
}

describe("Functions source: provider-usage.js", function () {
  const server = new UsageServer(KEY);
  const args = (overrides: Partial<Record<number, string>> = {}) => {
    const base = [server.url, "openai", "gpt-4-turbo", PAYER, "1000", "2000"];
    for (const [i, v] of Object.entries(overrides)) base[Number(i)] = v!;
    return base;
  };
  const run = (a = args(), secrets: Record<string, string> = { usageApiKey: KEY }) => runSource(SOURCE, { args: a, secrets });

  before(async function () {
    await server.start();
  });
  after(async function () {
    await server.stop();
  });
  beforeEach(function () {
    server.records.length = 0;
    server.queries.length = 0;
    server.override = undefined;
  });

  it("answers the tokens the provider reports for the payer, provider and model in [start, end), as one uint256", async function () {
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 1000, tokens: 700n });
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 1999, tokens: 300n });
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 2000, tokens: 5n }); // end is exclusive
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 999, tokens: 5n });
    server.add({ provider: "groq", model: "gpt-4-turbo", payer: PAYER, at: 1500, tokens: 5n });
    server.add({ provider: "openai", model: "mixtral", payer: PAYER, at: 1500, tokens: 5n });
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: "0x" + "b".repeat(40), at: 1500, tokens: 5n });
    const result = await run();
    expect(result.error).to.equal(undefined);
    expect(result.response).to.have.length(32);
    expect(uint(result.response)).to.equal(1000n);
    expect(result.httpRequests).to.equal(1);
    expect(server.queries).to.deep.equal([{ provider: "openai", model: "gpt-4-turbo", payer: PAYER, start: "1000", end: "2000" }]);
  });

  it("answers zero for no usage, and usage up to 2^64 - 1", async function () {
    expect(uint((await run()).response)).to.equal(0n);
    server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 1500, tokens: 2n ** 64n - 1n });
    expect(uint((await run()).response)).to.equal(2n ** 64n - 1n);
  });

  it("accepts tokens as a JSON number when it is a safe integer", async function () {
    server.override = (q, res) => (send(res, 200, { ...q, tokens: 12345 }), true);
    expect(uint((await run()).response)).to.equal(12345n);
  });

  it("sends the key as a bearer token and never puts it in an error", async function () {
    const result = await run(args(), { usageApiKey: "wrong" });
    expect(result.error).to.equal("usage API answered HTTP 401");
    const missing = await run(args(), {});
    expect(missing.error).to.equal("secret usageApiKey is missing");
    expect(server.queries).to.have.length(0);
  });

  it("fails on a server error and an unreachable or hung-up API", async function () {
    server.override = (_q, res) => (send(res, 500, { error: "boom" }), true);
    expect((await run()).error).to.equal("usage API answered HTTP 500");
    server.override = (_q, res) => (res.destroy(), true);
    expect((await run()).error).to.equal("usage API unreachable");
    expect((await run(args({ 0: "http://127.0.0.1:1" }))).error).to.equal("usage API unreachable");
  });

  it("fails when the API answers another query than the one asked", async function () {
    for (const field of ["provider", "model", "payer", "start", "end"] as const) {
      server.override = (q, res) => (send(res, 200, { ...q, [field]: field === "payer" ? "0x" + "c".repeat(40) : "9", tokens: "1" }), true);
      expect((await run()).error, field).to.equal("usage API answered another query");
    }
    server.override = (q, res) => (send(res, 200, { ...q, payer: PAYER.toUpperCase().replace("0X", "0x"), tokens: "4" }), true);
    expect(uint((await run()).response)).to.equal(4n); // the payer's case does not matter
  });

  it("fails on tokens that are not a non-negative integer below 2^64", async function () {
    const bad: unknown[] = ["-1", "1.5", "1e3", "", "0x10", "01", (2n ** 64n).toString(), "99999999999999999999999", 1.5, -3, 2 ** 60, null, undefined, {}];
    for (const tokens of bad) {
      server.override = (q, res) => (send(res, 200, { ...q, tokens }), true);
      const result = await run();
      expect(result.error, String(tokens)).to.match(/^tokens /);
    }
    server.override = (_q, res) => (send(res, 200, "not json"), true);
    expect((await run()).error).to.equal("usage API answered no JSON object");
  });

  it("fails on malformed arguments before any request", async function () {
    const cases: [string[], string][] = [
      [args().slice(0, 5), "expected 6 args, got 5"],
      [args({ 0: "ftp://example.com" }), "usage API URL is not http(s)"],
      [args({ 3: PAYER.toUpperCase() }), "payer is not a lowercase address"],
      [args({ 3: "0x1234" }), "payer is not a lowercase address"],
      [args({ 4: "2000" }), "bad usage window"],
      [args({ 5: "-1" }), "bad usage window"],
    ];
    for (const [a, message] of cases) expect((await run(a)).error).to.equal(message);
    expect(server.queries).to.have.length(0);
  });

  it("runs in a sandbox: no Node globals, only the Functions API", async function () {
    const probe = await runSource(
      "return Functions.encodeString([typeof require, typeof process, typeof fetch, typeof Functions.makeHttpRequest].join(','))",
    );
    expect(Buffer.from(probe.response!).toString()).to.equal("undefined,undefined,undefined,function");
  });
});

describe("Functions simulator", function () {
  it("enforces the DON's limits: response size, HTTP request count, execution time, return type", async function () {
    expect((await runSource("return new Uint8Array(257)")).error).to.equal("response of 257 bytes exceeds 256");
    expect((await runSource("return new Uint8Array(256)")).response).to.have.length(256);
    expect((await runSource("return 'text'")).error).to.equal("source did not return a Uint8Array");
    const many = "for (let i = 0; i < 6; i++) await Functions.makeHttpRequest({ url: 'http://127.0.0.1:1' }); return new Uint8Array(0)";
    expect((await runSource(many)).error).to.equal("more than 5 HTTP requests");
    const slow = await runSource("await new Promise(() => {}); return new Uint8Array(0)", { executionTimeoutMs: 50 });
    expect(slow.error).to.equal("execution exceeded 50 ms");
    expect((await runSource("throw Error('boom')")).error).to.equal("boom");
  });

  it("encodes like the Functions library", function () {
    expect(uint(encodeUint256(1n))).to.equal(1n);
    expect(uint(encodeUint256(2n ** 256n - 1n))).to.equal(2n ** 256n - 1n);
    expect(() => encodeUint256(-1n)).to.throw();
    expect(() => encodeUint256(2n ** 256n)).to.throw();
    expect(() => encodeUint256(1.5)).to.throw();
    expect(uint(encodeInt256(-1n))).to.equal(2n ** 256n - 1n);
    expect(() => encodeInt256(2n ** 255n)).to.throw();
    expect(Buffer.from(encodeString("héllo")).toString()).to.equal("héllo");
  });

  it("turns a run into the router's (response, err) pair", function () {
    expect(toFulfillment({ response: encodeUint256(5n), httpRequests: 0, logs: [] })).to.deep.equal([
      "0x" + "00".repeat(31) + "05",
      "0x",
    ]);
    expect(toFulfillment({ error: "no", httpRequests: 0, logs: [] })).to.deep.equal(["0x", "0x6e6f"]);
  });

  it("decodes CBOR requests: text, unsigned, bignum, arrays and bytes", function () {
    // "source" "x" "args" [_ "a" "b"] "language" 0 "codeLocation" tag2(h'01') "secretsLocation" 2 "secrets" h'abcd'
    const hex =
      "66736f75726365" + "6178" + "6461726773" + "9f" + "6161" + "6162" + "ff" + "686c616e6775616765" + "00" +
      "6c636f64654c6f636174696f6e" + "c2" + "4101" + "6f736563726574734c6f636174696f6e" + "02" + "67736563726574" + "73" + "42abcd";
    const decoded = decodeRequest("0x" + hex);
    expect(decoded.source).to.equal("x");
    expect(decoded.args).to.deep.equal(["a", "b"]);
    expect(decoded.codeLocation).to.equal(1);
    expect(decoded.secretsLocation).to.equal(2);
    expect(Buffer.from(decoded.secrets!).toString("hex")).to.equal("abcd");
    expect(() => decodeRequest("0x66736f75726365")).to.throw("CBOR: truncated");
    expect(() => decodeRequest("0x01")).to.throw("key is not a text string");
  });
});
