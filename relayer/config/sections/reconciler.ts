/**
 * `reconciler:` comparing what was settled with what providers report, and disputing overcharges of the payers
 * whose keys the operator holds. Without this section `relayer start` runs no reconciler; `agentgpt reconcile`
 * and `agentgpt dispute` still read its providers, IPFS and chain settings when given `--config`.
 *
 * ```yaml
 * reconciler:
 *   chains: [arbitrum]            # default: every chain under chains: with rpc_urls
 *   interval: 1m                  # how often newly settled batches are checked (default 1m)
 *   report_delay: 5m              # wait after a settlement before asking providers (their reports lag; default 5m)
 *   epoch: 1d                     # length of the epoch summaries: 1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d (default 1d)
 *   tolerance_bps: 100            # differences up to 1% of the billed tokens are not reported (default 100)
 *   min_refund: "0.01 AGPT"       # smallest oracle refund worth a dispute (default: any refund)
 *   approve_bond: false           # approve the router for a bond the payer's deposit does not cover (default false)
 *   log_chunk_blocks: 10000       # blocks per eth_getLogs (default 10000)
 *   concurrency: 4                # provider queries and chain reads in flight (default 4)
 *   ipfs:                         # fetch batch files missing from the archive by their on-chain CID
 *     url: http://127.0.0.1:8080  # an IPFS gateway (GET /ipfs/<cid>) ...
 *     api: gateway                # ... or `kubo` with the node's RPC URL (http://127.0.0.1:5001)
 *   providers:                    # on-chain provider name -> its usage report
 *     openai:
 *       adapter: http-json        # GET <url>/v1/usage?provider=&model=&payer=&start=&end= (the oracle's API)
 *       url: https://usage.example.com/openai
 *       api_key_env: OPENAI_USAGE_API_KEY   # variable holding the bearer key (never the key itself here)
 *       timeout: 10s
 *   payers:                       # payers the operator controls: their overcharged intervals are disputed automatically
 *     - address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"   # optional: checked against the key
 *       keystore: ./keys/payer-research.json                      # relative to this file
 *       password_env: PAYER_RESEARCH_PASSWORD                     # default AGENTGPT_KEYSTORE_PASSWORD
 *     - key_env: PAYER_DEV_KEY    # development only: a raw key in the environment
 *   keeper:                       # optional: the account that starts/retries verifications and settles expired
 *     keystore: ./keys/keeper.json  # disputes (anyone may; it pays gas only); default: the first payer's key
 * ```
 *
 * The provider usage compared is the payer's usage bucket [callsFrom, callsFrom + usageBucket) that each batch
 * commits on-chain, the same window the UsageOracle asks about: `usage_lookback` and `requester` (REQUESTER_ROLE)
 * no longer exist and are refused with the fix.
 */
import { getAddress } from "ethers";
import { z } from "zod";

import { chainName, durationMs, providerName, tokenAmount, type SectionContext } from "./fields.js";

export interface KeySource {
  readonly keystore?: string | undefined;
  readonly passwordEnv: string;
  readonly keyEnv?: string | undefined;
}

export interface ReconcilerPayer extends KeySource {
  readonly address?: string | undefined;
}

export interface UsageAdapterConfig {
  readonly adapter: "http-json";
  readonly url: string;
  readonly path: string;
  readonly apiKeyEnv?: string | undefined;
  readonly timeoutMs: number;
}

export interface IpfsConfig {
  readonly url: string;
  readonly api: "gateway" | "kubo";
}

export interface ReconcilerConfig {
  /** chain names; empty: every chain with rpc_urls */
  readonly chains: readonly string[];
  readonly intervalMs: number;
  readonly reportDelayMs: number;
  readonly epochMs: number;
  readonly toleranceBps: number;
  readonly minRefund: bigint;
  readonly approveBond: boolean;
  readonly logChunkBlocks: number;
  readonly concurrency: number;
  readonly ipfs?: IpfsConfig | undefined;
  /** by on-chain provider name (lowercase) */
  readonly providers: Readonly<Record<string, UsageAdapterConfig>>;
  readonly payers: readonly ReconcilerPayer[];
  /** signs keeper calls (requestVerification, settleExpiredDispute); default: the first payer's key */
  readonly keeper?: KeySource | undefined;
}

