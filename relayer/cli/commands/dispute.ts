/**
 * `agentgpt dispute ...`: a payer disputes its billed usage of one provider and model over one usage bucket (every
 * settled row of that interval, whatever batch), and anyone follows, verifies or closes a dispute. Logic lives in
 * relayer/disputes; this file parses options, connects and prints.
 *
 *   agentgpt dispute --batch 0x… --row 3 [--approve-bond] [--no-wait] [--timeout 10m]   # the row's interval
 *   agentgpt dispute --payer 0x… --provider openai --model gpt-4o --calls-from 2026-12-03T14:00Z
 *   agentgpt dispute status --id 0x…  (or --batch 0x… --row 3: the dispute that held that row)
 *   agentgpt dispute verify --id 0x…            # start or retry the oracle's verification (anyone may)
 *   agentgpt dispute wait --id 0x… --timeout 10m  # exit 3 when still open at the timeout
 *   agentgpt dispute settle-expired --id 0x…    # after the governance deadline (anyone may): the charge stands
 *   agentgpt dispute resolve-call --id 0x… --reported 1200   # the call governance sends to resolve
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
  isDisputeId,
  isoTime,
  openDisputeChain,
  type DisputeChain,
  type DisputeTarget,
  type IntervalKey,
} from "../../disputes/index.js";
import { asRedis, createProducerRedis } from "../../queue/index.js";
import { disputeRefund } from "../../reconciler/refund.js";
import { archiveDir } from "../../settler/runtime.js";
import { SettlementStore } from "../../settler/settlement-store.js";
import { UsageOracle__factory } from "../../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { UserError } from "../errors.js";
import { terminalSafe } from "../terminal-text.js";

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

/**
 * Prints lines that may quote the chain (provider and model names registered on the router, revert texts) or a
 * usage API: each line goes through terminalSafe, so a name cannot move the cursor, recolour or retitle the terminal.
 */
export function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.flatMap((line) => line.split("\n")).map(terminalSafe).join("\n")}\n`);
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
    redis = asRedis(createProducerRedis(config.redis, { commandTimeoutMs: 2000, connectionName: "agentgpt-dispute" }));
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

/** The names of a dispute's provider and model (ids when the router does not answer). */
async function namesOf(chain: DisputeChain, provider: number, model: number): Promise<{ provider: string; model: string }> {
  const [p, m] = await Promise.all([
    chain.router.providerInfo(provider).then((i) => i.name, () => `#${provider}`),
    chain.router.modelInfo(model).then((i) => i.name, () => `#${model}`),
  ]);
  return { provider: p, model: m };
}

interface IntervalOptions {
  batch?: string;
  row?: string;
  payer?: string;
  provider?: string;
  model?: string;
  callsFrom?: string;
}

/** The interval named by --batch/--row (its row's interval) or by --payer/--provider/--model/--calls-from. */
async function intervalOf(session: Session, options: IntervalOptions): Promise<IntervalKey> {
  const byRow = options.batch !== undefined || options.row !== undefined;
  const byKey = [options.payer, options.provider, options.model, options.callsFrom].some((v) => v !== undefined);
  if (byRow === byKey) {
    throw new UserError("name the interval either by a settled row (--batch and --row) or by --payer, --provider, --model and --calls-from");
  }
  if (byRow) {
    if (options.batch === undefined || options.row === undefined) throw new UserError("--batch and --row go together");
    return session.client.intervalOfRow(parseTarget({ batch: options.batch, row: options.row }));
  }
  if (options.payer === undefined || options.provider === undefined || options.model === undefined || options.callsFrom === undefined) {
    throw new UserError("--payer, --provider, --model and --calls-from go together");
  }
  const { router } = session.chain;
  const provider = await idOf("--provider", options.provider, (name) => router.providerId(name), await router.providerCount());
  const model = await idOf("--model", options.model, (name) => router.modelId(name), await router.modelCount());
  return { payer: parseAddress("--payer", options.payer), provider, model, callsFrom: parseInstant(options.callsFrom) };
}

async function idOf(option: string, text: string, byName: (name: string) => Promise<bigint>, count: bigint): Promise<number> {
  const value = text.trim();
  const id = /^\d{1,10}$/.test(value) ? BigInt(value) : await byName(value);
  if (id === 0n || id > count) throw new UserError(`${option} "${text}": not registered on this router (a name as registered, or an id from 1 to ${count})`);
  return Number(id);
}

