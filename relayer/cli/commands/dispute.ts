/**
 * `agentgpt dispute ...`: a payer disputes one row of a settled batch and follows it. Logic lives in
 * relayer/disputes; this file parses options, connects and prints.
 *
 *   agentgpt dispute --batch 0x… --row 3 [--reason "…"] [--approve-bond] [--no-wait] [--timeout 10m]
 *   agentgpt dispute status --batch 0x… --row 3
 *   agentgpt dispute verify --batch 0x… --row 3     # ask the oracle (again) after a failed or lost answer
 *
 * Where things come from: the chain from --rpc/--network (else the config's chain, else localhost); the router and
 * oracle from the deployment file (or --router/--oracle, or chains.<name>.router); the batch file from --archive
 * (else the config's archive.dir), else by its on-chain CID from --ipfs (else reconciler.ipfs); the signer as for
 * governance (--keystore, --key-env, --node-account, $AGENTGPT_PRIVATE_KEY).
 */
import { resolve } from "node:path";

import type { Command } from "commander";
import { getAddress, isAddress } from "ethers";
import type { Redis } from "ioredis";

import { Archive } from "../../batcher/archive.js";
import {
  ChainError,
  KEYSTORE_PASSWORD_VARIABLE,
  PRIVATE_KEY_VARIABLE,
  loadDeployment,
  loadSigner,
  openChain,
  redactUrls,
  type ChainConnection,
  type LoadedSigner,
} from "../../chain/index.js";
import { ConfigError, formatTokenAmount, loadRelayerConfig, parseDurationMs, type ChainConfig, type RelayerConfig } from "../../config/index.js";
import {
  DisputeClient,
  DisputeError,
  IpfsClient,
  describeDispute,
  isoTime,
  openDisputeChain,
  type DisputeChain,
  type DisputeTarget,
} from "../../disputes/index.js";
import { createProducerRedis } from "../../queue/index.js";
import { archiveDir } from "../../settler/runtime.js";
import { SettlementStore } from "../../settler/settlement-store.js";
import { UsageOracle__factory } from "../../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { UserError } from "../errors.js";

export interface ChainOptions {
  config?: string;
  chain?: string;
  network?: string;
  rpc?: string;
  deployments?: string;
  router?: string;
  oracle?: string;
  archive?: string;
  ipfs?: string;
  ipfsApi?: string;
}

export interface SignerOptions {
  keystore?: string;
  keyEnv?: string;
  nodeAccount?: string;
}

export interface Session {
  readonly connection: ChainConnection;
  readonly chain: DisputeChain;
  readonly client: DisputeClient;
  readonly config: RelayerConfig | undefined;
  /** the relayer's chain name (archive folder), when known */
  readonly chainName: string | undefined;
  readonly archive: Archive | undefined;
  readonly ipfs: IpfsClient | undefined;
  close(): Promise<void>;
}

export function withChainOptions(command: Command): Command {
  return command
    .option("--config <file>", "relayer configuration (YAML): its archive, IPFS, chains and providers are used unless overridden")
    .option("--chain <name>", "the relayer's chain name (archive folder; with --config, which chain's rpc_urls and router)")
    .option("--network <name>", "localhost, arbitrumSepolia or polygonAmoy")
    .option("--rpc <url>", "JSON-RPC URL (default: the config's chain, else the network's variable, else localhost)")
    .option("--deployments <dir>", "deployments directory (default: deploy/deployments, or $AGENTGPT_DEPLOYMENTS_DIR)")
    .option("--router <address>", "AutoPayLLM address (default: chains.<name>.router, else the deployment file)")
    .option("--oracle <address>", "UsageOracle address (default: the deployment file's)")
    .option("--archive <dir>", "the receipts archive (the relayer's archive.dir)")
    .option("--ipfs <url>", "IPFS gateway (or Kubo RPC with --ipfs-api kubo) to fetch batch files missing from the archive")
    .option("--ipfs-api <api>", "gateway (GET /ipfs/<cid>) or kubo (POST /api/v0/cat)");
}

export function withSignerOptions(command: Command): Command {
  return command
    .option("--keystore <file>", `encrypted JSON keystore of the payer (password: $${KEYSTORE_PASSWORD_VARIABLE})`)
    .option("--key-env <name>", `environment variable holding the payer's private key (default: ${PRIVATE_KEY_VARIABLE})`)
    .option("--node-account <index>", "sign with account #index unlocked on a local node");
}