/** A key that no longer exists: any value is refused with `message` (the fix). */
const obsolete = (message: string) => z.undefined({ message }).optional();

const envName = () => z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name (e.g. OPENAI_USAGE_API_KEY)");
const httpUrl = () => z.string().regex(/^https?:\/\/\S+$/, "an http:// or https:// URL");

const keySourceFields = {
  keystore: z.string().min(1).optional(),
  password_env: envName().default("AGENTGPT_KEYSTORE_PASSWORD"),
  key_env: envName().optional(),
};
const oneKey = (s: { keystore?: string | undefined; key_env?: string | undefined }) => (s.keystore === undefined) !== (s.key_env === undefined);
const oneKeyMessage = { message: "give either keystore: (an encrypted JSON keystore) or key_env: (development only), not both or neither" };

const keySource = () =>
  z
    .strictObject(keySourceFields)
    .refine(oneKey, oneKeyMessage)
    .transform((s): KeySource => ({ keystore: s.keystore, passwordEnv: s.password_env, keyEnv: s.key_env }));

const payer = () =>
  z
    .strictObject({
      address: z
        .string()
        .transform((value, ctx) => {
          try {
            return getAddress(value);
          } catch {
            ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not an address (0x and 40 hex digits)`, input: value });
            return z.NEVER;
          }
        })
        .optional(),
      ...keySourceFields,
    })
    .refine(oneKey, oneKeyMessage)
    .transform((s): ReconcilerPayer => ({ address: s.address, keystore: s.keystore, passwordEnv: s.password_env, keyEnv: s.key_env }));

const adapter = () =>
  z
    .strictObject({
      adapter: z.literal("http-json", { message: 'the only adapter so far is "http-json"' }).default("http-json"),
      url: httpUrl(),
      path: z.string().regex(/^\/\S*$/, 'a path starting with "/" (e.g. /v1/usage)').default("/v1/usage"),
      api_key_env: envName().optional(),
      timeout: durationMs().default(10_000),
    })
    .transform((a): UsageAdapterConfig => ({ adapter: a.adapter, url: a.url, path: a.path, apiKeyEnv: a.api_key_env, timeoutMs: a.timeout }));

export const reconcilerSection = (ctx: SectionContext) =>
  z
    .strictObject({
      chains: z.array(chainName()).default([]),
      interval: durationMs()
        .default(60_000)
        .refine((ms) => ms >= 1000, "at least 1s"),
      report_delay: durationMs().default(300_000),
      epoch: durationMs()
        .default(86_400_000)
        .refine((ms) => ms >= 3_600_000 && ms % 3_600_000 === 0 && 86_400_000 % ms === 0, "1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d (epochs tile UTC days)"),
      tolerance_bps: z.int().min(0).max(10_000).default(100),
      min_refund: tokenAmount(ctx).optional(),
      usage_lookback: obsolete(
        "reconciler.usage_lookback is obsolete: usage is compared over the usage bucket each batch commits on-chain (the oracle's window); delete the line",
      ),
      approve_bond: z.boolean().default(false),
      log_chunk_blocks: z.int().min(1).max(1_000_000).default(10_000),
      concurrency: z.int().min(1).max(64).default(4),
      ipfs: z
        .strictObject({ url: httpUrl(), api: z.enum(["gateway", "kubo"]).default("gateway") })
        .optional(),
      providers: z.record(providerName(), adapter()).default({}),
      payers: z.array(payer()).default([]),
      requester: obsolete(
        "reconciler.requester is obsolete: anyone may ask the UsageOracle to verify a dispute (REQUESTER_ROLE is gone); rename it to keeper: (the account that starts verifications and settles expired disputes) or delete it",
      ),
      keeper: keySource().optional(),
    })
    .transform(
      (r): ReconcilerConfig => ({
        chains: r.chains,
        intervalMs: r.interval,
        reportDelayMs: r.report_delay,
        epochMs: r.epoch,
        toleranceBps: r.tolerance_bps,
        minRefund: r.min_refund ?? 1n,
        approveBond: r.approve_bond,
        logChunkBlocks: r.log_chunk_blocks,
        concurrency: r.concurrency,
        ipfs: r.ipfs,
        providers: r.providers,
        payers: r.payers,
        keeper: r.keeper,
      }),
    )
    .optional();
