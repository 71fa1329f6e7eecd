/**
 * Test harness for ingest: real Redis (a fresh, uniquely prefixed key space per test, dropped after) and a real
 * HTTP server on 127.0.0.1 with port 0, started from a real YAML configuration that includes the seed's files.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import type { Redis } from "ioredis";

import { loadRelayerConfig, type RelayerConfig } from "../../../relayer/config/index.js";
import { type IngestRuntime, startIngest } from "../../../relayer/ingest/index.js";
import type { Receipt, ReceiptQueue, UnbillableRecord, UnbillableReason } from "../../../relayer/queue/index.js";
import { UNBILLABLE_REASONS } from "../../../relayer/queue/index.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, "..", "..", "..");

/** Payers of the test configuration (Hardhat's first accounts). */
export const PAYER_BACKEND = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
export const PAYER_RESEARCH = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
export const PARTNER_WALLET = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
export const STRANGER_WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

/** 10^18 */
export const AGPT = 10n ** 18n;
export const GPT4_PER_1K = (12n * AGPT) / 100n; // 0.12 AGPT/1k tokens
export const MIXTRAL_PER_1K = (85n * AGPT) / 10_000n; // 0.0085 AGPT/1k tokens

export type Json = Record<string, unknown>;

/** A LiteLLM payload example (fixtures/litellm: LiteLLM's own, byte for byte), parsed fresh each time. */
export function fixture(name: "01_openai_gpt4_turbo_success" | "05_failure_rate_limit" | "12_generic_api_batch_json_array"): any {
  return JSON.parse(readFileSync(join(here, "..", "..", "..", "fixtures", "litellm", `${name}.json`), "utf8"));
}

let sequence = 0;

/** The success fixture as a new call: its own call id and response id, and any field overridden. */
export function call(overrides: Json = {}, metadata: Json = {}): Json {
  sequence += 1;
  const entry = fixture("01_openai_gpt4_turbo_success");
  const id = `test-${process.pid}-${Date.now()}-${sequence}`;
  entry.litellm_call_id = id;
  entry.id = `chatcmpl-${id}`;
  Object.assign(entry.metadata, metadata);
  return Object.assign(entry, overrides);
}

export const TOKEN = "test-token-0123456789abcdef";
export const OLD_TOKEN = "old-token-fedcba9876543210";

export interface ConfigOptions {
  /** more lines under server: (two-space indented) */
  readonly server?: string;
  /** more lines under redis: (two-space indented) */
  readonly redis?: string;
  /** replaces the payers: block */
  readonly payers?: string;
  /** more top-level sections */
  readonly extra?: string;
  readonly redisUrl?: string;
  /** replaces the seed's litellm-router.yaml include with these top-level lines (routes: and agentgpt:) */
  readonly routes?: string;
}

export const DEFAULT_PAYERS = `payers:
  - key_alias: prod-backend
    payer: "${PAYER_BACKEND}"
  - team_id: research
    payer: "${PAYER_RESEARCH}"
  - key_alias: partner-gateway
    wallet_from: [spend_logs_metadata.wallet, requester_metadata.wallet]
    allowed: ["${PARTNER_WALLET}"]
`;

/** A relayer configuration file: the seed's two files included as written, our sections beside them. */
export function writeConfig(prefix: string, options: ConfigOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "agentgpt-ingest-"));
  const file = join(dir, "relayer.yaml");
  writeFileSync(
    file,
    `include:
${options.routes === undefined ? `  - ${join(REPO, "config", "litellm-router.yaml")}\n` : ""}  - ${join(REPO, "config", "payment-channels.yaml")}
${options.routes ?? ""}
server:
  host: 127.0.0.1
  port: 0
  tokens: ["${TOKEN}", "${OLD_TOKEN}"]
  parse_workers: 0
${options.server ?? ""}
redis:
  url: ${options.redisUrl ?? REDIS_URL}
  prefix: ${prefix}
${options.redis ?? ""}
chains:
  arbitrum: {}
  polygon: {}
default_chain: arbitrum
pricing:
  usd_rate: "2.5 AGPT/USD"
${options.routes === undefined ? "route_aliases:\n  cost_optimized: [mixtral]" : ""}
${options.payers ?? DEFAULT_PAYERS}
${options.extra ?? ""}
`,
  );
  return file;
}

export interface TestIngest {
  readonly prefix: string;
  readonly config: RelayerConfig;
  readonly runtime: IngestRuntime;
  readonly url: string;
  readonly redis: Redis;
  post(body: string | Buffer, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

export async function startTestIngest(options: ConfigOptions & { parseWorkers?: number; sweep?: boolean; prefix?: string } = {}): Promise<TestIngest> {
  const prefix = options.prefix ?? uniquePrefix("ingest");
  const config = loadRelayerConfig(writeConfig(prefix, options), { env: {} });
  const runtime = await startIngest(config, {
    env: {},
    sweep: options.sweep ?? false,
    defaultMetrics: false,
    ...(options.parseWorkers === undefined ? {} : { parseWorkers: options.parseWorkers }),
  });
  const redis = testRedis();
  return {
    prefix,
    config,
    runtime,
    url: runtime.url,
    redis,
    post: (body, headers = {}) => post(runtime.url, body, headers),
    stop: async () => {
      await runtime.stop();
      await dropPrefix(redis, prefix);
      redis.disconnect();
    },
  };
}

export async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${url}/litellm/spend`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? null : JSON.parse(text), headers: response.headers };
}

export interface QueueContents {
  /** every receipt in an unacknowledged chunk, by chain, in queue order */
  readonly receipts: Record<string, Receipt[]>;
  /** BullMQ jobs waiting, by chain (one per chunk) */
  readonly jobs: Record<string, Array<{ name: string; id: string | undefined; data: unknown }>>;
  readonly chunks: Record<string, number>;
  readonly unbillable: Record<UnbillableReason, UnbillableRecord[]>;
}

/** Everything the queue holds now, read through its public API. */
export async function queueContents(queue: ReceiptQueue): Promise<QueueContents> {
  const receipts: Record<string, Receipt[]> = {};
  const jobs: QueueContents["jobs"] = {};
  const chunks: Record<string, number> = {};
  for (const chain of queue.chains) {
    const pending = await queue.store.pendingChunks(chain);
    chunks[chain] = pending.length;
    receipts[chain] = [];
    for (const { chunkId } of pending) receipts[chain].push(...((await queue.store.readChunk(chunkId)) ?? []));
    const waiting = await queue.queue(chain).getJobs(["waiting", "delayed", "active", "prioritized"]);
    jobs[chain] = waiting.map((job) => ({ name: job.name, id: job.id, data: job.data }));
  }
  const unbillable = {} as Record<UnbillableReason, UnbillableRecord[]>;
  for (const reason of UNBILLABLE_REASONS) unbillable[reason] = await queue.store.listUnbillable(reason, { limit: 1000 });
  return { receipts, jobs, chunks, unbillable };
}

/** amountMilli of a per-1k route: tokens * price; and the display amount ceil(milli / 1000). */
export function priced(tokens: number, per1k: bigint): { amountMilli: string; amount: string } {
  const milli = BigInt(tokens) * per1k;
  return { amountMilli: milli.toString(), amount: ((milli + 999n) / 1000n).toString() };
}

/** A value of a Prometheus sample from /metrics text, e.g. metric('agentgpt_ingest_entries_total{outcome="queued"}'). */
export async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

export function randomId(): string {
  return randomBytes(6).toString("hex");
}

export { dropPrefix, REDIS_URL, testRedis, uniquePrefix };
