/**
 * The real relayer process (`agentgpt relayer start`) for end-to-end tests: a config file written for a test chain
 * and Redis, the process spawned with its logs captured, LiteLLM-style POSTs, and a way to wait until every
 * receipt is settled.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { freePort } from "./hardhat-node.js";

export const INGEST_TOKEN = "e2e-ingest-token-0123456789abcdef";
export const RELAYER_KEY_ENV = "AGENTGPT_E2E_RELAYER_KEY";

export interface RelayerConfigOptions {
  redisUrl: string;
  prefix: string;
  rpcUrls: string[];
  router: string;
  payers: string[];
  chainId: number;
  confirmations?: number;
  maxReceipts?: number;
  maxWait?: string;
  stuckAfter?: string;
  /** YAML lines added under `settler:` (indented two spaces), e.g. a rotation section */
  settlerExtra?: string;
  /** YAML lines added under the chain (indented four spaces), e.g. its rotator */
  chainExtra?: string;
}

export interface RelayerSetup {
  dir: string;
  configFile: string;
  archiveDir: string;
  port: number;
  url: string;
}

/** Key alias `payer-<i>` maps to payers[i]; gpt-4-turbo via openai at 0.12 AGPT/1k, mixtral via groq. */
export async function writeRelayerConfig(options: RelayerConfigOptions): Promise<RelayerSetup> {
  const dir = mkdtempSync(join(tmpdir(), "agentgpt-e2e-"));
  const port = await freePort();
  const archiveDir = join(dir, "archive");
  const yaml = `token: { symbol: AGPT, decimals: 18 }
server:
  host: 127.0.0.1
  port: ${port}
  tokens: ["${INGEST_TOKEN}"]
  parse_workers: 1
redis:
  url: ${options.redisUrl}
  prefix: ${options.prefix}
chains:
  local:
    chain_id: ${options.chainId}
    rpc_urls: [${options.rpcUrls.map((u) => `"${u}"`).join(", ")}]
    confirmations: ${options.confirmations ?? 1}
    router: "${options.router}"
${options.chainExtra ?? ""}
default_chain: local
routes:
  - route: mission_critical
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai@az-westus]
  - route: cost_optimized
    model: mixtral-8x22b
    budget: 0.0085 AGPT/1k tokens
    providers: [groq@L40S]
route_aliases:
  cost_optimized: [mixtral, mixtral-8x7b-32768]
payers:
${options.payers.map((payer, i) => `  - key_alias: payer-${i}\n    payer: "${payer}"`).join("\n")}
archive:
  dir: ${archiveDir}
batcher:
  max_receipts: ${options.maxReceipts ?? 500}
  max_wait: ${options.maxWait ?? "300ms"}
settler:
  signer: { key_env: ${RELAYER_KEY_ENV} }
  stuck_after: ${options.stuckAfter ?? "2s"}
  poll: 100ms
  lease_ttl: 1500ms
  max_in_flight: 4
${options.settlerExtra ?? ""}
ingest:
  sweep_interval: 1s
`;
  const configFile = join(dir, "relayer.yaml");
  writeFileSync(configFile, yaml);
  return { dir, configFile, archiveDir, port, url: `http://127.0.0.1:${port}` };
}

export interface RelayerProcess {
  child: ChildProcess;
  logs: () => string;
  exited: Promise<number | null>;
  /** SIGTERM and wait */
  stop(): Promise<void>;
}

export async function startRelayer(
  setup: RelayerSetup,
  relayerKey: string,
  env: Record<string, string> = {},
  /** more arguments of `relayer start`, e.g. ["--stages", "settler"] */
  args: readonly string[] = [],
  /** `bin`: the agentgpt entry to run (default: this clone's, from the sources); `cwd`: where (default: here) */
  command: { bin?: string; cwd?: string } = {},
): Promise<RelayerProcess> {
  const child = spawn(process.execPath, [command.bin ?? "bin/agentgpt.mjs", "relayer", "start", "--config", setup.configFile, "--log-level", "info", ...args], {
    cwd: command.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, [RELAYER_KEY_ENV]: relayerKey, ...env },
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const started = Date.now();
  while (!output.includes('"msg":"relayer started"')) {
    if (child.exitCode !== null || child.signalCode !== null) {
      // a failpoint may kill it before it says it started: that is for the caller to judge
      break;
    }
    if (Date.now() - started > 60_000) throw new Error(`relayer did not start in 60 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    logs: () => output,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      // unref: once the child exited, this bound must not hold the test process open (it did, after every test)
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** POSTs `entries` as one json_array body; returns the HTTP status and parsed body. */
export async function postSpend(url: string, entries: unknown[]): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}/litellm/spend`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${INGEST_TOKEN}` },
    body: JSON.stringify(entries),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}
