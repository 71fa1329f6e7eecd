/**
 * POST /litellm/spend end to end: real HTTP (fastify on 127.0.0.1, port 0, requests with fetch) into a real Redis,
 * with the seed's configuration files. Every test ends with exact assertions on the queue and the counters.
 */
import { expect } from "chai";

import { loadRelayerConfig } from "../../../relayer/config/index.js";
import {
  buildIngestServer,
  createBatchParser,
  IngestMetrics,
  IngestService,
  openReceiptQueue,
  BearerAuth,
  MAX_WALLET_FIELDS,
  repriceUnbillable,
  SubmissionBuilder,
} from "../../../relayer/ingest/index.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { TcpProxy } from "../queue/tcp-proxy.js";
import {
  call,
  fixture,
  GPT4_PER_1K,
  metric,
  MIXTRAL_PER_1K,
  PARTNER_WALLET,
  PAYER_BACKEND,
  PAYER_RESEARCH,
  post,
  priced,
  queueContents,
  startTestIngest,
  STRANGER_WALLET,
  TOKEN,
  OLD_TOKEN,
  uniquePrefix,
  writeConfig,
  type Json,
  type TestIngest,
} from "./harness.js";

const ONE = 10n ** 18n;

/** The receipt the fixture's openai call must become. */
function gpt4Receipt(receivedAt: number): Receipt {
  return {
    id: "chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e",
    v: 1,
    chain: "arbitrum",
    payer: PAYER_BACKEND,
    provider: "openai",
    model: "gpt-4-turbo",
    route: "mission_critical",
    promptTokens: 1250,
    completionTokens: 380,
    tokens: 1630,
    ...priced(1630, GPT4_PER_1K),
    pricing: "per_1k_tokens",
    pricePer1k: GPT4_PER_1K.toString(),
    responseCostUsd: "0.0239",
    capped: false,
    startTime: 1718035200412,
    endTime: 1718035207982,
    latencyMs: 7570,
    cacheHit: false,
    litellmCallId: "4f1d0c2e-8b7a-4a51-9d0e-2f6b1c7e3a90",
    litellmId: "chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e",
    litellmModel: "openai/gpt-4-turbo",
    modelGroup: "gpt-4-turbo",
    litellmProvider: "openai",
    callType: "acompletion",
    keyAlias: "prod-backend",
    keyHash: "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
    userId: "default_user_id",
    teamId: null,
    endUserId: null,
    traceId: "a3c9e6b2-51f4-4c0e-8e5e-7d2f1b9c4a11",
    receivedAt,
  };
}

/** The receipt the fixture's groq call must become (model group "mixtral" is an alias of cost_optimized). */
function mixtralReceipt(receivedAt: number): Receipt {
  return {
    ...gpt4Receipt(receivedAt),
    id: "chatcmpl-5e0b3c1a-9f2d-4e8b-a7c6-1d0e9f8a7b6c",
    provider: "groq",
    model: "mixtral-8x22b",
    route: "cost_optimized",
    promptTokens: 900,
    completionTokens: 350,
    tokens: 1250,
    ...priced(1250, MIXTRAL_PER_1K),
    pricePer1k: MIXTRAL_PER_1K.toString(),
    responseCostUsd: "0.0003",
    startTime: 1718035400003,
    endTime: 1718035400771,
    latencyMs: 768,
    litellmCallId: "c8e2a1f0-7d6b-4c5a-9e8f-0a1b2c3d4e5f",
    litellmId: "chatcmpl-5e0b3c1a-9f2d-4e8b-a7c6-1d0e9f8a7b6c",
    litellmModel: "groq/mixtral-8x7b-32768",
    modelGroup: "mixtral",
    litellmProvider: "groq",
    traceId: "c8e2a1f0-7d6b-4c5a-9e8f-0a1b2c3d4e5f",
  };
}

const ids = (receipts: readonly Receipt[] | undefined) => (receipts ?? []).map((receipt) => receipt.id);