/** Unix seconds, or an ISO time with a zone. */
export function parseInstant(text: string): number {
  const value = text.trim();
  if (/^\d{1,12}$/.test(value)) return Number(value);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    const ms = Date.parse(value);
    if (!Number.isNaN(ms)) return Math.floor(ms / 1000);
  }
  throw new UserError(`--calls-from "${text}": unix seconds or an ISO time with a zone (e.g. 2026-12-03T14:00Z), the start of a usage bucket`);
}

function parseId(text: string | undefined): string {
  if (text === undefined || !isDisputeId(text.trim())) throw new UserError(`--id "${text ?? ""}": a dispute id is 0x and 64 hex digits (printed when it opened)`);
  return text.trim().toLowerCase();
}

/** --id, or the dispute that held row --row of batch --batch. */
async function disputeIdFrom(session: Session, options: { id?: string; batch?: string; row?: string }): Promise<string> {
  if (options.id !== undefined) return parseId(options.id);
  if (options.batch === undefined || options.row === undefined) throw new UserError("name the dispute by --id, or by a row it held (--batch and --row)");
  const target = parseTarget({ batch: options.batch, row: options.row });
  const id = await session.chain.router.rowDispute(target.batchId, target.index);
  if (/^0x0+$/.test(id)) throw new UserError(`row ${target.index} of batch ${target.batchId} was never held by a dispute`);
  return id.toLowerCase();
}

interface OpenOptions extends ChainOptions, SignerOptions, IntervalOptions {
  reason?: string;
  approveBond?: boolean;
  dryRun?: boolean;
  wait: boolean;
  timeout: string;
}

/** Bad input fails before anything connects. */
function checkIntervalOptions(options: IntervalOptions): void {
  if (options.batch !== undefined && options.row !== undefined) parseTarget({ batch: options.batch, row: options.row });
  if (options.payer !== undefined) parseAddress("--payer", options.payer);
  if (options.callsFrom !== undefined) parseInstant(options.callsFrom);
}

async function openCommand(options: OpenOptions): Promise<void> {
  const timeoutMs = parseTimeout(options.timeout);
  checkIntervalOptions(options);
  const session = await openSession(options);
  try {
    const { client, chain } = session;
    const unit = chain.token.unit;
    const fmt = (n: bigint) => formatTokenAmount(n, unit);
    const key = await intervalOf(session, options);
    const signer = options.dryRun === true ? undefined : await signerFor(session, options);
    print([`${session.connection.network.name} (chain ${chain.chainId}) via ${session.connection.rpcLabel}${signer === undefined ? "" : `; payer ${signer.address} (${signer.source})`}`]);
    const prepared = await client.prepare(key, signer?.address);
    const { interval, bond } = prepared;
    const names = await namesOf(chain, key.provider, key.model);
    print([
      `Interval: ${key.payer} on ${names.provider}/${names.model}, calls started in [${isoTime(key.callsFrom)}, ${isoTime(interval.callsTo)})`,
      `Settled rows (every one is named; leaving one out could only lower the refund):`,
      ...interval.rows.map(
        (r) =>
          `  batch ${r.batchId} row ${r.index}: ${r.charge.tokens} tokens, ${fmt(r.charge.amount)}; ` +
          (r.holdable ? `held (window open until ${isoTime(r.closesAt!)})` : r.heldBy !== null ? `named only (held by dispute ${r.heldBy})` : r.batchState === "released" ? "named only (released)" : "named only (window closed)"),
      ),
      `Billed ${interval.billedTokens} tokens; held ${interval.heldTokens} tokens, ${fmt(interval.heldAmount)} (the most this dispute can refund)` +
        (interval.refundedTokens > 0n ? `; ${interval.refundedTokens} tokens of this interval were refunded before` : ""),
      `Bond: ${fmt(bond.bond)} (deposit ${fmt(bond.deposit)}${bond.shortfall > 0n ? `; ${fmt(bond.shortfall)} pulled from the wallet by allowance` : ""}); ` +
        "returned when tokens are found overbilled or nobody judges in time, paid to the provider otherwise",
      ...(options.reason === undefined ? [] : [`Reason: ${options.reason} (kept in this output only: the contract records no reason)`]),
    ]);
    if (signer === undefined) {
      print([`Dry run: nothing sent. The dispute would get id ${interval.nextDisputeId}.`]);
      return;
    }
    const opened = await client.open(prepared, signer.signer, { approveBond: options.approveBond === true, reason: options.reason });
    print([
      ...(opened.approveTx === undefined ? [] : [`Approved the router for the bond's shortfall in ${opened.approveTx}.`]),
      `Dispute ${opened.disputeId} opened in ${opened.txHash} (block ${opened.block}): ${interval.rows.length} rows named, ${opened.heldRows} held; bond ${fmt(opened.bond)} posted.`,
    ]);
    if (opened.requestId !== null) {
      print([`The router's verifier asked the oracle (request ${opened.requestId}).`]);
    } else {
      try {
        const requested = await client.requestVerification(opened.disputeId, signer.signer);
        print([`Oracle verification requested in ${requested.txHash} (request ${requested.requestId}, attempt ${requested.attempt}).`]);
      } catch (error) {
        if (!(error instanceof DisputeError)) throw error;
        print([`Oracle not asked: ${error.message}`]);
      }
    }
    await follow(session, opened.disputeId, options.wait, timeoutMs);
  } finally {
    await session.close();
  }
}

