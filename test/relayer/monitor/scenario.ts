/**
 * One known history for the monitor and dashboard tests, made with real parts: a `hardhat node`, the suite deployed
 * over JSON-RPC, Redis, and the relayer process (`agentgpt relayer start`, with a dashboard: section) fed
 * LiteLLM-style POSTs. What it sends, and so every figure the monitor must show, is known here:
 *
 *   payers 0..3 call gpt-4-turbo (openai, route mission_critical) and mixtral-8x22b (groq, cost_optimized), settled
 *   on chain "local"; payers 0 and 1 also call claude-3-opus (anthropic, claude_fast), paid on chain "polygon",
 *   which has no rpc_urls: those stay pending in ingest's queue. One failed call is kept unbillable.
 *   payer 3's daily cap is 1 unit: both its rows are rejected (OverDailyCap).
 *   payer 0 disputes its gpt-4-turbo interval (one row, left open) and its mixtral interval (one row, resolved by
 *   governance with a quarter of its tokens found overbilled).
 *   payer 1's daily cap is 5,000 AGPT; gpt-4-turbo has a governed daily budget of 1,000 AGPT.
 *
 * Every price divides evenly (0.12 and 0.0085 AGPT per 1k tokens, 18 decimals), so a row charges exactly the sum of
 * its calls, however the receipts are batched.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { NonceManager } from "ethers";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { chargesOf } from "../../../relayer/batcher/batch-file.js";
import { buildRowsTree } from "../../../relayer/batcher/rows-tree.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { freePort, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { INGEST_TOKEN, postSpend, RELAYER_KEY_ENV, startRelayer, type RelayerProcess } from "../../helpers/relayer-process.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "fixtures", "litellm");
const template = JSON.parse(readFileSync(join(FIXTURES, "01_openai_gpt4_turbo_success.json"), "utf8")) as Record<string, any>;
const failure = JSON.parse(readFileSync(join(FIXTURES, "05_failure_rate_limit.json"), "utf8")) as Record<string, any>;

export type Model = "gpt-4-turbo" | "mixtral-8x22b" | "claude-3-opus";

export const MODELS: Record<Model, { provider: string; route: string; pricePer1k: bigint; chain: string }> = {
  "gpt-4-turbo": { provider: "openai", route: "mission_critical", pricePer1k: (12n * AGPT) / 100n, chain: "local" },
  "mixtral-8x22b": { provider: "groq", route: "cost_optimized", pricePer1k: (85n * AGPT) / 10_000n, chain: "local" },
  "claude-3-opus": { provider: "anthropic", route: "claude_fast", pricePer1k: (9n * AGPT) / 100n, chain: "polygon" },
};

export interface Call {
  payer: number;
  model: Model;
  tokens: number;
  latencyMs: number;
  /** exact price in thousandths of a unit */
  milli: bigint;
}

export const GPT4_BUDGET = 1000n * AGPT;
export const PAYER1_CAP = 5000n * AGPT;
export const DISPUTE_BOND = AGPT;

export interface Scenario {
  node: HardhatNode;
  suite: ChainSuite;
  relayer: RelayerProcess;
  prefix: string;
  dir: string;
  configFile: string;
  archiveDir: string;
  dashboardUrl: string;
  dashboardPort: number;
  calls: Call[];
  /** the settled batch (all local calls were sent in one POST: one chunk, one batch) */
  batchId: string;
  /** payer 0's gpt-4-turbo row: its interval disputed, still open */
  openDispute: { disputeId: string; index: number; amount: bigint };
  /** payer 0's mixtral row: its interval disputed, resolved with `refund` back to the payer */
  resolvedDispute: { disputeId: string; index: number; amount: bigint; refund: bigint };
  stop(): Promise<void>;
}

function entry(call: Call, id: string): Record<string, unknown> {
  const e = structuredClone(template);
  e.litellm_call_id = id;
  e.id = `chatcmpl-${id}`;
  e.trace_id = id;
  const prompt = Math.floor(call.tokens * 0.6);
  e.prompt_tokens = prompt;
  e.completion_tokens = call.tokens - prompt;
  e.total_tokens = call.tokens;
  e.response_time = call.latencyMs / 1000;
  e.endTime = Number(e.startTime) + call.latencyMs / 1000; // the relayer measures a call start to end
  e.messages = [{ role: "user", content: "hi" }];
  e.response = {};
  e.model_map_information = null;
  if (call.model === "mixtral-8x22b") {
    e.custom_llm_provider = "groq";
    e.model = "groq/mixtral-8x7b-32768";
    e.model_group = "mixtral";
    e.api_base = "https://api.groq.com/openai/v1";
  } else if (call.model === "claude-3-opus") {
    e.custom_llm_provider = "anthropic";
    e.model = "anthropic/claude-3-opus";
    e.model_group = "claude";
    e.api_base = "https://api.anthropic.com";
  }
  e.metadata = { ...e.metadata, user_api_key_alias: `payer-${call.payer}`, usage_object: null };
  return e;
}

