import { expect } from "chai";

import { billedTokens, LITELLM_FIELDS_NOT_READ, parseBody, parseLogTime, SPEND_LOG_FIELDS, spendLogParser, StoredSpendLog } from "../../../relayer/ingest/index.js";
import { call, fixture, PARTNER_WALLET } from "./harness.js";

const parse = spendLogParser({ maxTokensPerCall: 1_000_000 });

function reasonOf(entry: unknown): string {
  const result = parse(entry);
  expect(result.ok, "the entry should be refused").to.equal(false);
  return result.ok ? "" : result.reason;
}

describe("relayer/ingest spend logs", function () {
  describe("spendLogParser", function () {
    it("measures every call's whole duration, streaming included: never LiteLLM's response_time (time to first token for a stream)", function () {
      // a stream: first token after 0.35 s, last after 4.2 s; LiteLLM's response_time is the 0.35 s
      const stream = parse(call({ startTime: 1718035200.0, completionStartTime: 1718035200.35, endTime: 1718035204.2, response_time: 0.35, stream: true }));
      const whole = parse(call({ startTime: 1718035200.0, endTime: 1718035204.2, response_time: 4.2 }));
      expect(stream.ok && stream.log.latencyMs).to.equal(4200);
      expect(whole.ok && whole.log.latencyMs).to.equal(4200);
      // without endTime, response_time is all there is
      const noEnd = parse(call({ startTime: 1718035200.0, endTime: null, response_time: 1.25 }));
      expect(noEnd.ok && noEnd.log.latencyMs).to.equal(1250);
    });

    it("reduces the real success fixture to the billing fields", function () {
      const result = parse(fixture("01_openai_gpt4_turbo_success"));
      expect(result).to.deep.equal({
        ok: true,
        log: {
          key: "chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e",
          litellmCallId: "4f1d0c2e-8b7a-4a51-9d0e-2f6b1c7e3a90",
          litellmId: "chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e",
          status: "success",
          callType: "acompletion",
          litellmProvider: "openai",
          model: "openai/gpt-4-turbo",
          modelGroup: "gpt-4-turbo",
          promptTokens: 1250,
          completionTokens: 380,
          totalTokens: 1630,
          responseCostUsd: "0.0239",
          startTime: 1718035200412,
          endTime: 1718035207982,
          latencyMs: 7570,
          cacheHit: false,
          keyHash: "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
          keyAlias: "prod-backend",
          userId: "default_user_id",
          teamId: null,
          endUser: null,
          traceId: "a3c9e6b2-51f4-4c0e-8e5e-7d2f1b9c4a11",
          wallets: { spend_logs_metadata: {}, requester_metadata: {} },
        },
      });
      // What is kept for re-pricing reads back with its own schema.
      expect(StoredSpendLog.safeParse(JSON.parse(JSON.stringify(result.ok && result.log))).success).to.equal(true);
    });

    it("accepts the variants older LiteLLM versions send", function () {
      const variants = parse(
        call({
          startTime: "2024-06-10 16:00:00.412311",
          endTime: "2024-06-10T16:00:07.981+00:00",
          prompt_tokens: "1250",
          completion_tokens: "380",
          total_tokens: null,
          status: undefined,
          error_str: null,
          cache_hit: "False",
          response_cost: "0.0239",
          end_user: "",
          response_time: undefined,
        }),
      );
      expect(variants.ok).to.equal(true);
      if (!variants.ok) return;
      expect(variants.log).to.include({
        startTime: Date.UTC(2024, 5, 10, 16, 0, 0, 412),
        endTime: Date.UTC(2024, 5, 10, 16, 0, 7, 981),
        latencyMs: 7569,
        promptTokens: 1250,
        completionTokens: 380,
        totalTokens: 0,
        status: "success",
        cacheHit: false,
        endUser: null,
        responseCostUsd: "0.0239",
      });
      expect(billedTokens(variants.log)).to.equal(1630);
      expect(parseLogTime("1718035200.412311")).to.equal(1718035200412);
      expect(parseLogTime("2024-06-10T18:00:00+02:00")).to.equal(Date.UTC(2024, 5, 10, 16));
      // No status: a failure is recognised by its error text.
      const failed = parse(call({ status: undefined, error_str: "litellm.RateLimitError: ..." }));
      expect(failed.ok && failed.log.status).to.equal("failure");
    });

    it("keeps wallets named in metadata only when they are addresses (checksummed)", function () {
      const result = parse(call({}, { spend_logs_metadata: { wallet: PARTNER_WALLET.toLowerCase(), note: "hi", other: 5 }, requester_metadata: { wallet: "not-an-address" } }));
      expect(result.ok && result.log.wallets).to.deep.equal({ spend_logs_metadata: { wallet: PARTNER_WALLET }, requester_metadata: {} });
    });

    it("refuses wrong types, negative and absurd token counts, bad times, with the field at fault", function () {
      expect(reasonOf(call({ prompt_tokens: "abc" }))).to.equal('prompt_tokens: must be a non-negative integer, got "abc"');
      expect(reasonOf(call({ completion_tokens: -5 }))).to.equal("completion_tokens: must be a non-negative integer, got -5");
      expect(reasonOf(call({ total_tokens: 12.5 }))).to.equal("total_tokens: must be a non-negative integer, got 12.5");
      expect(reasonOf(call({ total_tokens: 5_000_000 }))).to.equal("total_tokens: 5000000 exceeds the per-call limit of 1000000 (ingest.max_tokens_per_call)");
      expect(reasonOf(call({ startTime: "yesterday" }))).to.equal('startTime: not a time: "yesterday" (epoch seconds or ISO 8601 expected)');
      expect(reasonOf(call({ startTime: 99 }))).to.equal("startTime: not a time: 99 (epoch seconds or ISO 8601 expected)");
      expect(reasonOf(call({ response_cost: -0.5 }))).to.equal("response_cost: must be a non-negative number of USD, got -0.5");
      expect(reasonOf(call({ model: 42 }))).to.match(/^model: /);
      expect(reasonOf(call({ metadata: "prod-backend" }))).to.match(/^metadata: /);
      expect(reasonOf(call({ litellm_call_id: null, id: "" }))).to.match(/^id: /);
      expect(reasonOf(call({ litellm_call_id: "x".repeat(300) }))).to.match(/^litellm_call_id: /);
    });

    it("reads the same call when LiteLLM leaves out the fields `agentgpt litellm config` excludes", function () {
      for (const name of ["01_openai_gpt4_turbo_success", "05_failure_rate_limit"] as const) {
        const whole = fixture(name) as Record<string, unknown>;
        const trimmed = Object.fromEntries(Object.entries(whole).filter(([field]) => !LITELLM_FIELDS_NOT_READ.includes(field)));
        expect(Object.keys(trimmed).length, name).to.be.lessThan(Object.keys(whole).length);
        expect(parse(trimmed), name).to.deep.equal(parse(whole));
      }
      // none of them is a field billing reads
      expect(LITELLM_FIELDS_NOT_READ.filter((field) => Object.hasOwn(SPEND_LOG_FIELDS, field))).to.deep.equal([]);
    });

    it("refuses non-objects and LiteLLM's v1 payload with what to change", function () {
      expect(reasonOf([1, 2])).to.equal("an entry must be a JSON object (a StandardLoggingPayload), got an array");
      expect(reasonOf("text")).to.equal("an entry must be a JSON object (a StandardLoggingPayload), got string");
      expect(reasonOf({ id: "x", usage: "Usage(completion_tokens=1)", cost: "0.1", startTime: "2024-06-10 16:00:00" })).to.include("generic_api_use_v1");
    });
  });

  describe("parseBody", function () {
    const one = JSON.stringify(call());
    const two = JSON.stringify(call());

    it("reads json_array (with nulls), single and ndjson, all sent as application/json", function () {
      const array = parseBody(`[${one},null,${two}]`);
      expect(array.ok && array.format).to.equal("json_array");
      expect(array.ok && array.entries.map((entry) => ("value" in entry ? entry.value === null : "error"))).to.deep.equal([false, true, false]);
      const single = parseBody(one);
      expect(single.ok && [single.format, single.entries.length]).to.deep.equal(["single", 1]);
      const ndjson = parseBody(`${one}\n${two}\n`);
      expect(ndjson.ok && [ndjson.format, ndjson.entries.length]).to.deep.equal(["ndjson", 2]);
    });

    it("keeps the good lines of NDJSON with a broken line", function () {
      const body = parseBody(`${one}\n{"id": "broken",\n${two}`);
      expect(body.ok).to.equal(true);
      if (!body.ok) return;
      expect(body.entries.map((entry) => ("error" in entry ? entry.error.split(":")[0] : "ok"))).to.deep.equal(["ok", "line 2 is not valid JSON", "ok"]);
    });

    it("refuses bodies that are not LiteLLM JSON, naming the problem", function () {
      expect(parseBody("")).to.deep.equal({ ok: false, reason: "the body is empty; expected LiteLLM logs as a JSON array, one JSON object, or NDJSON" });
      expect(parseBody("hello")).to.deep.equal({ ok: false, reason: 'the body is not JSON (it starts with "hello"); expected a JSON array, a JSON object or NDJSON' });
      const broken = parseBody(`[${one},`);
      expect(!broken.ok && broken.reason).to.match(/^the body is not valid JSON: /);
    });
  });
});
