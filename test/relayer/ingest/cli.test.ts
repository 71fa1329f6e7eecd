/**
 * The `agentgpt` commands of ingest, run as real processes: relayer start (serving, then SIGTERM), relayer check,
 * relayer unbillable / reprice, and litellm config.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { platform } from "node:os";
import { dirname, join } from "node:path";

import { expect } from "chai";
import { parse as parseYaml } from "yaml";

import { MALLOC_SETTINGS, mallocTuningEnv } from "../../../bin/malloc-tuning.mjs";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { openReceiptQueue, SubmissionBuilder } from "../../../relayer/ingest/index.js";
import {
  call,
  dropPrefix,
  fixture,
  PAYER_RESEARCH,
  post,
  REPO,
  testRedis,
  TOKEN,
  uniquePrefix,
  writeConfig,
} from "./harness.js";

const BIN = join(REPO, "bin", "agentgpt.mjs");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function agentgpt(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `agentgpt relayer start` and resolves with its URL once it logs that ingest listens. */
function startRelayer(configFile: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string; lines: () => Array<Record<string, unknown>> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "relayer", "start", "--config", configFile, "--port", "0"], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: Array<Record<string, unknown>> = [];
    let buffered = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split("\n");
      buffered = complete.pop() ?? "";
      for (const line of complete) {
        if (line.trim() === "") continue;
        const record = JSON.parse(line) as Record<string, unknown>;
        lines.push(record);
        if (record["msg"] === "ingest listening") resolve({ child, url: String(record["url"]), lines: () => lines });
      }
    });
    child.once("exit", (code) => reject(new Error(`relayer exited early (code ${code}): ${stderr}`)));
  });
}

/** A running process's environment (Linux), as NAME=value entries. */
function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter((entry) => entry !== "");
}