/** The calls: fixed token counts and latencies, so every figure is known in advance. */
export function scenarioCalls(): Call[] {
  const calls: Call[] = [];
  const add = (payer: number, model: Model, tokens: number, latencyMs: number) =>
    calls.push({ payer, model, tokens, latencyMs, milli: BigInt(tokens) * MODELS[model].pricePer1k });
  for (let payer = 0; payer < 4; payer++) {
    for (let i = 0; i < 3; i++) {
      add(payer, "gpt-4-turbo", 800 + 137 * payer + 311 * i, 400 + 10 * payer + 7 * i);
      add(payer, "mixtral-8x22b", 1500 + 97 * payer + 53 * i, 20 + payer + 2 * i);
    }
  }
  for (const payer of [0, 1]) for (let i = 0; i < 2; i++) add(payer, "claude-3-opus", 1200 + 41 * payer + 17 * i, 650 + 5 * i);
  return calls;
}

function yaml(options: { redisUrl: string; prefix: string; rpc: string; router: string; chainId: number; payers: string[]; ingestPort: number; dashboardPort: number; archiveDir: string }): string {
  return `token: { symbol: AGPT, decimals: 18 }
server:
  host: 127.0.0.1
  port: ${options.ingestPort}
  tokens: ["${INGEST_TOKEN}"]
  parse_workers: 0
redis:
  url: ${options.redisUrl}
  prefix: ${options.prefix}
chains:
  local:
    chain_id: ${options.chainId}
    rpc_urls: ["${options.rpc}"]
    confirmations: 1
    router: "${options.router}"
  polygon: {}
default_chain: local
payment_channels:
  - provider: anthropic
    chain: polygon
routes:
  - route: mission_critical
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai@az-westus]
  - route: cost_optimized
    model: mixtral-8x22b
    budget: 0.0085 AGPT/1k tokens
    providers: [groq@L40S]
  - route: claude_fast
    model: claude-3-opus
    budget: 0.09 AGPT/1k tokens
    providers: [anthropic]
route_aliases:
  cost_optimized: [mixtral, mixtral-8x7b-32768]
  claude_fast: [claude]
payers:
${options.payers.map((payer, i) => `  - key_alias: payer-${i}\n    payer: "${payer}"`).join("\n")}
archive:
  dir: ${options.archiveDir}
batcher:
  max_receipts: 500
  max_wait: 300ms
settler:
  signer: { key_env: ${RELAYER_KEY_ENV} }
  poll: 100ms
payout:
  interval: 200ms
ingest:
  sweep_interval: 1s
dashboard:
  host: 0.0.0.0
  port: ${options.dashboardPort}
  refresh: 1s
  explorers:
    local: "http://explorer.invalid/tx/{tx}"
  ipfs_gateway: "http://ipfs.invalid/ipfs/{cid}"
`;
}