/** Runs a command body with one error mapping: known errors become UserErrors (exit 2), URLs redacted. */
export function run<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      // Their messages quote URLs already redacted (scheme, host and port only).
      if (error instanceof DisputeError || error instanceof ChainError || error instanceof ConfigError) {
        throw new UserError(error.message, 2, { cause: error });
      }
      if (error instanceof Error) {
        error.message = redactUrls(error.message);
        if (error.stack !== undefined) error.stack = redactUrls(error.stack);
      }
      throw error;
    }
  };
}

export function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.join("\n")}\n`);
}

export function parseTarget(options: { batch: string; row: string }): DisputeTarget {
  const batchId = options.batch.trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(batchId)) {
    throw new UserError(`--batch "${options.batch}": a batch id is 0x and 64 hex digits (see \`agentgpt reconcile\` or the archive's file names)`);
  }
  if (!/^\d{1,9}$/.test(options.row.trim())) throw new UserError(`--row "${options.row}": a row index is a whole number from 0 (the row's "index" in the batch file)`);
  return { batchId: batchId.toLowerCase(), index: Number(options.row.trim()) };
}

function parseAddress(option: string, text: string): string {
  if (!isAddress(text)) throw new UserError(`${option} "${text}": an address is 0x and 40 hex digits`);
  return getAddress(text);
}

function loadConfig(file: string): RelayerConfig {
  try {
    return loadRelayerConfig(file);
  } catch (error) {
    if (error instanceof ConfigError) throw new UserError(error.message, 2, { cause: error });
    throw error;
  }
}

function configChain(config: RelayerConfig | undefined, name: string | undefined): ChainConfig | undefined {
  if (config === undefined) return undefined;
  if (name !== undefined) {
    const chain = config.chains.find((c) => c.name === name);
    if (chain === undefined) throw new UserError(`--chain ${name}: not under chains: in ${config.files[0]} (${config.chains.map((c) => c.name).join(", ") || "none"})`);
    return chain;
  }
  return config.chains.find((c) => c.name === config.defaultChain);
}

/** Connects to the chain, the router and oracle, the archive and IPFS, as the options and config say. */
export async function openSession(options: ChainOptions): Promise<Session> {
  const config = options.config === undefined ? undefined : loadConfig(options.config);
  const chainConfig = configChain(config, options.chain);
  const rpc = options.rpc ?? (options.network === undefined ? chainConfig?.rpcUrls[0] : undefined);
  const connection = await openChain({ network: options.network, rpc });
  if (chainConfig?.chainId !== undefined && options.rpc === undefined && options.network === undefined && chainConfig.chainId !== connection.chainId) {
    throw new UserError(`chains.${chainConfig.name}: chain_id is ${chainConfig.chainId} but its RPC serves chain ${connection.chainId}`);
  }
  const router = options.router !== undefined ? parseAddress("--router", options.router) : chainConfig?.router;
  let oracle = options.oracle === undefined ? undefined : parseAddress("--oracle", options.oracle);
  let autoPayLLM = router;
  if (autoPayLLM === undefined || oracle === undefined) {
    try {
      const deployment = await loadDeployment(connection.chainId, { deploymentsDir: options.deployments, networkName: connection.network.name });
      autoPayLLM ??= deployment.addresses.autoPayLLM;
      if (oracle === undefined && deployment.addresses.usageOracle !== undefined) {
        const candidate = UsageOracle__factory.connect(deployment.addresses.usageOracle, connection.provider);
        if ((await connection.provider.getCode(deployment.addresses.usageOracle)) !== "0x" && getAddress(await candidate.settlement()) === getAddress(autoPayLLM)) {
          oracle = deployment.addresses.usageOracle;
        }
      }
    } catch (error) {
      if (!(error instanceof ChainError && error.code === "DEPLOYMENT_NOT_FOUND" && autoPayLLM !== undefined)) throw error;
    }
  }
  const chain = await openDisputeChain(connection.provider, { autoPayLLM: autoPayLLM!, usageOracle: oracle });

  const archivePath = options.archive ?? (config === undefined ? undefined : archiveDir(config));
  const archive = archivePath === undefined ? undefined : new Archive(resolve(archivePath));
  const ipfsUrl = options.ipfs ?? config?.reconciler?.ipfs?.url;
  if (options.ipfsApi !== undefined && options.ipfsApi !== "gateway" && options.ipfsApi !== "kubo") {
    throw new UserError(`--ipfs-api ${options.ipfsApi}: gateway or kubo`);
  }
  if (ipfsUrl !== undefined && !/^https?:\/\/\S+$/.test(ipfsUrl)) throw new UserError(`--ipfs "${ipfsUrl}": an http:// or https:// URL`);
  const ipfsApi = (options.ipfsApi as "gateway" | "kubo" | undefined) ?? (options.ipfs === undefined ? config?.reconciler?.ipfs?.api : undefined);
  const ipfs = ipfsUrl === undefined ? undefined : new IpfsClient({ url: ipfsUrl, api: ipfsApi });
  const chainName = options.chain ?? chainConfig?.name;

  let redis: Redis | undefined;
  let store: SettlementStore | undefined;
  if (config !== undefined && chainName !== undefined) {
    redis = createProducerRedis(config.redis.url, { commandTimeoutMs: 2000, connectionName: "agentgpt-dispute" });
    redis.on("error", () => undefined);
    try {
      await redis.connect();
      store = new SettlementStore(redis, config.redis.prefix, chainName);
    } catch {
      redis.disconnect();
      redis = undefined; // no ledger: the chain's logs answer
    }
  }
  const client = new DisputeClient(chain, {
    sources: { archive, archiveChain: chainName !== undefined && options.archive === undefined ? chainName : undefined, ipfs },
    store,
    pollMs: connection.network.local ? 250 : 3000,
    logChunkBlocks: config?.reconciler?.logChunkBlocks,
  });
  return {
    connection,
    chain,
    client,
    config,
    chainName,
    archive,
    ipfs,
    close: async () => {
      connection.provider.destroy();
      if (redis !== undefined) await redis.quit().catch(() => redis?.disconnect());
    },
  };
}