describe("agentgpt CLI: relayer and litellm commands", function () {
  this.timeout(60_000);

  it("relayer start serves LiteLLM's logs and stops gracefully on SIGTERM", async function () {
    const prefix = uniquePrefix("cli");
    const configFile = writeConfig(prefix);
    const redis = testRedis();
    try {
      const relayer = await startRelayer(configFile, {});
      // the launcher re-executed itself with glibc's malloc settings (bin/malloc-tuning.mjs): same PID, so the
      // SIGTERM below reaches the server itself
      if (platform() === "linux") {
        expect(environOf(relayer.child.pid!)).to.include.members(Object.entries(MALLOC_SETTINGS).map(([name, value]) => `${name}=${value}`));
      }
      const answer = await post(relayer.url, JSON.stringify(fixture("12_generic_api_batch_json_array")));
      expect(answer.body).to.deep.include({ queued: 2, unbillable: 1 });
      const exited = new Promise<number | null>((resolve) => relayer.child.once("exit", resolve));
      relayer.child.kill("SIGTERM");
      expect(await exited).to.equal(0);
      const messages = relayer.lines().map((line) => line["msg"]);
      expect(messages).to.include.members(["ingest listening", "relayer started", "ingested LiteLLM logs", "stopping", "ingest stopped", "relayer stopped"]);
      expect(JSON.stringify(relayer.lines())).not.to.include(TOKEN);

      const config = loadRelayerConfig(configFile, { env: {} });
      const opened = await openReceiptQueue(config);
      const stats = await opened.queue.store.stats();
      await opened.close();
      expect([stats.queued, stats.unbillable.failed_call]).to.deep.equal([2, 1]);
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("relayer start leaves an operator's own MALLOC_ settings, and AGENTGPT_MALLOC_TUNING=0, as they are", async function () {
    if (platform() !== "linux") this.skip();
    const prefix = uniquePrefix("cli-malloc");
    const configFile = writeConfig(prefix);
    const redis = testRedis();
    try {
      for (const env of [{ MALLOC_ARENA_MAX: "2" }, { AGENTGPT_MALLOC_TUNING: "0" }] as Array<Record<string, string>>) {
        const relayer = await startRelayer(configFile, env);
        const environ = environOf(relayer.child.pid!);
        const exited = once(relayer.child, "exit");
        relayer.child.kill("SIGTERM");
        await exited;
        expect(environ.filter((entry) => entry.startsWith("MALLOC_")), JSON.stringify(env)).to.deep.equal(
          "MALLOC_ARENA_MAX" in env ? ["MALLOC_ARENA_MAX=2"] : [],
        );
      }
      // only the server commands are re-executed, only on Linux, and never twice
      const env = { PATH: "/usr/bin" };
      expect(mallocTuningEnv(["relayer", "start", "--config", configFile], env, "linux")).to.deep.equal({ ...env, ...MALLOC_SETTINGS });
      expect(mallocTuningEnv(["demo"], env, "linux")).to.deep.equal({ ...env, ...MALLOC_SETTINGS });
      expect(mallocTuningEnv(["relayer", "check", "--config", configFile], env, "linux")).to.equal(null);
      expect(mallocTuningEnv(["litellm", "config"], env, "linux")).to.equal(null);
      expect(mallocTuningEnv(["relayer", "start"], env, "darwin")).to.equal(null);
      expect(mallocTuningEnv(["relayer", "start"], { ...env, ...MALLOC_SETTINGS }, "linux")).to.equal(null);
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("relayer start logs each value an operator's file overrides in the seed's, naming both places", async function () {
    const prefix = uniquePrefix("cli");
    const base = writeConfig(prefix);
    const ops = join(dirname(base), "ops.yaml");
    writeFileSync(ops, 'routes:\n  - route: "cost_optimized"\n    budget: 0.009 AGPT/1k tokens\n');
    // listed after the seed's files: it wins over them
    writeFileSync(base, readFileSync(base, "utf8").replace(/(payment-channels\.yaml\n)/, `$1  - ${ops}\n`));
    const redis = testRedis();
    try {
      const relayer = await startRelayer(base, {});
      const exited = new Promise<number | null>((resolve) => relayer.child.once("exit", resolve));
      relayer.child.kill("SIGTERM");
      expect(await exited).to.equal(0);
      const warnings = relayer.lines().filter((line) => line["level"] === 40).map((line) => String(line["msg"]));
      expect(warnings).to.include(`configuration: ${ops}:3:5 routes[0].budget overrides config/litellm-router.yaml:13:5 routes[1].budget (later sources win)`);
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("relayer start without a token, or with a broken config, says what to fix", async function () {
    const prefix = uniquePrefix("cli");
    const noToken = writeConfig(prefix).replace(/relayer\.yaml$/, "no-token.yaml");
    writeFileSync(noToken, `include: [${join(REPO, "config", "litellm-router.yaml")}]\nchains: { arbitrum: {} }\nredis: { prefix: ${prefix} }\n`);
    const refused = await agentgpt(["relayer", "start", "--config", noToken], { AGENTGPT_INGEST_TOKENS: "" });
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.equal(
      `agentgpt: no bearer token is configured: set AGENTGPT_INGEST_TOKENS=<token>[,<token>...] (e.g. $(openssl rand -hex 32)) or server.tokens in ${noToken}\n`,
    );

    const broken = noToken.replace(/no-token\.yaml$/, "broken.yaml");
    writeFileSync(broken, "chains:\n  arbitrum: {}\nredis:\n  url: localhost:6379\n");
    const check = await agentgpt(["relayer", "check", "--config", broken]);
    expect(check.code).to.equal(2);
    expect(check.stderr).to.equal(
      `agentgpt: invalid configuration: ${broken}:4:3: redis.url: a Redis URL starts with redis://, rediss://, or redis+cluster:// for a cluster (e.g. redis://127.0.0.1:6379, redis+cluster://10.0.0.1:7000,10.0.0.2:7000)\n`,
    );

    const unreachable = noToken.replace(/no-token\.yaml$/, "unreachable.yaml");
    writeFileSync(unreachable, `chains: { arbitrum: {} }\nredis: { url: "redis://127.0.0.1:1", prefix: ${prefix} }\n`);
    const down = await agentgpt(["relayer", "start", "--config", unreachable], { AGENTGPT_INGEST_TOKENS: TOKEN });
    expect(down.code).to.equal(3);
    expect(down.stderr).to.equal(`agentgpt: cannot reach Redis at redis://127.0.0.1:1: start Redis, or fix redis.url in ${unreachable} (or REDIS_URL if it uses \${REDIS_URL})\n`);
  });

  it("relayer check prints what the configuration means", async function () {
    const result = await agentgpt(["relayer", "check", "--config", join(REPO, "config", "relayer.example.yaml")], { REDIS_URL: "", AGENTGPT_INGEST_TOKENS: TOKEN });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include("start requirements (tokens, keys, variables):\n  ingest: 1 bearer token(s) for LiteLLM\n");
    expect(result.stdout).to.include("  mission_critical: model gpt-4-turbo, 0.12 AGPT per 1k tokens, providers openai, anyscale, together-ai\n");
    expect(result.stdout).to.include("  cost_optimized: model mixtral-8x22b, 0.0085 AGPT per 1k tokens, providers groq, firework-ai, deepinfra\n");
    expect(result.stdout).to.include("  anthropic settles on polygon\n");
  });

  it("relayer check refuses what start refuses (no bearer token, a dashboard open without a token, a missing key password), with start's message", async function () {
    const prefix = uniquePrefix("cli");
    const dir = writeConfig(prefix).replace(/relayer\.yaml$/, "");
    const noToken = join(dir, "no-token.yaml");
    writeFileSync(noToken, `include: [${join(REPO, "config", "litellm-router.yaml")}]\nchains: { arbitrum: {} }\nredis: { prefix: ${prefix} }\n`);
    const started = await agentgpt(["relayer", "start", "--config", noToken], { AGENTGPT_INGEST_TOKENS: "" });
    const checked = await agentgpt(["relayer", "check", "--config", noToken], { AGENTGPT_INGEST_TOKENS: "" });
    expect(started.code).to.equal(2);
    expect([checked.code, checked.stdout, checked.stderr]).to.deep.equal([2, "", started.stderr]);
    expect(checked.stderr).to.match(/^agentgpt: no bearer token is configured: set AGENTGPT_INGEST_TOKENS=/);

    const base = `include: [${join(REPO, "config", "litellm-router.yaml")}]\nredis: { prefix: ${prefix} }\n`;
    const openDashboard = join(dir, "open-dashboard.yaml");
    writeFileSync(openDashboard, `${base}chains: { arbitrum: {} }\ndashboard: { host: 0.0.0.0, allow_remote: true, tokens_env: CHECK_TEST_DASH_TOKENS }\n`);
    const dash = await agentgpt(["relayer", "check", "--config", openDashboard], { AGENTGPT_INGEST_TOKENS: TOKEN, CHECK_TEST_DASH_TOKENS: "" });
    expect(dash.code).to.equal(2);
    expect(dash.stderr).to.match(/^agentgpt: dashboard\.allow_remote is true but no token is set: set CHECK_TEST_DASH_TOKENS=<token>/);

    const keystore = join(dir, "keystore.yaml");
    writeFileSync(
      keystore,
      `${base}chains: { arbitrum: { rpc_urls: ["http://127.0.0.1:1"] } }\nsettler: { signer: { key_env: CHECK_TEST_RELAYER_KEY } }\n`,
    );
    const key = await agentgpt(["relayer", "check", "--config", keystore], { AGENTGPT_INGEST_TOKENS: TOKEN, CHECK_TEST_RELAYER_KEY: "" });
    expect(key.code).to.equal(2);
    expect(key.stderr).to.equal("agentgpt: settler signer: set CHECK_TEST_RELAYER_KEY to the relayer's private key (development only)\n");
    const ok = await agentgpt(["relayer", "check", "--config", keystore], {
      AGENTGPT_INGEST_TOKENS: TOKEN,
      CHECK_TEST_RELAYER_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.include("  settler arbitrum: signs with 0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n");
  });

  it("relayer start and check --stages: an unknown stage names the flag and the valid stages; check needs only the selected stages' keys", async function () {
    const prefix = uniquePrefix("cli");
    const dir = writeConfig(prefix).replace(/relayer\.yaml$/, "");
    const file = join(dir, "stages.yaml");
    writeFileSync(
      file,
      `include: [${join(REPO, "config", "litellm-router.yaml")}]\nredis: { prefix: ${prefix} }\n` +
        `chains: { arbitrum: { rpc_urls: ["http://127.0.0.1:1"] } }\nsettler: { signer: { key_env: CHECK_TEST_STAGES_KEY } }\n`,
    );
    const env = { AGENTGPT_INGEST_TOKENS: TOKEN, CHECK_TEST_STAGES_KEY: "" };
    const valid = "valid stages: ingest, batcher, settler, reconciler, backfill, dashboard (comma-separated)";
    for (const command of ["start", "check"]) {
      const bad = await agentgpt(["relayer", command, "--config", file, "--stages", "ingest,settlment"], env);
      expect([bad.code, bad.stdout, bad.stderr]).to.deep.equal([2, "", `agentgpt: --stages: unknown stage "settlment"; ${valid}\n`]);
    }
    const empty = await agentgpt(["relayer", "check", "--config", file, "--stages", " , "], env);
    expect(empty.code).to.equal(2);
    expect(empty.stderr).to.include("--stages");
    // a batcher signs nothing: its host needs no settler key; the settler's does
    const batcher = await agentgpt(["relayer", "check", "--config", file, "--stages", "ingest,batcher"], env);
    expect(batcher.code, batcher.stderr).to.equal(0);
    expect(batcher.stdout).to.include("start requirements (tokens, keys, variables):\n  ingest: 1 bearer token(s) for LiteLLM\n  batcher arbitrum: batches of up to");
    expect(batcher.stdout).to.not.include("settler arbitrum");
    const settler = await agentgpt(["relayer", "check", "--config", file, "--stages", "settler"], env);
    expect(settler.code).to.equal(2);
    expect(settler.stderr).to.equal("agentgpt: settler signer: set CHECK_TEST_STAGES_KEY to the relayer's private key (development only)\n");
    // and a settler host needs no ingest token
    const settlerOnly = await agentgpt(["relayer", "check", "--config", file, "--stages", "settler"], {
      AGENTGPT_INGEST_TOKENS: "",
      CHECK_TEST_STAGES_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    });
    expect(settlerOnly.code, settlerOnly.stderr).to.equal(0);
    expect(settlerOnly.stdout).to.include("start requirements (tokens, keys, variables):\n  settler arbitrum: signs with 0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n");
  });

  it("a port in use: one line naming the port, its config key and the fix, exit 2 (ingest and dashboard)", async function () {
    const blocker = createServer();
    blocker.listen(0, "127.0.0.1");
    await once(blocker, "listening");
    const busy = (blocker.address() as AddressInfo).port;
    const prefix = uniquePrefix("cli");
    try {
      const ingestBusy = writeConfig(prefix);
      writeFileSync(ingestBusy, readFileSync(ingestBusy, "utf8").replace("  port: 0\n", `  port: ${busy}\n`));
      const ingest = await agentgpt(["relayer", "start", "--config", ingestBusy]);
      expect(ingest.code, ingest.stderr).to.equal(2);
      expect(ingest.stderr).to.equal(
        `agentgpt: server.port: 127.0.0.1:${busy} is already in use by another process: stop that process (another relayer?), or set server.port in ${ingestBusy} (or --port) to a free port\n`,
      );

      const dashboardBusy = writeConfig(prefix, { extra: `dashboard: { host: 127.0.0.1, port: ${busy} }` });
      const dashboard = await agentgpt(["relayer", "start", "--config", dashboardBusy]);
      expect(dashboard.code, dashboard.stderr).to.equal(2);
      expect(dashboard.stderr).to.equal(
        `agentgpt: dashboard.port: 127.0.0.1:${busy} is already in use by another process: stop that process (another relayer?), or set dashboard.port in ${dashboardBusy} to a free port\n`,
      );
      expect(ingest.stderr + dashboard.stderr).to.not.include("unexpected error");
    } finally {
      blocker.close();
      const redis = testRedis();
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("relayer unbillable and reprice: list the kept calls, then queue them once a payer rule exists", async function () {
    const prefix = uniquePrefix("cli");
    const redis = testRedis();
    try {
      const before = loadRelayerConfig(writeConfig(prefix), { env: {} });
      const opened = await openReceiptQueue(before);
      const builder = SubmissionBuilder.fromConfig(before);
      const stray = call({}, { user_api_key_alias: "new-team" });
      const { spendLogParser } = await import("../../../relayer/ingest/index.js");
      const parsed = spendLogParser({ maxTokensPerCall: 1e7 })(stray);
      if (!parsed.ok) throw new Error(parsed.reason);
      await opened.queue.add([builder.build(parsed.log, Date.now())]);
      await opened.close();

      const fixedFile = writeConfig(prefix, { payers: `payers:\n  - key_alias: new-team\n    payer: "${PAYER_RESEARCH}"\n` });
      const listed = await agentgpt(["relayer", "unbillable", "--config", fixedFile, "--reason", "no_payer", "--json"]);
      expect(listed.code).to.equal(0);
      const json = JSON.parse(listed.stdout) as { counts: Record<string, number>; records: Array<{ id: string; reason: string }> };
      expect(json.counts["no_payer"]).to.equal(1);
      expect(json.records.map((record) => [record.id, record.reason])).to.deep.equal([[stray["id"], "no_payer"]]);

      const text = await agentgpt(["relayer", "unbillable", "--config", fixedFile]);
      expect(text.stdout.split("\n").slice(0, 8)).to.deep.equal([
        "no_payer           1",
        "payer_not_allowed  0",
        "failed_call        0",
        "zero_usage         0",
        "cache_hit          0",
        "unknown_route      0",
        "unpriced           0",
        "per_request        0",
      ]);

      const repriced = await agentgpt(["relayer", "reprice", "--config", fixedFile]);
      expect(repriced.stdout).to.equal("examined 1, queued 1, still unbillable 0\n");
      const again = await agentgpt(["relayer", "reprice", "--config", fixedFile]);
      expect(again.stdout).to.equal("examined 0, queued 0, still unbillable 0\n");
      const bad = await agentgpt(["relayer", "unbillable", "--config", fixedFile, "--reason", "too_expensive"]);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.include("agentgpt: --reason too_expensive: one of no_payer, payer_not_allowed, failed_call");
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("relayer unbillable and conflicts print no terminal escape sequence a LiteLLM caller put in a field", async function () {
    const prefix = uniquePrefix("cli");
    const redis = testRedis();
    const hostile = "\u001b]0;pwned\u0007\u001b[31m";
    try {
      const config = loadRelayerConfig(writeConfig(prefix), { env: {} });
      const opened = await openReceiptQueue(config);
      const builder = SubmissionBuilder.fromConfig(config);
      const { spendLogParser } = await import("../../../relayer/ingest/index.js");
      const parse = (entry: Record<string, unknown>) => {
        const parsed = spendLogParser({ maxTokensPerCall: 1e7 })(entry);
        if (!parsed.ok) throw new Error(parsed.reason);
        return parsed.log;
      };
      // no payer rule matches: kept as no_payer, its detail names end_user; the call id is the caller's too
      const stray = call({ end_user: `mallory${hostile}`, id: `call-${hostile}-1` }, { user_api_key_alias: "new-team" });
      await opened.queue.add([builder.build(parse(stray), Date.now())]);
      // the same call again with other usage: a conflict, listed by `relayer conflicts`
      const billed = call({ id: `call-${hostile}-2` });
      await opened.queue.add([builder.build(parse(billed), Date.now())]);
      await opened.queue.add([builder.build(parse({ ...billed, completion_tokens: 999, total_tokens: 9999 }), Date.now())]);
      await opened.close();

      const listed = await agentgpt(["relayer", "unbillable", "--config", config.files[0]!, "--reason", "no_payer"]);
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout).to.include("end_user=mallory, ");
      expect(listed.stdout).to.include("call--1  ");
      expect(listed.stdout).to.not.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
      const conflicts = await agentgpt(["relayer", "conflicts", "--config", config.files[0]!]);
      expect(conflicts.code, conflicts.stderr).to.equal(0);
      expect(conflicts.stdout).to.include("call--2  kept a receipt");
      expect(conflicts.stdout).to.not.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("litellm config prints the LiteLLM proxy config that points the generic logger at the relayer", async function () {
    const result = await agentgpt(["litellm", "config", "--config", join(REPO, "config", "relayer.example.yaml")], { REDIS_URL: "" });
    expect(result.code).to.equal(0);
    const config = parseYaml(result.stdout) as Record<string, any>;
    expect(config["litellm_settings"]).to.deep.equal({
      callbacks: ["agentgpt_billing"],
      turn_off_message_logging: true,
      standard_logging_payload_excluded_fields: [
        "messages",
        "response",
        "model_map_information",
        "hidden_params",
        "model_parameters",
        "cost_breakdown",
        "error_information",
        "response_cost_failure_debug_info",
        "guardrail_information",
        "standard_built_in_tools_params",
      ],
    });
    expect(config["callback_settings"]).to.deep.equal({
      agentgpt_billing: {
        callback_type: "generic_api",
        endpoint: "http://127.0.0.1:8787/litellm/spend",
        headers: { "X-AgentGPT-Client": "litellm-proxy" },
        event_types: ["llm_api_success", "llm_api_failure"],
        log_format: "json_array",
        batch_size: 512,
        flush_interval: 5,
      },
    });
    expect(config["model_list"].map((entry: any) => [entry.model_name, entry.litellm_params.model, entry.litellm_params.api_key])).to.deep.equal([
      ["gpt-4-turbo", "openai/gpt-4-turbo", "os.environ/OPENAI_API_KEY"],
      ["gpt-4-turbo", "anyscale/gpt-4-turbo", "os.environ/ANYSCALE_API_KEY"],
      ["gpt-4-turbo", "together_ai/gpt-4-turbo", "os.environ/TOGETHER_AI_API_KEY"],
      ["mixtral-8x22b", "groq/mixtral-8x22b", "os.environ/GROQ_API_KEY"],
      ["mixtral-8x22b", "fireworks_ai/mixtral-8x22b", "os.environ/FIREWORKS_AI_API_KEY"],
      ["mixtral-8x22b", "deepinfra/mixtral-8x22b", "os.environ/DEEPINFRA_API_KEY"],
    ]);
    expect(config["general_settings"]).to.deep.equal({ disable_spend_logs: false });
    expect(result.stdout).to.include('#   export GENERIC_LOGGER_HEADERS="Authorization=Bearer <a token from AGENTGPT_INGEST_TOKENS>"');
    expect(result.stdout).to.include("# Billing completeness: LiteLLM's generic API logger posts each batch once and drops it on any error");
    expect(result.stdout).to.include("# Checked against LiteLLM's source and docs: litellm/integrations/generic_api/generic_api_callback.py at 0cc07bab");

    const inline = await agentgpt(
      ["litellm", "config", "--config", join(REPO, "config", "relayer.example.yaml"), "--inline-token", "--no-models", "--log-format", "ndjson", "--endpoint", "https://relayer.internal/litellm/spend"],
      { AGENTGPT_INGEST_TOKENS: TOKEN, REDIS_URL: "" },
    );
    const inlined = parseYaml(inline.stdout) as Record<string, any>;
    expect(inlined["model_list"]).to.equal(undefined);
    expect(inlined["litellm_settings"]["callbacks"]).to.deep.equal(["agentgpt_billing"]);
    expect(inlined["callback_settings"]["agentgpt_billing"]).to.deep.include({
      endpoint: "https://relayer.internal/litellm/spend",
      headers: { Authorization: `Bearer ${TOKEN}` },
      log_format: "ndjson",
    });
    expect(inline.stderr).to.equal("agentgpt: the output contains the relayer's bearer token; keep it private\n");

    const wrong = await agentgpt(["litellm", "config", "--log-format", "xml"]);
    expect(wrong.code).to.equal(2);
    expect(wrong.stderr).to.equal("agentgpt: --log-format xml: one of json_array, ndjson, single (LiteLLM's log_format)\n");

    // a batch larger than the relayer takes would be refused whole, every time, and never sent again
    const example = join(REPO, "config", "relayer.example.yaml");
    const tooLarge = await agentgpt(["litellm", "config", "--config", example, "--batch-size", "20000"], { REDIS_URL: "" });
    expect(tooLarge.code).to.equal(2);
    expect(tooLarge.stderr).to.equal(
      `agentgpt: --batch-size 20000: the relayer of ${example} refuses a POST of more than 10000 logs (server.max_entries): give at most 10000, or raise server.max_entries\n`,
    );
  });
});