export async function startScenario(): Promise<Scenario> {
  const node = await startHardhatNode();
  let relayer: RelayerProcess | undefined;
  const redis = testRedis();
  try {
    const suite = await deployChainSuite(node.url, { payers: 4 });
    const admin = suite.admin;
    for (const i of [0, 1, 3]) await (await admin.sendTransaction({ to: suite.payers[i]!.address, value: 10n ** 18n })).wait();
    const signers = suite.payers.map((wallet) => new NonceManager(wallet));
    const payer = (i: number) => suite.router.connect(signers[i]!);
    await (await payer(3).setDailyCap(1n)).wait();
    await (await payer(1).setDailyCap(PAYER1_CAP)).wait();
    await (await suite.router.setModelBudget("gpt-4-turbo", GPT4_BUDGET)).wait();
    await (await suite.router.setDisputeBond(DISPUTE_BOND)).wait();

    const prefix = uniquePrefix("mon");
    const dir = mkdtempSync(join(tmpdir(), "agentgpt-monitor-"));
    const archiveDir = join(dir, "archive");
    const ingestPort = await freePort();
    const dashboardPort = await freePort();
    const configFile = join(dir, "relayer.yaml");
    writeFileSync(
      configFile,
      yaml({ redisUrl: REDIS_URL, prefix, rpc: node.url, router: suite.routerAddress, chainId: suite.chainId, payers: suite.payers.map((p) => p.address), ingestPort, dashboardPort, archiveDir }),
    );
    relayer = await startRelayer({ dir, configFile, archiveDir, port: ingestPort, url: `http://127.0.0.1:${ingestPort}` }, suite.relayerKey);
    if (!relayer.logs().includes('"msg":"dashboard listening"')) throw new Error(`the dashboard did not start:\n${relayer.logs()}`);

    const calls = scenarioCalls();
    const failed = structuredClone(failure);
    failed.litellm_call_id = `${prefix}-failed`;
    failed.id = `${prefix}-failed`;
    const body = [...calls.map((call, i) => entry(call, `${prefix}-${i}`)), failed];
    const response = await postSpend(`http://127.0.0.1:${ingestPort}`, body);
    if (response.status !== 200) throw new Error(`POST answered ${response.status}: ${JSON.stringify(response.body)}`);

    // Wait until every local call is in a final batch.
    const local = calls.filter((call) => MODELS[call.model].chain === "local").length;
    const store = new SettlementStore(redis, prefix, "local");
    for (let started = Date.now(); ; ) {
      const stats = await store.stats();
      if ((stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0) >= local && (await store.active()).length === 0) break;
      if (Date.now() - started > 60_000) throw new Error(`not settled: ${JSON.stringify(stats)}\n${relayer.logs().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const archive = new LocalArchive(archiveDir);
    const ids = await archive.list("local");
    if (ids.length !== 1) throw new Error(`expected one batch, got ${ids.length}`);
    const batchId = ids[0]!;
    const file = (await archive.read("local", batchId))!;
    const charges = chargesOf(file);
    const rejected = new Set(file.rows.flatMap((row) => (row.user === suite.payers[3]!.address ? [row.index] : [])));
    const tree = buildRowsTree(charges, rejected);
    const rowOf = (payerIndex: number, model: Model) => file.rows.find((row) => row.user === suite.payers[payerIndex]!.address && row.modelName === model)!;

    const open = rowOf(0, "gpt-4-turbo");
    const resolved = rowOf(0, "mixtral-8x22b");
    // Each row is the only settled row of its (payer, provider, model, bucket): a dispute names just it.
    const disputeRow = async (index: number): Promise<string> => {
      const receipt = await (await payer(0).dispute([{ batchId, index, charge: { ...charges[index]! }, proof: tree.proof(index) }])).wait();
      for (const log of receipt!.logs) {
        const parsed = suite.router.interface.parseLog(log);
        if (parsed?.name === "DisputeOpened") return parsed.args.getValue("disputeId") as string;
      }
      throw new Error("no DisputeOpened log");
    };
    const openId = await disputeRow(open.index);
    const resolvedId = await disputeRow(resolved.index);
    const overbilled = BigInt(resolved.tokens) / 4n;
    const refund = (BigInt(resolved.amount) * overbilled) / BigInt(resolved.tokens); // the contract's rounding
    await (await suite.router.resolveDispute(resolvedId, overbilled)).wait();

    const started = relayer;
    return {
      node,
      suite,
      relayer: started,
      prefix,
      dir,
      configFile,
      archiveDir,
      dashboardUrl: `http://127.0.0.1:${dashboardPort}`,
      dashboardPort,
      calls,
      batchId,
      openDispute: { disputeId: openId, index: open.index, amount: BigInt(open.amount) },
      resolvedDispute: { disputeId: resolvedId, index: resolved.index, amount: BigInt(resolved.amount), refund },
      async stop() {
        await started.stop();
        await node.stop();
        redis.disconnect();
      },
    };
  } catch (error) {
    if (relayer !== undefined) process.stderr.write(`--- relayer logs ---\n${relayer.logs().slice(-6000)}\n`);
    await relayer?.stop();
    await node.stop();
    redis.disconnect();
    throw error;
  }
}

/** Sum of the calls' exact prices, in units (every price here divides evenly). */
export function units(calls: readonly Call[]): bigint {
  return calls.reduce((sum, call) => sum + call.milli, 0n) / 1000n;
}

export function payerAddress(suite: ChainSuite, index: number): string {
  return suite.payers[index]!.address;
}