async function signerFor(session: Session, options: SignerOptions): Promise<LoadedSigner> {
  let account: number | undefined;
  if (options.nodeAccount !== undefined) {
    if (!/^\d+$/.test(options.nodeAccount)) throw new UserError(`--node-account "${options.nodeAccount}": expected an account index (0, 1, ...)`);
    account = Number(options.nodeAccount);
  }
  return loadSigner(session.connection.provider, session.connection.network, { account, keystore: options.keystore, keyVariable: options.keyEnv });
}

async function providerName(chain: DisputeChain, id: number): Promise<string> {
  try {
    return (await chain.router.providerInfo(id)).name;
  } catch {
    return `#${id}`;
  }
}

interface OpenOptions extends ChainOptions, SignerOptions {
  batch: string;
  row: string;
  reason?: string;
  approveBond?: boolean;
  wait: boolean;
  timeout: string;
}

async function openCommand(options: OpenOptions): Promise<void> {
  const target = parseTarget(options);
  const timeoutMs = parseTimeout(options.timeout);
  const session = await openSession(options);
  try {
    const { client, chain } = session;
    const unit = chain.token.unit;
    const fmt = (n: bigint) => formatTokenAmount(n, unit);
    const signer = await signerFor(session, options);
    print([`${session.connection.network.name} (chain ${chain.chainId}) via ${session.connection.rpcLabel}; payer ${signer.address} (${signer.source})`]);
    const prepared = await client.prepare(target, signer.address);
    const { batch, proven, bond } = prepared;
    const left = Number(prepared.closesAt) - prepared.now;
    print([
      `Batch ${batch.batchId}: settled ${isoTime(batch.settledAt)}${batch.block === null ? "" : ` in block ${batch.block}`}, ` +
        `${batch.acceptedCount} of ${batch.rowCount} rows charged; file ${prepared.batchFile.location} (CID ${batch.dataCid} verified, rows root matches)`,
      `Row ${target.index}: ${proven.row.providerName}/${proven.row.modelName}, ${proven.charge.tokens} tokens, ${fmt(proven.charge.amount)} ` +
        `(${proven.row.receipts} receipt${proven.row.receipts === 1 ? "" : "s"})`,
      `Window: open until ${isoTime(prepared.closesAt)}${left < 86_400 * 365 ? ` (${Math.floor(left / 60)} min left)` : ""}`,
      `Bond: ${fmt(bond.bond)} (deposit ${fmt(bond.deposit)}${bond.shortfall > 0n ? `; ${fmt(bond.shortfall)} pulled from the wallet by allowance` : ""}); ` +
        "returned on any refund, paid to the provider if the dispute is rejected",
      ...(options.reason === undefined ? [] : [`Reason: ${options.reason} (kept in this output only: the contract records no reason)`]),
    ]);
    if (left < 120) print([`Warning: the window closes in ${left} s; the transaction may land too late.`]);
    const opened = await client.open(prepared, signer.signer, { approveBond: options.approveBond === true, reason: options.reason });
    print([
      ...(opened.approveTx === undefined ? [] : [`Approved the router for the bond's shortfall in ${opened.approveTx}.`]),
      `Disputed in ${opened.txHash} (block ${opened.block}); bond ${fmt(opened.bond)} posted.`,
    ]);
    try {
      const requested = await client.requestVerification(target, proven, signer.signer);
      print([`Oracle verification requested in ${requested.txHash} (request ${requested.requestId}, attempt ${requested.attempt}).`]);
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      print([`Oracle not asked: ${error.message}`]);
    }
    await follow(session, target, options.wait, timeoutMs);
  } finally {
    await session.close();
  }
}