/**
 * Waits (when asked) and prints. Exit codes, the same for open, verify and wait: 0 closed (resolved or expired), 3
 * still open at --timeout, 2 no such dispute (and every refusal).
 */
async function follow(session: Session, disputeId: string, wait: boolean, timeoutMs: number): Promise<void> {
  const { client, chain } = session;
  const command = `agentgpt dispute status --id ${disputeId}`;
  if (!wait) {
    print([`Follow it with: ${command}`]);
    return;
  }
  print([`Waiting up to ${Math.round(timeoutMs / 1000)} s for the dispute to close...`]);
  const status = await client.waitForResolution(disputeId, { timeoutMs });
  print(describeDispute(status, chain.token.unit, await namesOf(chain, status.provider, status.model)));
  if (status.state === "open") throw new UserError(`dispute ${disputeId} is still open after ${Math.round(timeoutMs / 1000)} s; follow it with: ${command}`, 3);
  // waited the whole timeout for a dispute that is not there: never a success
  if (status.state === "none") throw new UserError(`dispute ${disputeId} does not exist on this router (chain ${chain.chainId}): check --id and --chain`, 2);
}

function parseTimeout(text: string): number {
  try {
    return parseDurationMs(text);
  } catch {
    throw new UserError(`--timeout "${text}": a duration such as 10m, 90s or 1h`);
  }
}

function withIntervalOptions(command: Command): Command {
  return command
    .option("--batch <id>", "a settled batch (0x + 64 hex digits): with --row, the interval of that row")
    .option("--row <n>", "row index in --batch")
    .option("--payer <address>", "the payer (with --provider, --model, --calls-from)")
    .option("--provider <name|id>", "provider as registered on the router")
    .option("--model <name|id>", "model as registered on the router")
    .option("--calls-from <time>", "start of the usage bucket: unix seconds or an ISO time with a zone");
}

function withWaitOptions(command: Command, wait: boolean): Command {
  const out = wait ? command.option("--no-wait", "do not wait for the dispute to close") : command;
  return out.option("--timeout <duration>", "how long to wait for the dispute to close (exit 3 when still open)", "10m");
}

type IdOptions = ChainOptions & { id?: string; batch?: string; row?: string };