describe("relayer/ingest POST /litellm/spend", function () {
  this.timeout(30_000);
  let ingest: TestIngest | undefined;

  afterEach(async function () {
    await ingest?.stop();
    ingest = undefined;
  });

  it("queues the fixture batch exactly once: payer, route, chain and amount per call; the failure kept as unbillable", async function () {
    ingest = await startTestIngest();
    const body = JSON.stringify(fixture("12_generic_api_batch_json_array"));
    const before = Date.now();
    const first = await ingest.post(body);
    expect(first.status).to.equal(200);
    expect(first.body).to.deep.equal({
      received: 3,
      format: "json_array",
      queued: 2,
      unbillable: 1,
      unbillableReasons: { failed_call: 1 },
      duplicates: 0,
      conflicts: 0,
      nulls: 0,
      invalid: [],
    });

    const contents = await queueContents(ingest.runtime.queue);
    const receivedAt = contents.receipts["arbitrum"]![0]!.receivedAt;
    expect(receivedAt).to.be.within(before, Date.now());
    expect(contents.receipts).to.deep.equal({ arbitrum: [gpt4Receipt(receivedAt), mixtralReceipt(receivedAt)], polygon: [] });
    expect(contents.chunks).to.deep.equal({ arbitrum: 1, polygon: 0 });
    expect(contents.jobs["arbitrum"]!.map((job) => [job.name, (job.data as { count: number }).count])).to.deep.equal([["receipts", 2]]);
    expect(contents.unbillable.failed_call.map((record) => [record.id, record.reason, record.summary.tokens])).to.deep.equal([
      ["6e2f0a9b-3c1d-4e7f-8a5b-9c0d1e2f3a4b", "failed_call", 0],
    ]);

    // LiteLLM sends the same batch again (a retry): nothing new anywhere.
    const again = await ingest.post(body);
    expect(again.body).to.deep.include({ received: 3, queued: 0, unbillable: 0, duplicates: 3 });
    const after = await queueContents(ingest.runtime.queue);
    expect(after.receipts).to.deep.equal(contents.receipts);
    expect(after.jobs["arbitrum"]!.length).to.equal(1);
    expect(after.unbillable.failed_call.length).to.equal(1);

    const stats = await ingest.runtime.queue.store.stats();
    expect([stats.queued, stats.duplicates, stats.unbillable.failed_call, stats.invalid]).to.deep.equal([2, 3, 1, 0]);
    expect(await metric(ingest.url, 'agentgpt_ingest_entries_total{outcome="queued"}')).to.equal(2);
    expect(await metric(ingest.url, 'agentgpt_ingest_entries_total{outcome="duplicate"}')).to.equal(3);
    expect(await metric(ingest.url, 'agentgpt_ingest_unbillable_total{reason="failed_call"}')).to.equal(1);
    expect(await metric(ingest.url, 'agentgpt_ingest_receipts_queued_total{chain="arbitrum"}')).to.equal(2);
    expect(await metric(ingest.url, 'agentgpt_ingest_tokens_queued_total{chain="arbitrum"}')).to.equal(2880);
    expect(await metric(ingest.url, 'agentgpt_ingest_requests_total{code="200"}')).to.equal(2);
    expect(await metric(ingest.url, 'agentgpt_ingest_pending_chunks{chain="arbitrum"}')).to.equal(1);
    expect(await metric(ingest.url, 'agentgpt_ingest_unbillable_kept{reason="failed_call"}')).to.equal(1);
    expect(await metric(ingest.url, "agentgpt_ingest_ack_seconds_count")).to.equal(2);
  });

  it("accepts every log_format (ndjson, single, json_array with nulls) and dedupes across them", async function () {
    ingest = await startTestIngest();
    // c is what older LiteLLM versions send: times and token counts as strings.
    const [a, b, c] = [
      call(),
      call({}, { user_api_key_alias: null, user_api_key_team_id: "research" }),
      call({ startTime: "2024-06-10 16:00:00.412311", endTime: "1718035207.981772", prompt_tokens: "100", completion_tokens: "20", total_tokens: "120" }),
    ];
    const ndjson = await ingest.post(`${JSON.stringify(a)}\n${JSON.stringify(b)}\n`);
    expect(ndjson.body).to.deep.include({ format: "ndjson", received: 2, queued: 2, duplicates: 0 });
    const single = await ingest.post(JSON.stringify(a));
    expect(single.body).to.deep.include({ format: "single", received: 1, queued: 0, duplicates: 1 });
    const array = await ingest.post(`[null,${JSON.stringify(b)},${JSON.stringify(c)},null]`);
    expect(array.body).to.deep.include({ format: "json_array", received: 4, queued: 1, duplicates: 1, nulls: 2 });

    const contents = await queueContents(ingest.runtime.queue);
    expect(ids(contents.receipts["arbitrum"])).to.deep.equal([a["id"], b["id"], c["id"]]);
    expect(contents.receipts["arbitrum"]!.map((receipt) => receipt.payer)).to.deep.equal([PAYER_BACKEND, PAYER_RESEARCH, PAYER_BACKEND]);
    expect(contents.receipts["arbitrum"]![2]).to.deep.include({
      startTime: Date.UTC(2024, 5, 10, 16, 0, 0, 412),
      endTime: 1718035207982,
      tokens: 120,
      ...priced(120, GPT4_PER_1K),
    });
    expect(contents.chunks["arbitrum"]).to.equal(2);
    expect(await metric(ingest.url, 'agentgpt_ingest_entries_total{outcome="null"}')).to.equal(2);
  });

  it("bills the wallet a payer rule reads however many address fields a caller puts before it in its metadata; an unbillable call keeps a bounded log", async function () {
    ingest = await startTestIngest();
    const stuffing = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`w${i}`, `0x${(i + 1).toString(16).padStart(40, "0")}`]));
    const partner = call({}, { user_api_key_alias: "partner-gateway", requester_metadata: { ...stuffing, wallet: PARTNER_WALLET } });
    const stranger = call({}, { user_api_key_alias: "partner-gateway", requester_metadata: { ...stuffing, wallet: STRANGER_WALLET } });
    const response = await ingest.post(JSON.stringify([partner, stranger]));
    expect(response.body).to.deep.include({ queued: 1, unbillable: 1, unbillableReasons: { payer_not_allowed: 1 } });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.receipts["arbitrum"]!.map((receipt) => [receipt.id, receipt.payer])).to.deep.equal([[partner["id"], PARTNER_WALLET]]);
    // the unbillable call's log, kept for dedupe_ttl, holds the wallet read and at most MAX_WALLET_FIELDS others
    const [kept] = contents.unbillable.payer_not_allowed;
    const wallets = (kept!.log as { wallets: { requester_metadata: Record<string, string> } }).wallets.requester_metadata;
    expect(Object.keys(wallets)).to.have.length(MAX_WALLET_FIELDS + 1);
    expect(wallets["wallet"]).to.equal(STRANGER_WALLET);
    expect((await ingest.redis.memory("USAGE", ingest.runtime.queue.store.keys.seen(String(stranger["id"])))) as number).to.be.below(16_384);
  });

  it("keeps every unbillable call once, with its reason: no payer, wallet not allowed, zero usage, cache hit, unknown route", async function () {
    ingest = await startTestIngest();
    const noPayer = call({}, { user_api_key_alias: "someone-else" });
    const stranger = call({}, { user_api_key_alias: "partner-gateway", spend_logs_metadata: { wallet: STRANGER_WALLET } });
    const partner = call({}, { user_api_key_alias: "partner-gateway", requester_metadata: { wallet: PARTNER_WALLET } });
    const zero = call({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, response_cost: 0 }); // a cost without tokens is per_request
    const cached = call({ cache_hit: true, response_cost: 0, id: "chatcmpl-x_cache_hit1718035300.1" });
    const unknown = call({ model: "openai/gpt-4o", model_group: "gpt-4o" });
    const azure = call({ custom_llm_provider: "azure", model: "azure/gpt-4-turbo" });
    const all = [noPayer, stranger, partner, zero, cached, unknown, azure];
    const response = await ingest.post(JSON.stringify([...all, noPayer]));
    expect(response.body).to.deep.equal({
      received: 8,
      format: "json_array",
      queued: 1,
      unbillable: 6,
      unbillableReasons: { no_payer: 1, payer_not_allowed: 1, zero_usage: 1, cache_hit: 1, unknown_route: 2 },
      duplicates: 1,
      conflicts: 0,
      nulls: 0,
      invalid: [],
    });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.receipts["arbitrum"]!.map((receipt) => [receipt.id, receipt.payer])).to.deep.equal([[partner["id"], PARTNER_WALLET]]);
    const reasons = Object.fromEntries(Object.entries(contents.unbillable).map(([reason, records]) => [reason, records.map((record) => record.id).sort()]));
    expect(reasons).to.deep.equal({
      no_payer: [noPayer["id"]],
      payer_not_allowed: [stranger["id"]],
      failed_call: [],
      zero_usage: [zero["id"]],
      cache_hit: [cached["id"]],
      unknown_route: [unknown["id"], azure["id"]].sort(),
      unpriced: [],
      per_request: [],
    });
    expect(contents.unbillable.unknown_route.map((record) => record.detail).sort()).to.deep.equal([
      "no route for model_group=gpt-4o, model=openai/gpt-4o",
      "provider azure (as azure) is not listed by route mission_critical for model_group=gpt-4-turbo, model=azure/gpt-4-turbo",
    ]);
    expect(await ingest.runtime.queue.store.unbillableCounts()).to.deep.equal({
      no_payer: 1,
      payer_not_allowed: 1,
      failed_call: 0,
      zero_usage: 1,
      cache_hit: 1,
      unknown_route: 2,
      unpriced: 0,
      per_request: 0,
    });
    expect(await metric(ingest.url, 'agentgpt_ingest_unbillable_kept{reason="unknown_route"}')).to.equal(2);
  });

  it("bills each call that reuses an id (another start time) once, under id#start, however the ids are reused", async function () {
    ingest = await startTestIngest();
    // A client-chosen id on three different calls (one second apart), the same call re-sent, and a failure.
    const first = call({ id: "client-chosen", litellm_call_id: "client-chosen" });
    const second = call({ id: "client-chosen", litellm_call_id: "client-chosen", startTime: 1718035201.412311, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
    const third = call({ id: "client-chosen", litellm_call_id: "client-chosen", startTime: 1718035202.412311 });
    const failed = call({ status: "failure", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, error_str: "RateLimitError" });
    expect((await ingest.post(JSON.stringify([first, failed]))).body).to.deep.include({ queued: 1, unbillable: 1, duplicates: 0, conflicts: 0 });
    expect((await ingest.post(JSON.stringify([second, third, second, first]))).body).to.deep.include({ queued: 2, duplicates: 2, conflicts: 0 });
    const contents = await queueContents(ingest.runtime.queue);
    const receipts = contents.receipts["arbitrum"]!;
    expect(receipts.map((receipt) => [receipt.id, receipt.tokens])).to.deep.equal([
      ["client-chosen", 1630],
      ["client-chosen#1718035201412", 15],
      ["client-chosen#1718035202412", 1630],
    ]);
    expect(contents.unbillable.failed_call.map((record) => record.id)).to.deep.equal([failed["id"]]);
    expect(await metric(ingest.url, "agentgpt_ingest_call_id_conflicts_total")).to.equal(2);
  });

  it("bills a call LiteLLM logs twice once: another endTime and float noise in response_cost are the same call", async function () {
    ingest = await startTestIngest();
    const original = call({ response_cost: 0.00426, endTime: 1718035207.981772 });
    const again = { ...structuredClone(original), response_cost: 0.004260000000000001, endTime: 1718035207.989013, response_time: 7.5767 };
    // the start time as LiteLLM's database keeps it (milliseconds) is still the same call
    const rounded = { ...structuredClone(original), startTime: "2024-06-10T16:00:00.412Z" };
    expect((await ingest.post(JSON.stringify([original])))).to.deep.include({ status: 200 });
    const reply = await ingest.post(JSON.stringify([again, rounded]));
    expect(reply.body).to.deep.include({ queued: 0, duplicates: 2, conflicts: 0 });
    const receipts = (await queueContents(ingest.runtime.queue)).receipts["arbitrum"]!;
    expect(receipts.map((receipt) => [receipt.id, receipt.endTime, receipt.responseCostUsd])).to.deep.equal([[original["id"], 1718035207982, "0.00426"]]);
  });

  it("bills one of two logs of a call that disagree on usage (the first) and keeps the other as a visible conflict", async function () {
    ingest = await startTestIngest();
    const original = call();
    const disagreeing = { ...structuredClone(original), completion_tokens: 999, total_tokens: 2249 };
    const failedFirst = call({ status: "failure", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, error_str: "timeout" });
    const succeededLater = { ...structuredClone(failedFirst), status: "success", error_str: null, prompt_tokens: 1250, completion_tokens: 380, total_tokens: 1630 };
    expect((await ingest.post(JSON.stringify([original, failedFirst]))).body).to.deep.include({ queued: 1, unbillable: 1 });
    const reply = await ingest.post(JSON.stringify([disagreeing, succeededLater, disagreeing]));
    // the disagreeing log is a conflict (twice: the same conflict, recorded once); the success replaces the failure
    expect(reply.body).to.deep.include({ queued: 1, conflicts: 2, duplicates: 0 });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.receipts["arbitrum"]!.map((receipt) => [receipt.id, receipt.tokens])).to.deep.equal([
      [original["id"], 1630],
      [failedFirst["id"], 1630],
    ]);
    expect(contents.unbillable.failed_call).to.deep.equal([]);
    const conflicts = await ingest.runtime.queue.store.listConflicts();
    expect(
      conflicts
        .map((conflict) => [conflict.id, conflict.kept.kind, conflict.other.kind, conflict.other.record["tokens"] ?? conflict.other.record["reason"]])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    ).to.deep.equal(
      [
        [original["id"], "receipt", "receipt", 2249],
        [failedFirst["id"], "receipt", "unbillable", "failed_call"],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it("refuses only the entry with NaN, Infinity or -Infinity (by index and field); the rest of the array is ingested", async function () {
    ingest = await startTestIngest();
    const [a, b, c] = [call(), call(), call()];
    const body = JSON.stringify([a, b, c]).replace('"response_cost":0.0239', '"response_cost":NaN');
    const reply = await ingest.post(body);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.include({ received: 3, queued: 2 });
    expect(reply.body.invalid.map((entry: { index: number; reason: string }) => [entry.index, entry.reason.split(":")[0]])).to.deep.equal([[0, "response_cost"]]);
    expect(reply.body.invalid[0].reason).to.include("NaN is not a JSON number");
    const nested = JSON.stringify([a, b, c]).replace(/"temperature":0\.2/g, (match, offset: number, whole: string) => (offset > (whole.length * 2) / 3 ? '"temperature":-Infinity' : match));
    const again = await ingest.post(nested.replace('"saved_cache_cost":0,', '"saved_cache_cost":Infinity,'));
    expect(again.status).to.equal(200);
    expect(again.body.invalid.map((entry: { index: number; reason: string }) => [entry.index, entry.reason.split(":")[0]])).to.deep.equal([
      [0, "saved_cache_cost"],
      [2, "model_parameters.temperature"],
    ]);
    expect(again.body).to.deep.include({ queued: 0, duplicates: 1 });
    // ndjson: the line alone; a body of one bad entry: 422
    const lines = await ingest.post(`${JSON.stringify(call()).replace('"total_tokens":1630', '"total_tokens":NaN')}\n${JSON.stringify(call())}`);
    expect(lines.body).to.deep.include({ format: "ndjson", queued: 1 });
    expect(lines.body.invalid[0].reason).to.match(/^metadata\.usage_object\.total_tokens: NaN/);
    const single = await ingest.post(JSON.stringify(call()).replace('"response_time":7.569460868835449', '"response_time":Infinity'));
    expect(single.status).to.equal(422);
    const ids = (await queueContents(ingest.runtime.queue)).receipts["arbitrum"]!.map((receipt) => receipt.id);
    expect(ids.slice(0, 2)).to.deep.equal([b["id"], c["id"]]);
  });

  it("refuses only the entry when NaN or -Infinity sits inside an object billing reads whole (metadata a client sets)", async function () {
    ingest = await startTestIngest();
    const [a, b, c] = [call(), call({}, { requester_metadata: { score: 0.5, tags: ["x"] } }), call({ usage: { prompt_tokens: 1 } })];
    const body = JSON.stringify([a, b, c]).replace('"score":0.5', '"score":NaN').replace('{"prompt_tokens":1}', '{"prompt_tokens":-Infinity}');
    const reply = await ingest.post(body);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.include({ received: 3, queued: 1 });
    expect(reply.body.invalid.map((entry: { index: number; reason: string }) => [entry.index, entry.reason.split(":")[0]])).to.deep.equal([
      [1, "metadata.requester_metadata.score"],
      [2, "usage.prompt_tokens"],
    ]);
    const ids = (await queueContents(ingest.runtime.queue)).receipts["arbitrum"]!.map((receipt) => receipt.id);
    expect(ids).to.deep.equal([a["id"]]);
  });

  it("records a body once when the reply was lost (crash between accept and reply) and LiteLLM sends it again", async function () {
    const prefix = uniquePrefix("ingest");
    const config = loadRelayerConfig(writeConfig(prefix), { env: {} });
    const opened = await openReceiptQueue(config);
    const parser = await createBatchParser(config, 0);
    const metrics = new IngestMetrics({ defaultMetrics: false });
    const app = await buildIngestServer({
      service: new IngestService({ parser, sink: opened.queue, metrics }),
      auth: new BearerAuth([TOKEN]),
      sink: opened.queue,
      metrics,
      bodyLimit: config.server.bodyLimit,
    });
    // The process "dies" after recording, before the reply: the connection drops without an answer.
    app.addHook("onSend", async (request) => {
      request.raw.socket.destroy();
    });
    const crashingUrl = await app.listen({ host: "127.0.0.1", port: 0 });
    const body = JSON.stringify(fixture("12_generic_api_batch_json_array"));
    let lost: unknown;
    await post(crashingUrl, body).catch((error: unknown) => (lost = error));
    expect(lost, "the client must not get an answer").to.be.instanceOf(Error);
    await app.close();
    await parser.close();
    await opened.close();

    ingest = await startTestIngest({ prefix });
    const resent = await ingest.post(body);
    expect(resent.body).to.deep.include({ queued: 0, unbillable: 0, duplicates: 3 });
    const contents = await queueContents(ingest.runtime.queue);
    expect(ids(contents.receipts["arbitrum"])).to.deep.equal(["chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e", "chatcmpl-5e0b3c1a-9f2d-4e8b-a7c6-1d0e9f8a7b6c"]);
    expect(contents.jobs["arbitrum"]!.length).to.equal(1);
    expect(contents.unbillable.failed_call.length).to.equal(1);
  });

  it("answers invalid entries by index and reason, records the valid ones, and refuses a body with none", async function () {
    ingest = await startTestIngest();
    const good = call();
    const body = JSON.stringify([
      call({ prompt_tokens: -5 }),
      good,
      call({ total_tokens: 1e12 }),
      call({ startTime: "tomorrow" }),
      "not an object",
      call({ metadata: { user_api_key_alias: 42 } }),
    ]);
    const mixed = await ingest.post(body);
    expect(mixed.status).to.equal(200);
    expect(mixed.body.queued).to.equal(1);
    expect(mixed.body.invalid).to.deep.equal([
      { index: 0, reason: "prompt_tokens: must be a non-negative integer, got -5" },
      { index: 2, reason: "total_tokens: 1000000000000 exceeds the per-call limit of 10000000 (ingest.max_tokens_per_call)" },
      { index: 3, reason: 'startTime: not a time: "tomorrow" (epoch seconds or ISO 8601 expected)' },
      { index: 4, reason: "an entry must be a JSON object (a StandardLoggingPayload), got string" },
      { index: 5, reason: "metadata.user_api_key_alias: Invalid input: expected string, received number" },
    ]);

    const none = await ingest.post(JSON.stringify([{ id: "x", prompt_tokens: "many", startTime: 1718035200 }]));
    expect(none.status).to.equal(422);
    expect(none.body).to.deep.include({ error: "no_valid_entries", queued: 0, invalid: [{ index: 0, reason: 'prompt_tokens: must be a non-negative integer, got "many"' }] });

    const malformed = await ingest.post('[{"id": "x", ');
    expect(malformed.status).to.equal(400);
    expect(malformed.body.error).to.equal("invalid_body");
    expect(malformed.body.reason).to.match(/^the body is not valid JSON: /);
    const notJson = await ingest.post("id=1&tokens=5");
    expect(notJson.body).to.deep.equal({ error: "invalid_body", reason: 'the body is not JSON (it starts with "id=1&tokens=5"); expected a JSON array, a JSON object or NDJSON' });
    const empty = await ingest.post("");
    expect(empty.status).to.equal(400);
    const wrongType = await ingest.post("[1]", { "Content-Type": "application/xml" });
    expect(wrongType.status).to.equal(415);

    const contents = await queueContents(ingest.runtime.queue);
    expect(ids(contents.receipts["arbitrum"])).to.deep.equal([good["id"]]);
    const stats = await ingest.runtime.queue.store.stats();
    expect(stats.invalid).to.equal(6);
    const kept = await ingest.runtime.queue.store.recentInvalid();
    expect(kept.map((entry) => [entry.index, entry.reason.split(":")[0]])).to.deep.equal([
      [0, "prompt_tokens"],
      [5, "metadata.user_api_key_alias"],
      [4, "an entry must be a JSON object (a StandardLoggingPayload), got string"],
      [3, "startTime"],
      [2, "total_tokens"],
      [0, "prompt_tokens"],
    ]);
    expect(await metric(ingest.url, 'agentgpt_ingest_entries_total{outcome="invalid"}')).to.equal(6);
    expect(await metric(ingest.url, 'agentgpt_ingest_requests_total{code="400"}')).to.equal(3);
  });

  it("refuses oversize bodies and too many entries with 413, recording nothing", async function () {
    ingest = await startTestIngest({ server: "  body_limit: 20kb\n  max_entries: 3" });
    const big = await ingest.post(JSON.stringify([call(), call(), call(), call()]));
    expect(big.status).to.equal(413);
    expect(big.body).to.deep.equal({
      error: "body_too_large",
      reason: "the body is larger than 20000 bytes (server.body_limit): lower LiteLLM's batch_size or raise server.body_limit",
    });
    const slim = (entry: Json) => ({ ...entry, messages: null, response: null, model_map_information: null, hidden_params: null });
    const many = await ingest.post(JSON.stringify([slim(call()), slim(call()), slim(call()), slim(call())]));
    expect(many.status).to.equal(413);
    expect(many.body).to.deep.equal({ error: "too_many_entries", reason: "4 logs in one POST; at most 3 (server.max_entries): lower LiteLLM's batch_size" });
    const fits = await ingest.post(JSON.stringify([slim(call()), slim(call()), slim(call())]));
    expect(fits.body).to.deep.include({ queued: 3 });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.receipts["arbitrum"]!.length).to.equal(3);
    expect((await ingest.runtime.queue.store.stats()).queued).to.equal(3);
  });

  it("requires a bearer token (any configured one, for rotation) and records nothing without it", async function () {
    ingest = await startTestIngest();
    const body = JSON.stringify([call()]);
    for (const headers of [{ Authorization: "" }, { Authorization: "Bearer wrong-token-0123456789" }, { Authorization: `Basic ${TOKEN}` }]) {
      const refused = await ingest.post(body, headers);
      expect(refused.status).to.equal(401);
      expect(refused.headers.get("www-authenticate")).to.equal('Bearer realm="agentgpt-ingest"');
      expect(refused.body.error).to.equal("unauthorized");
    }
    expect((await queueContents(ingest.runtime.queue)).receipts["arbitrum"]).to.deep.equal([]);
    expect((await ingest.post(body, { Authorization: `Bearer ${OLD_TOKEN}` })).body).to.deep.include({ queued: 1 });
    expect(await metric(ingest.url, 'agentgpt_ingest_requests_total{code="401"}')).to.equal(3);
  });

  it("answers 503 with a reason while Redis is down (readyz too; healthz stays up), and records once it is back", async function () {
    const proxy = new TcpProxy();
    await proxy.start();
    try {
      ingest = await startTestIngest({ redisUrl: proxy.url });
      expect((await fetch(`${ingest.url}/readyz`)).status).to.equal(200);
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const entry = call();
      const started = Date.now();
      const refused = await ingest.post(JSON.stringify([entry]));
      expect(Date.now() - started).to.be.lessThan(1500);
      expect(refused.status).to.equal(503);
      expect(refused.headers.get("retry-after")).to.equal("5");
      expect(refused.body.error).to.equal("queue_unavailable");
      expect(refused.body.reason).to.equal(
        "Redis is unreachable, could not record receipts; this POST is not acknowledged. LiteLLM's generic API logger does not send a batch again: its calls are recovered from LiteLLM's spend records by the backfill (`agentgpt litellm backfill`, or the backfill: section of the relayer). A re-send is never counted twice.",
      );
      const ready = await fetch(`${ingest.url}/readyz`);
      expect(ready.status).to.equal(503);
      expect(((await ready.json()) as { error: string }).error).to.equal("not_ready");
      expect((await fetch(`${ingest.url}/healthz`)).status).to.equal(200);
      expect(await metric(ingest.url, "agentgpt_ingest_queue_unavailable_total")).to.equal(1);

      await proxy.restore();
      for (let attempt = 0; attempt < 50 && ingest.runtime.redis.status !== "ready"; attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await ingest.post(JSON.stringify([entry]))).body).to.deep.include({ queued: 1, duplicates: 0 });
      expect(ids((await queueContents(ingest.runtime.queue)).receipts["arbitrum"])).to.deep.equal([entry["id"]]);
    } finally {
      await ingest?.stop();
      ingest = undefined;
      await proxy.cut();
    }
  });

  it("with redis.wait_replicas, acknowledges only what enough replicas confirmed (503 otherwise, re-sends included)", async function () {
    // This Redis has no replica: a POST is recorded on the primary but never confirmed, so never acknowledged.
    ingest = await startTestIngest({ redis: "  wait_replicas: 1\n  wait_timeout: 100ms" });
    const entry = call();
    for (const attempt of ["first", "re-send"]) {
      const refused = await ingest.post(JSON.stringify([entry]));
      expect(refused.status, attempt).to.equal(503);
      expect(refused.body).to.deep.equal({
        error: "queue_unavailable",
        reason:
          "only 0 of 1 Redis replicas confirmed the write (redis.wait_replicas); this POST is not acknowledged. LiteLLM's generic API logger does not send a batch again: its calls are recovered from LiteLLM's spend records by the backfill (`agentgpt litellm backfill`, or the backfill: section of the relayer). A re-send is never counted twice.",
      });
    }
    const stats = await ingest.runtime.queue.store.stats();
    expect([stats.queued, stats.duplicates]).to.deep.equal([1, 1]);
  });

  it("keeps a call priced per request (a cost, no tokens) as per_request, never billed and never lost as zero_usage", async function () {
    ingest = await startTestIngest({
      routes: 'routes:\n  - route: metered\n    model: dall-e-3\n    pricing: response_cost\n    providers: [openai]\n',
    });
    const image = call({ call_type: "image_generation", model: "dall-e-3", model_group: "dall-e-3", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, response_cost: 0.04 });
    const speech = call({ call_type: "speech", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, response_cost: "0.015" });
    const nothing = call({ call_type: "image_generation", model: "dall-e-3", model_group: "dall-e-3", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, response_cost: 0 });
    const answer = await ingest.post(JSON.stringify([image, speech, nothing]));
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.include({ queued: 0, unbillable: 3, unbillableReasons: { zero_usage: 1, per_request: 2 } });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.unbillable.per_request.map((record) => [record.id, record.detail]).sort()).to.deep.equal(
      [
        [image["id"], "priced per request by LiteLLM (image_generation, response_cost 0.04 USD) with no tokens: AutoPayLLM bills tokens, so it is not charged"],
        [speech["id"], "priced per request by LiteLLM (speech, response_cost 0.015 USD) with no tokens: AutoPayLLM bills tokens, so it is not charged"],
      ].sort(),
    );
    expect(contents.unbillable.zero_usage.map((record) => record.id)).to.deep.equal([nothing["id"]]);
    expect((await ingest.runtime.queue.store.unbillableCounts()).per_request).to.equal(2);
    expect(await metric(ingest.url, 'agentgpt_ingest_unbillable_kept{reason="per_request"}')).to.equal(2);
  });

  it("prices a response_cost route from LiteLLM's USD cost and settles it on the provider's chain", async function () {
    ingest = await startTestIngest({
      routes: 'routes:\n  - route: metered\n    model: claude-3-opus\n    pricing: response_cost\n    budget: 0.5 AGPT/1k tokens\n    providers: [anthropic]\n',
    });
    const claude = call({ custom_llm_provider: "anthropic", model: "anthropic/claude-3-opus", model_group: "claude-3-opus", response_cost: 0.0239 });
    const huge = call({ custom_llm_provider: "anthropic", model: "claude-3-opus", model_group: "claude-3-opus", response_cost: 12.5 });
    const free = call({ custom_llm_provider: "anthropic", model: "claude-3-opus", model_group: "claude-3-opus", response_cost: 0 });
    expect((await ingest.post(JSON.stringify([claude, huge, free]))).body).to.deep.include({ queued: 2, unbillable: 1, unbillableReasons: { unpriced: 1 } });
    const receipts = (await queueContents(ingest.runtime.queue)).receipts["polygon"]!;
    // 0.0239 USD * 2.5 AGPT/USD = 0.05975 AGPT; in 1/1000 units: 5.975e19
    expect(receipts.map((receipt) => [receipt.id, receipt.amountMilli, receipt.amount, receipt.capped, receipt.pricing, receipt.chain])).to.deep.equal([
      [claude["id"], "59750000000000000000", "59750000000000000", false, "response_cost", "polygon"],
      // 12.5 USD = 31.25 AGPT, above the ceiling 0.5 AGPT/1k * 1630 tokens = 0.815 AGPT
      [huge["id"], (1630n * (ONE / 2n)).toString(), ((1630n * (ONE / 2n)) / 1000n).toString(), true, "response_cost", "polygon"],
    ]);
  });

  it("re-prices kept calls once a payer rule covers them: queued once, and never again", async function () {
    ingest = await startTestIngest();
    const stray = call({}, { user_api_key_alias: "new-team" });
    expect((await ingest.post(JSON.stringify([stray]))).body).to.deep.include({ unbillable: 1, unbillableReasons: { no_payer: 1 } });

    const fixed = loadRelayerConfig(
      writeConfig(ingest.prefix, { payers: `payers:\n  - key_alias: new-team\n    payer: "${PAYER_RESEARCH}"\n` }),
      { env: {} },
    );
    const builder = SubmissionBuilder.fromConfig(fixed);
    expect(await repriceUnbillable(ingest.runtime.queue, builder)).to.deep.equal({ examined: 1, requeued: 1, unbillable: {}, unreadable: 0 });
    expect(await repriceUnbillable(ingest.runtime.queue, builder)).to.deep.equal({ examined: 0, requeued: 0, unbillable: {}, unreadable: 0 });
    // LiteLLM re-sending the original log later changes nothing.
    expect((await ingest.post(JSON.stringify([stray]))).body).to.deep.include({ queued: 0, unbillable: 0, duplicates: 1 });
    const contents = await queueContents(ingest.runtime.queue);
    expect(contents.receipts["arbitrum"]!.map((receipt) => [receipt.id, receipt.payer])).to.deep.equal([[stray["id"], PAYER_RESEARCH]]);
    expect(contents.unbillable.no_payer).to.deep.equal([]);
    expect((await ingest.runtime.queue.store.stats()).requeued).to.equal(1);
  });

  it("parses on worker threads (server.parse_workers) with the same results", async function () {
    ingest = await startTestIngest({ parseWorkers: 2 });
    const body = JSON.stringify(fixture("12_generic_api_batch_json_array"));
    const [first, second] = await Promise.all([ingest.post(body), ingest.post(`${JSON.stringify(call())}\n${JSON.stringify(call())}`)]);
    expect(first.body).to.deep.include({ received: 3, queued: 2, unbillable: 1 });
    expect(second.body).to.deep.include({ format: "ndjson", queued: 2 });
    const receipts = (await queueContents(ingest.runtime.queue)).receipts["arbitrum"]!;
    const fixtureReceipts = receipts.filter((receipt) => receipt.id === "chatcmpl-9YqL3kZx1N7fPpJ2a8Wc0rTqGvH5e" || receipt.id.startsWith("chatcmpl-5e0b3c1a"));
    expect(fixtureReceipts).to.deep.equal([gpt4Receipt(fixtureReceipts[0]!.receivedAt), mixtralReceipt(fixtureReceipts[0]!.receivedAt)]);
    expect(receipts.length).to.equal(4);
  });

  it("serves health, readiness and 404s as JSON", async function () {
    ingest = await startTestIngest();
    expect(await (await fetch(`${ingest.url}/healthz`)).json()).to.deep.equal({ status: "ok" });
    expect(await (await fetch(`${ingest.url}/readyz`)).json()).to.deep.equal({ status: "ready" });
    const missing = await fetch(`${ingest.url}/spend`, { method: "POST" });
    expect(missing.status).to.equal(404);
    expect(await missing.json()).to.deep.equal({ error: "not_found", reason: "no POST /spend; LiteLLM posts to /litellm/spend" });
  });
});