async function follow(session: Session, target: DisputeTarget, wait: boolean, timeoutMs: number): Promise<void> {
  const { client, chain } = session;
  const follow = `agentgpt dispute status --batch ${target.batchId} --row ${target.index}`;
  if (!wait) {
    print([`Follow it with: ${follow}`]);
    return;
  }
  print([`Waiting up to ${Math.round(timeoutMs / 1000)} s for the resolution...`]);
  const status = await client.waitForResolution(target, { timeoutMs });
  print(describeDispute(status, chain.token.unit, await providerName(chain, status.provider)));
  if (status.state !== "resolved") print([`Not resolved yet. Follow it with: ${follow}`]);
}

function parseTimeout(text: string): number {
  try {
    return parseDurationMs(text);
  } catch {
    throw new UserError(`--timeout "${text}": a duration such as 10m, 90s or 1h`);
  }
}

export function register(program: Command): void {
  const dispute = program
    .command("dispute")
    .description("dispute a row of a settled batch as its payer (with a bond), have the UsageOracle verify it, and follow it");

  withSignerOptions(withChainOptions(dispute.command("open", { isDefault: true })))
    .description("dispute row --row of batch --batch (the default: `agentgpt dispute --batch … --row …`)")
    .requiredOption("--batch <id>", "batch id (0x + 64 hex digits)")
    .requiredOption("--row <n>", "row index in the batch")
    .option("--reason <text>", "why (printed with the dispute; the contract stores no reason)")
    .option("--approve-bond", "approve the router for the part of the bond the deposit does not cover")
    .option("--no-wait", "do not wait for the resolution")
    .option("--timeout <duration>", "how long to wait for the resolution", "10m")
    .action(run((options: OpenOptions) => openCommand(options)));

  withChainOptions(dispute.command("status"))
    .description("where a dispute stands: oracle requests and answers, deadlines, outcome")
    .requiredOption("--batch <id>", "batch id")
    .requiredOption("--row <n>", "row index")
    .action(
      run(async (options: ChainOptions & { batch: string; row: string }) => {
        const target = parseTarget(options);
        const session = await openSession(options);
        try {
          const status = await session.client.status(target);
          print(describeDispute(status, session.chain.token.unit, await providerName(session.chain, status.provider)));
        } finally {
          await session.close();
        }
      }),
    );

  withSignerOptions(withChainOptions(dispute.command("verify")))
    .description("ask the UsageOracle to verify an open dispute (again, after a failed or lost answer)")
    .requiredOption("--batch <id>", "batch id")
    .requiredOption("--row <n>", "row index")
    .option("--no-wait", "do not wait for the resolution")
    .option("--timeout <duration>", "how long to wait for the resolution", "10m")
    .action(
      run(async (options: ChainOptions & SignerOptions & { batch: string; row: string; wait: boolean; timeout: string }) => {
        const target = parseTarget(options);
        const timeoutMs = parseTimeout(options.timeout);
        const session = await openSession(options);
        try {
          const signer = await signerFor(session, options);
          const proven = await session.client.prove(target);
          const requested = await session.client.requestVerification(target, proven, signer.signer);
          print([`Oracle verification requested in ${requested.txHash} (request ${requested.requestId}, attempt ${requested.attempt}).`]);
          await follow(session, target, options.wait, timeoutMs);
        } finally {
          await session.close();
        }
      }),
    );
}
