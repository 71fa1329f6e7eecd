/**
 * relayer/telemetry: per-stage readiness (standby, failures with their fix, timeouts, problems raised by stages), the
 * metrics listener of a process without ingest, and the configuration that places it (metrics.listen) and sets the
 * settler's balance floor (settler.min_signer_balance, per chain).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { parseEther } from "ethers";
import type { Logger } from "pino";

import { ConfigError, loadRelayerConfig, type RelayerConfig } from "../../../relayer/config/index.js";
import { ListenError } from "../../../relayer/ingest/listen.js";
import { failed, needsTelemetryListener, ok, ProcessTelemetry, serveOperations, sharedEach, startTelemetryListener } from "../../../relayer/telemetry/index.js";
import { parseExposition, samplesOf } from "../../helpers/prometheus.js";

const BASE = `token: { symbol: AGPT, decimals: 18 }
server: { tokens: ["0123456789abcdef0123456789abcdef"] }
chains:
  arbitrum: { chain_id: 42161 }
  polygon: { chain_id: 137, min_signer_balance: 5 }
routes:
  - route: r
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai]
payers: []
`;

function load(extra: string): RelayerConfig {
  const dir = mkdtempSync(join(tmpdir(), "agentgpt-telemetry-"));
  try {
    writeFileSync(join(dir, "relayer.yaml"), BASE + extra);
    return loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function problems(extra: string): string[] {
  try {
    load(extra);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.field}: ${p.message}`);
  }
  return expect.fail("the configuration loaded, but it should not");
}

describe("relayer/telemetry", function () {
  describe("sharedEach (the per-chain read behind the scrape-time gauges)", function () {
    it("reads every chain once for concurrent callers, leaves a failing chain out, and sees chains added later", async function () {
      const reads: string[] = [];
      const sources = new Map<string, { fail: boolean; value: number }>([
        ["arbitrum", { fail: false, value: 3 }],
        ["base", { fail: true, value: 0 }],
      ]);
      const read = sharedEach(sources, async (source) => {
        reads.push(String(source.value));
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (source.fail) throw new Error("Redis down");
        return source.value;
      });
      const [first, second] = await Promise.all([read(), read()]);
      expect(second).to.equal(first); // one read for both gauges of a scrape
      expect([...first]).to.deep.equal([["arbitrum", 3]]);
      expect(reads).to.deep.equal(["3", "0"]);
      sources.set("optimism", { fail: false, value: 7 });
      expect([...(await read())]).to.deep.equal([["arbitrum", 3], ["optimism", 7]]);
    });
  });

  describe("ProcessReadiness", function () {
    it("is ready with a standby stage, and says which stage stands by", async function () {
      const telemetry = new ProcessTelemetry({ defaultMetrics: false });
      telemetry.readiness.add("settler:arbitrum", "redis", async () => ok());
      telemetry.readiness.add("settler:arbitrum", "lease", async () => ({ ok: true, standby: true, detail: "standby: another process holds it" }));
      const report = await telemetry.readiness.report();
      expect(report.ready).to.equal(true);
      expect(report.failures).to.deep.equal([]);
      expect(report.stages["settler:arbitrum"]).to.deep.equal({
        ready: true,
        standby: true,
        checks: { redis: { ok: true, detail: "ok" }, lease: { ok: true, standby: true, detail: "standby: another process holds it" } },
      });
    });

    it("names every failed check with its stage, turns a throw or a hang into a failure, and reports problems raised by no check under 'process'", async function () {
      const telemetry = new ProcessTelemetry({ defaultMetrics: false });
      const readiness = telemetry.readiness;
      readiness.add("ingest", "redis", async () => {
        throw new Error("Redis did not answer PING within 1000 ms");
      });
      readiness.add("settler:arbitrum", "rpc", () => new Promise(() => undefined));
      readiness.add("settler:arbitrum", "balance", async () => failed("fund it"));
      readiness.add("settler:arbitrum", "chain", readiness.raised("settlement on chain arbitrum"));
      readiness.set("settlement on chain arbitrum", "chain arbitrum was reset");
      readiness.set("backfill", "database unreachable");
      const report = await readiness.report(100);
      expect(report.ready).to.equal(false);
      expect(report.failures).to.deep.equal([
        "ingest redis: Redis did not answer PING within 1000 ms",
        "settler:arbitrum rpc: rpc: no answer within 100 ms",
        "settler:arbitrum balance: fund it",
        "settler:arbitrum chain: chain arbitrum was reset",
        "backfill: database unreachable",
      ]);
      expect(report.stages["process"]).to.deep.equal({ ready: false, standby: false, checks: { backfill: { ok: false, detail: "database unreachable" } } });
      // cleared problems and removed checks no longer count
      readiness.set("settlement on chain arbitrum", null);
      readiness.set("backfill", null);
      const removals = ["ingest", "settler:arbitrum"].flatMap((stage) => ["redis", "rpc", "balance"].map((name) => readiness.add(stage, name, async () => ok())));
      expect((await readiness.report(100)).ready).to.equal(true);
      for (const remove of removals) remove();
      expect(readiness.stages()).to.deep.equal(["settler:arbitrum"]);
    });
  });

  describe("metrics listener", function () {
    it("serves /metrics, /readyz and /healthz of the process, with the lease gauge per stage and chain", async function () {
      const telemetry = new ProcessTelemetry({ defaultMetrics: false });
      let held = true;
      const remove = telemetry.registerLease("settler", "arbitrum", () => held);
      telemetry.registerLease("batcher", "arbitrum", () => false);
      telemetry.readiness.add("settler:arbitrum", "balance", async () => failed("the signer holds 0, not above 0: fund it"));
      const config = load("metrics: { listen: 127.0.0.1:0, default_metrics: false }\n");
      expect(needsTelemetryListener(config, true)).to.equal(true);
      const listener = await startTelemetryListener(config, telemetry);
      try {
        const scrape = async () => parseExposition(await (await fetch(`${listener.url}/metrics`)).text());
        let metrics = await scrape();
        expect(samplesOf(metrics, "agentgpt_lease_held").map((s) => [s.labels["stage"], s.labels["chain"], s.value])).to.deep.equal([
          ["settler", "arbitrum", 1],
          ["batcher", "arbitrum", 0],
        ]);
        held = false;
        metrics = await scrape();
        expect(samplesOf(metrics, "agentgpt_lease_held", { stage: "settler" })[0]!.value).to.equal(0);
        remove();
        expect(samplesOf(await scrape(), "agentgpt_lease_held", { stage: "settler" })).to.deep.equal([]);

        const ready = await fetch(`${listener.url}/readyz`);
        expect(ready.status).to.equal(503);
        expect(await ready.json()).to.deep.equal({
          error: "not_ready",
          reason: "settler:arbitrum balance: the signer holds 0, not above 0: fund it",
          stages: { "settler:arbitrum": { ready: false, standby: false, checks: { balance: { ok: false, detail: "the signer holds 0, not above 0: fund it" } } } },
        });
        expect(await (await fetch(`${listener.url}/healthz`)).json()).to.deep.equal({ status: "ok" });
        expect((await fetch(`${listener.url}/litellm/spend`, { method: "POST" })).status).to.equal(404);
      } finally {
        await listener.stop();
      }
    });

    it("refuses a port in use, naming metrics.listen and the fix", async function () {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as { port: number }).port;
      try {
        const config = load(`metrics: { listen: "127.0.0.1:${port}" }\n`);
        const error = await startTelemetryListener(config, new ProcessTelemetry({ defaultMetrics: false })).then(
          () => expect.fail("listened on a port in use"),
          (e: unknown) => e,
        );
        expect(error).to.be.instanceOf(ListenError);
        expect((error as Error).message).to.match(new RegExp(`^metrics\\.listen: 127\\.0\\.0\\.1:${port} is already in use by another process: .*set metrics\\.listen in .*relayer\\.yaml to a free port`));
      } finally {
        server.close();
      }
    });
  });

  describe("serveOperations (relayer start)", function () {
    it("runs no listener beside ingest unless metrics.listen is set; without ingest, warns and runs none when the default address is taken", async function () {
      const telemetry = new ProcessTelemetry({ defaultMetrics: false });
      expect(await serveOperations(load(""), telemetry, { ingestRuns: true })).to.equal(null);
      const beside = await serveOperations(load("metrics: { listen: 127.0.0.1:0 }\n"), telemetry, { ingestRuns: true });
      expect(beside).to.not.equal(null);
      await beside!.stop();

      // the default address taken (another relayer process on this host): warned, not fatal
      const server = createServer();
      const taken = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen(9464, "127.0.0.1", () => resolve(true));
      });
      try {
        const warnings: string[] = [];
        const logger = { warn: (_fields: unknown, message: string) => warnings.push(message) } as unknown as Logger;
        expect(await serveOperations(load(""), telemetry, { ingestRuns: false, logger })).to.equal(null);
        expect(warnings).to.deep.equal([
          "no /metrics or /readyz in this process: the default metrics address is in use (another relayer process on this host?); set metrics.listen to a free host:port for each process",
        ]);
      } finally {
        if (taken) server.close();
      }
    });
  });

  describe("configuration", function () {
    it("defaults: no listener while ingest runs here, one on 127.0.0.1:9464 otherwise; a zero balance floor", function () {
      const config = load("");
      expect(config.metrics).to.deep.equal({ listen: undefined, defaultMetrics: true });
      expect(needsTelemetryListener(config, true)).to.equal(false);
      expect(needsTelemetryListener(config, false)).to.equal(true);
      expect(config.settler.minSignerBalance).to.equal(0n);
    });

    it("reads metrics.listen (IPv4, IPv6) and the balance floor in the native coin, per chain", function () {
      expect(load("metrics: { listen: 0.0.0.0:9464 }\n").metrics.listen).to.deep.equal({ host: "0.0.0.0", port: 9464 });
      expect(load('metrics: { listen: "[::1]:9100" }\n').metrics.listen).to.deep.equal({ host: "::1", port: 9100 });
      const config = load("settler: { min_signer_balance: 0.05 }\n");
      expect(config.settler.minSignerBalance).to.equal(parseEther("0.05"));
      expect(config.chains.find((c) => c.name === "polygon")!.minSignerBalance).to.equal(parseEther("5"));
      expect(config.chains.find((c) => c.name === "arbitrum")!.minSignerBalance).to.equal(undefined);
    });

    it("refuses a listen address without a port, a port out of range, and a balance that is not an amount", function () {
      expect(problems("metrics: { listen: 9464 }\n")).to.deep.equal(['metrics.listen: 9464 is not host:port; write e.g. "127.0.0.1:9464" (or "[::1]:9464")']);
      expect(problems('metrics: { listen: "localhost" }\n')).to.deep.equal(['metrics.listen: "localhost" is not host:port; write e.g. "127.0.0.1:9464" (or "[::1]:9464")']);
      expect(problems('metrics: { listen: "127.0.0.1:70000" }\n')).to.deep.equal(['metrics.listen: "127.0.0.1:70000" is not host:port; write e.g. "127.0.0.1:9464" (or "[::1]:9464")']);
      expect(problems('settler: { min_signer_balance: "0.05 BTC" }\n')).to.deep.equal([
        "settler.min_signer_balance: \"0.05 BTC\" is not an amount of the chain's native coin; write e.g. 0.05 or \"0.05 ETH\" (or gwei, wei)",
      ]);
    });
  });
});
