/**
 * The relayer configuration the demo runs with: the seed's routes (mission_critical on OpenAI, cost_optimized on
 * Groq) plus Claude, the demo's API keys mapped to payer wallets, the local chain and Redis, a batch that closes at
 * the sample's size (so the whole sample settles as one batch, without waiting for the window), a release stage that
 * looks for batches past their dispute window five times a second, and a reconciler
 * that asks the demo's provider usage API every second and disputes the overcharged rows of the one payer whose key
 * it holds. Keys (the settler's, that payer's, the usage API's) come from environment variables handed to the
 * in-process relayer (never process.env, never a file).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

export const DEMO_KEY_ENV = "AGENTGPT_DEMO_RELAYER_KEY";
export const DEMO_PAYER_KEY_ENV = "AGENTGPT_DEMO_PAYER_KEY";
export const DEMO_USAGE_KEY_ENV = "AGENTGPT_DEMO_USAGE_KEY";

export interface DemoConfigOptions {
  readonly dir: string;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly router: string;
  readonly port: number;
  readonly ingestToken: string;
  /** LiteLLM key alias -> payer wallet */
  readonly payers: ReadonlyArray<{ readonly keyAlias: string; readonly address: string }>;
  /** receipts the sample queues: the batch closes at this many */
  readonly batchReceipts: number;
  /** the providers' usage API (http-json adapter) */
  readonly usageApiUrl: string;
  readonly providers: readonly string[];
  /** the payer whose key the reconciler holds (its key in DEMO_PAYER_KEY_ENV) */
  readonly disputer: string;
}

export async function writeDemoConfig(options: DemoConfigOptions): Promise<{ file: string; archiveDir: string }> {
  const archiveDir = join(options.dir, "archive");
  const yaml = `# written by \`agentgpt demo\` (removed when it ends)
token: { symbol: AGPT, decimals: 18 }
server:
  host: 127.0.0.1
  port: ${options.port}
  tokens: ["${options.ingestToken}"]
  parse_workers: 1
redis:
  url: ${options.redisUrl}
  prefix: ${options.prefix}
chains:
  local:
    chain_id: ${options.chainId}
    rpc_urls: ["${options.rpcUrl}"]
    confirmations: 1
    router: "${options.router}"
default_chain: local
routes:
  - route: mission_critical
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai@az-westus]
  - route: long_context
    model: claude-3-opus
    budget: 0.09 AGPT/1k tokens
    providers: [anthropic]
  - route: cost_optimized
    model: mixtral-8x22b
    budget: 0.0085 AGPT/1k tokens
    providers: [groq@L40S]
route_aliases:
  cost_optimized: [mixtral, mixtral-8x7b-32768]
payers:
${options.payers.map((payer) => `  - key_alias: ${payer.keyAlias}\n    payer: "${payer.address}"`).join("\n")}
archive:
  dir: ${archiveDir}
batcher:
  max_receipts: ${Math.min(Math.max(options.batchReceipts, 1), 20_000)}
  max_wait: 10s
settler:
  signer: { key_env: ${DEMO_KEY_ENV} }
  poll: 200ms
  stuck_after: 20s
  lease_ttl: 5s
ingest:
  sweep_interval: 1s
payout:
  interval: 200ms
reconciler:
  interval: 1s
  report_delay: 0s
  epoch: 1h
  providers:
${options.providers.map((name) => `    ${name}: { url: "${options.usageApiUrl}", api_key_env: ${DEMO_USAGE_KEY_ENV}, timeout: 5s }`).join("\n")}
  payers:
    - address: "${options.disputer}"
      key_env: ${DEMO_PAYER_KEY_ENV}
`;
  const file = join(options.dir, "relayer.yaml");
  await writeFile(file, yaml, { mode: 0o600 });
  return { file, archiveDir };
}