export function register(program: Command): void {
  const dispute = program
    .command("dispute")
    .description("dispute a payer's billed usage of one provider and model over one usage bucket (every settled row of it), and follow, verify or close disputes");

  withWaitOptions(withIntervalOptions(withSignerOptions(withChainOptions(dispute.command("open", { isDefault: true })))), true)
    .description("open a dispute as the payer: the interval of --batch/--row, or --payer/--provider/--model/--calls-from (the default command)")
    .option("--reason <text>", "why (printed with the dispute; the contract stores no reason)")
    .option("--approve-bond", "approve the router for the part of the bond the deposit does not cover")
    .option("--dry-run", "list the interval's rows, what would be held and the bond; send nothing (no key needed)")
    .action(run((options: OpenOptions) => openCommand(options)));

  withChainOptions(dispute.command("status"))
    .description("where a dispute stands: billed, held, oracle requests and answers, deadlines, outcome")
    .option("--id <disputeId>", "dispute id")
    .option("--batch <id>", "or a batch with --row: the dispute that held that row")
    .option("--row <n>", "row index")
    .action(
      run(async (options: IdOptions) => {
        if (options.id !== undefined) parseId(options.id);
        const session = await openSession(options);
        try {
          const status = await session.client.status(await disputeIdFrom(session, options));
          print(describeDispute(status, session.chain.token.unit, await namesOf(session.chain, status.provider, status.model)));
        } finally {
          await session.close();
        }
      }),
    );

  withWaitOptions(withSignerOptions(withChainOptions(dispute.command("verify"))), true)
    .description("start or retry the UsageOracle's verification of an open dispute (anyone may)")
    .requiredOption("--id <disputeId>", "dispute id")
    .action(
      run(async (options: IdOptions & SignerOptions & { wait: boolean; timeout: string }) => {
        const timeoutMs = parseTimeout(options.timeout);
        const id = parseId(options.id);
        const session = await openSession(options);
        try {
          const signer = await signerFor(session, options);
          const requested = await session.client.requestVerification(id, signer.signer);
          print([`Oracle verification requested in ${requested.txHash} (request ${requested.requestId}, attempt ${requested.attempt}).`]);
          await follow(session, id, options.wait, timeoutMs);
        } finally {
          await session.close();
        }
      }),
    );

  withWaitOptions(withChainOptions(dispute.command("wait")), false)
    .description("wait until a dispute closes; exit 3 when it is still open at --timeout")
    .requiredOption("--id <disputeId>", "dispute id")
    .action(
      run(async (options: IdOptions & { timeout: string }) => {
        const timeoutMs = parseTimeout(options.timeout);
        const id = parseId(options.id);
        const session = await openSession(options);
        try {
          await follow(session, id, true, timeoutMs);
        } finally {
          await session.close();
        }
      }),
    );

  withSignerOptions(withChainOptions(dispute.command("settle-expired")))
    .description("close a dispute nobody judged by its governance deadline (anyone may): the charge stands, the bond goes back to the payer")
    .requiredOption("--id <disputeId>", "dispute id")
    .action(
      run(async (options: IdOptions & SignerOptions) => {
        const id = parseId(options.id);
        const session = await openSession(options);
        try {
          const signer = await signerFor(session, options);
          const settled = await session.client.settleExpired(id, signer.signer);
          print([`Dispute ${id} settled as expired in ${settled.txHash} (block ${settled.block}).`]);
          const status = await session.client.status(id);
          print(describeDispute(status, session.chain.token.unit, await namesOf(session.chain, status.provider, status.model)));
        } finally {
          await session.close();
        }
      }),
    );

  withChainOptions(dispute.command("resolve-call"))
    .description("print the call governance sends (through its proposal) to resolve a dispute, and what it pays out")
    .requiredOption("--id <disputeId>", "dispute id")
    .option("--reported <tokens>", "the provider's reported tokens for the interval: overbilled computed as the oracle does")
    .option("--overbilled <tokens>", "or the overbilled tokens directly (at most the held tokens)")
    .action(
      run(async (options: IdOptions & { reported?: string; overbilled?: string }) => {
        const id = parseId(options.id);
        if ((options.reported === undefined) === (options.overbilled === undefined)) throw new UserError("give --reported <tokens> or --overbilled <tokens>");
        const tokens = (text: string, option: string) => {
          if (!/^\d{1,30}$/.test(text.trim())) throw new UserError(`${option} "${text}": a whole number of tokens`);
          return BigInt(text.trim());
        };
        const session = await openSession(options);
        try {
          const { client, chain } = session;
          const status = await client.status(id);
          if (status.state !== "open") throw new UserError(`dispute ${id} is ${status.state}: there is nothing to resolve`);
          let overbilled: bigint;
          if (options.reported !== undefined) {
            const oracle = chain.oracle;
            if (oracle === undefined) throw new UserError("--reported needs the UsageOracle (its tolerance): give --oracle, or use --overbilled");
            overbilled = await oracle.overbilledFor(id, tokens(options.reported, "--reported"));
          } else {
            overbilled = tokens(options.overbilled!, "--overbilled");
            if (overbilled > status.heldTokens) throw new UserError(`--overbilled ${overbilled}: the dispute holds ${status.heldTokens} tokens, the most it can find overbilled`);
          }
          const call = client.resolveCall(id, overbilled);
          const refund = disputeRefund(status.heldAmount, status.heldTokens, overbilled);
          const fmt = (n: bigint) => formatTokenAmount(n, chain.token.unit);
          print([
            `Governance (DEFAULT_ADMIN_ROLE: the timelock, through a proposal) may resolve until ${isoTime(status.governanceDeadline)}` +
              (status.now < status.arbiterDeadline ? ` (the oracle may until ${isoTime(status.arbiterDeadline)})` : ""),
            `  target     ${call.to} (AutoPayLLM)`,
            `  function   ${call.signature} with (${id}, ${overbilled})`,
            `  calldata   ${call.data}`,
            `  pays       refund ${fmt(refund)} to the payer, ${fmt(status.heldAmount - refund)} to the provider; bond ${overbilled > 0n ? "back to the payer" : "to the provider"}`,
          ]);
        } finally {
          await session.close();
        }
      }),
    );
}
