/**
 * The reconciler's small parts: epochs, the dispute verdict (overbilled tokens and refund), the HTTP JSON usage adapter against a real usage
 * API on 127.0.0.1, and the `reconciler:` config section (errors at file:line).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { expect } from "chai";

import { ConfigError, loadRelayerConfig } from "../../../relayer/config/index.js";
import { EpochError, HttpJsonAdapter, UsageReportError, disputeRefund, epochOf, oracleOverbilled, parseEpoch, predictedRefund } from "../../../relayer/reconciler/index.js";
import { UsageServer, send } from "../../oracle/usage-server.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PAYER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

describe("reconciler parts", function () {
  describe("epochs", function () {
    const now = Date.UTC(2025, 5, 1, 14, 30) / 1000;

    it("reads UTC days, hours, today/yesterday and START/END", function () {
      const day = Date.UTC(2025, 5, 1) / 1000;
      expect(parseEpoch("2025-06-01", now)).to.deep.equal({ start: day, end: day + 86_400 });
      expect(parseEpoch("2025-06-01T14", now)).to.deep.equal({ start: day + 14 * 3600, end: day + 15 * 3600 });
      expect(parseEpoch("today", now)).to.deep.equal({ start: day, end: day + 86_400 });
      expect(parseEpoch("yesterday", now)).to.deep.equal({ start: day - 86_400, end: day });
      expect(parseEpoch("2025-06-01T10:00Z/2025-06-01T12:30+02:00", now)).to.deep.equal({ start: day + 36_000, end: day + 37_800 });
      expect(parseEpoch("100/200", now)).to.deep.equal({ start: 100, end: 200 });
      expect(epochOf(day + 5000, 3600)).to.deep.equal({ start: day + 3600, end: day + 7200 });
    });

    it("refuses what is not an epoch, saying what to write", function () {
      for (const [text, message] of [
        ["2025-02-30", '--epoch "2025-02-30": not a real date/hour'],
        ["2025-06-01T24", '--epoch "2025-06-01T24": not a real date/hour'],
        ["200/100", "the end must be after the start"],
        ["2025-06-01T10:00/2025-06-02T10:00", "neither unix seconds nor an ISO time with a zone"],
        ["last week", 'write a UTC day "2025-06-01", an hour "2025-06-01T14"'],
      ] as const) {
        expect(() => parseEpoch(text, now), text).to.throw(EpochError, message);
      }
    });
  });

  describe("the dispute verdict (UsageOracle.overbilledFor and AutoPayLLM.resolveDispute written out)", function () {
    const totals = (billedTokens: bigint, heldTokens: bigint, heldAmount: bigint, priorRefundedTokens = 0n) => ({ billedTokens, heldTokens, heldAmount, priorRefundedTokens });

    it("finds the excess over the report, nothing within the tolerance or at/above the billed tokens", function () {
      expect(oracleOverbilled(totals(100n, 100n, 1000n), 100n, 0n)).to.equal(0n);
      expect(oracleOverbilled(totals(100n, 100n, 1000n), 10n ** 30n, 0n)).to.equal(0n);
      expect(oracleOverbilled(totals(100n, 100n, 1000n), 0n, 0n)).to.equal(100n);
      expect(oracleOverbilled(totals(100_000n, 100_000n, 1n), 99_000n, 100n)).to.equal(0n); // exactly 1%: within
      expect(oracleOverbilled(totals(100_000n, 100_000n, 1n), 98_999n, 100n)).to.equal(1001n);
    });

    it("counts every billed row but caps at the held tokens, less what earlier disputes refunded", function () {
      // the same 30,000 tokens billed twice; the first bill released (named, not held), the second held
      expect(oracleOverbilled(totals(60_000n, 30_000n, 3_600n), 30_000n, 100n)).to.equal(30_000n);
      // an earlier dispute refunded 10,000 of the 12,000 excess: 2,000 left
      expect(oracleOverbilled(totals(42_000n, 42_000n, 5_040n, 10_000n), 30_000n, 0n)).to.equal(2_000n);
      expect(oracleOverbilled(totals(42_000n, 42_000n, 5_040n, 20_000n), 30_000n, 0n)).to.equal(0n);
      // only 5,000 tokens held: the excess of 12,000 is capped there
      expect(oracleOverbilled(totals(42_000n, 5_000n, 600n), 30_000n, 0n)).to.equal(5_000n);
    });

    it("refunds the held amount's share of the overbilled tokens, rounded down", function () {
      expect(disputeRefund(1000n, 3n, 1n)).to.equal(333n);
      expect(disputeRefund(1000n, 3n, 3n)).to.equal(1000n);
      expect(disputeRefund(1000n, 0n, 0n)).to.equal(0n);
      expect(predictedRefund(totals(42_000n, 42_000n, 5_041n), 30_000n, 0n)).to.deep.equal({ overbilled: 12_000n, refund: (5_041n * 12_000n) / 42_000n });
    });
  });

  describe("HttpJsonAdapter", function () {
    let server: UsageServer;
    before(async function () {
      server = await new UsageServer("usage-key").start();
      server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 150, tokens: 12_345n });
      server.add({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, at: 300, tokens: 1n }); // outside [100, 200)
    });
    after(async function () {
      await server.stop();
    });
    afterEach(function () {
      server.override = undefined;
    });

    const query = { provider: "openai", model: "gpt-4-turbo", payer: PAYER, start: 100, end: 200 };

    it("asks the usage API the oracle's question and reads the tokens", async function () {
      expect(await new HttpJsonAdapter({ provider: "openai", url: `${server.url}/`, apiKey: "usage-key" }).usage(query)).to.equal(12_345n);
      expect(server.queries.at(-1)).to.deep.equal({ provider: "openai", model: "gpt-4-turbo", payer: PAYER, start: "100", end: "200" });
    });

    it("fails with the reason, never the key: wrong key, server error, another query's answer, not JSON, out of range, unreachable", async function () {
      const reason = async (adapter: HttpJsonAdapter) => {
        try {
          await adapter.usage(query);
        } catch (error) {
          expect(error).to.be.instanceOf(UsageReportError);
          expect((error as Error).message).to.not.contain("usage-key");
          return (error as Error).message;
        }
        expect.fail("answered");
      };
      const ok = new HttpJsonAdapter({ provider: "openai", url: server.url, apiKey: "usage-key" });
      expect(await reason(new HttpJsonAdapter({ provider: "openai", url: server.url, apiKey: "wrong" }))).to.contain("HTTP 401 (check the API key)");
      server.override = (_q, res) => (send(res, 502, { error: "bad gateway" }), true);
      expect(await reason(ok)).to.contain("HTTP 502");
      server.override = (q, res) => (send(res, 200, { ...q, payer: "0x0000000000000000000000000000000000000001", tokens: "5" }), true);
      expect(await reason(ok)).to.contain("the answer is for another query");
      server.override = (_q, res) => (send(res, 200, "<html>"), true);
      expect(await reason(ok)).to.contain("is not the usage JSON");
      server.override = (q, res) => (send(res, 200, { ...q, tokens: "18446744073709551616" }), true);
      expect(await reason(ok)).to.contain("tokens out of range");
      server.override = (q, res) => (send(res, 200, { ...q, tokens: -1 }), true);
      expect(await reason(ok)).to.contain("is not the usage JSON");
      server.override = (_q, res) => (res.destroy(), true);
      expect(await reason(ok)).to.contain("unreachable");
      server.override = () => true; // never answers
      expect(await reason(new HttpJsonAdapter({ provider: "openai", url: server.url, apiKey: "usage-key", timeoutMs: 200 }))).to.contain("no answer in 200 ms");
    });
  });

  describe("reconciler: config section", function () {
    function load(yaml: string, env: Record<string, string> = {}) {
      const dir = mkdtempSync(join(tmpdir(), "agentgpt-reccfg-"));
      writeFileSync(
        join(dir, "relayer.yaml"),
        `include: [${join(REPO, "config", "litellm-router.yaml")}, ${join(REPO, "config", "payment-channels.yaml")}]\n${yaml}`,
      );
      return loadRelayerConfig(join(dir, "relayer.yaml"), { env });
    }

    it("reads the documented example with exact amounts and defaults", function () {
      const config = load(
        [
          "reconciler:",
          "  chains: [arbitrum]",
          "  report_delay: 2m",
          "  epoch: 1h",
          '  min_refund: "0.01 AGPT"',
          "  ipfs: { url: http://127.0.0.1:5001, api: kubo }",
          "  providers:",
          "    OpenAI:",
          "      url: https://usage.example.com/openai",
          "      api_key_env: OPENAI_USAGE_API_KEY",
          "  payers:",
          '    - address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"',
          "      keystore: ./keys/payer.json",
          "    - key_env: PAYER_DEV_KEY",
          "",
        ].join("\n"),
      );
      expect(config.reconciler).to.deep.include({
        chains: ["arbitrum"],
        intervalMs: 60_000,
        reportDelayMs: 120_000,
        epochMs: 3_600_000,
        toleranceBps: 100,
        minRefund: 10n ** 16n,
        approveBond: false,
        ipfs: { url: "http://127.0.0.1:5001", api: "kubo" },
      });
      expect(config.reconciler!.providers).to.deep.equal({
        openai: { adapter: "http-json", url: "https://usage.example.com/openai", path: "/v1/usage", apiKeyEnv: "OPENAI_USAGE_API_KEY", timeoutMs: 10_000 },
      });
      expect(config.reconciler!.payers).to.deep.equal([
        { address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", keystore: "./keys/payer.json", passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD", keyEnv: undefined },
        { address: undefined, keystore: undefined, passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD", keyEnv: "PAYER_DEV_KEY" },
      ]);
      expect(load("").reconciler).to.equal(undefined);
    });

    it("refuses usage_lookback and requester, which no longer exist, with the fix; takes a keeper key", function () {
      try {
        load(["reconciler:", "  usage_lookback: 1h", "  requester:", "    key_env: REQ_KEY", ""].join("\n"));
        expect.fail("loaded");
      } catch (error) {
        expect(error).to.be.instanceOf(ConfigError);
        const text = (error as ConfigError).message;
        expect(text).to.contain("reconciler.usage_lookback is obsolete: usage is compared over the usage bucket each batch commits on-chain");
        expect(text).to.contain("delete the line");
        expect(text).to.contain("reconciler.requester is obsolete: anyone may ask the UsageOracle to verify a dispute");
        expect(text).to.contain("rename it to keeper:");
      }
      const config = load(["reconciler:", "  keeper: { key_env: KEEPER_KEY }", ""].join("\n"));
      expect(config.reconciler!.keeper).to.deep.equal({ keystore: undefined, passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD", keyEnv: "KEEPER_KEY" });
    });

    it("points at the file, line and field of each mistake", function () {
      try {
        load(
          [
            "reconciler:",
            "  epoch: 5h",
            "  min_refund: 0.01",
            "  providers:",
            "    openai: { adapter: soap, url: ftp://x }",
            "  payers:",
            "    - keystore: ./k.json",
            "      key_env: PAYER_KEY",
            "",
          ].join("\n"),
        );
        expect.fail("loaded");
      } catch (error) {
        expect(error).to.be.instanceOf(ConfigError);
        const text = (error as ConfigError).message;
        expect(text).to.match(/relayer\.yaml:3.*reconciler\.epoch.*1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d/);
        expect(text).to.match(/relayer\.yaml:4.*reconciler\.min_refund.*write an amount with its token/);
        expect(text).to.match(/reconciler\.providers\.openai\.adapter.*the only adapter so far is "http-json"/);
        expect(text).to.match(/reconciler\.providers\.openai\.url.*an http:\/\/ or https:\/\/ URL/);
        expect(text).to.match(/reconciler\.payers\[0\].*either keystore: .* or key_env:/);
      }
    });
  });
});
