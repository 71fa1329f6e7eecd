/**
 * A dispute over one interval, for any party: the payer opens it naming EVERY settled row of (payer, provider,
 * model, usage bucket) with its proof (`AutoPayLLM.dispute(rows)`, rows sorted by (uint256(batchId), index));
 * anyone starts or retries the oracle's verification (`UsageOracle.requestVerification(disputeId)`); anyone closes a
 * dispute nobody judged by its governance deadline (`settleExpiredDispute`); governance gets the calls to resolve.
 * Every check happens before anything is sent; each send is simulated first so a revert is explained instead of
 * paid for.
 */
import { MaxUint256, getAddress, isError, type JsonRpcApiProvider, type Log, type Signer, type TransactionReceipt } from "ethers";
import type { Logger } from "pino";

import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import type { SettlementStore } from "../settler/settlement-store.js";
import { ARBITER_ROLE } from "../chain/roles.js";
import type { BatchFileSources } from "./batch-source.js";
import { BlockClock } from "./block-clock.js";
import type { DisputeChain } from "./dispute-chain.js";
import { DisputeError } from "./errors.js";
import { disputeIdOf, isDisputeId, type IntervalKey } from "./interval.js";
import { batchRows, intervalRowsOf, scanSettledBatches, type IntervalRow } from "./interval-rows.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "./logs.js";
import { explainRevert, failureReasonName } from "./reverts.js";
import { isBatchId, readSettledBatch, type SettledBatch } from "./settled-batch.js";

/** The most rows one dispute may name (AutoPayLLM.MAX_DISPUTE_ROWS). */
export const MAX_DISPUTE_ROWS = 1024;

export interface DisputeTarget {
  readonly batchId: string;
  readonly index: number;
}

export interface DisputeClientOptions {
  readonly sources: BatchFileSources;
  /** the settler's ledger of this chain, when Redis is at hand (saves the log query for the rejected rows) */
  readonly store?: SettlementStore | undefined;
  readonly logger?: Logger | undefined;
  /** ms between polls while waiting for a resolution (default 2,000) */
  readonly pollMs?: number | undefined;
  readonly logChunkBlocks?: number | undefined;
}

/** How the bond would be paid: from the deposit first, the shortfall pulled from the wallet by allowance. */
export interface BondCover {
  readonly bond: bigint;
  readonly deposit: bigint;
  readonly allowance: bigint;
  readonly wallet: bigint;
  /** what the router must pull from the wallet */
  readonly shortfall: bigint;
  /** the allowance covers the shortfall and the wallet holds it */
  readonly covered: boolean;
}

/** Every settled row of an interval, as a dispute opened now would name them. */
export interface IntervalRows {
  readonly key: IntervalKey;
  /** callsFrom + the router's usage bucket */
  readonly callsTo: number;
  readonly rows: readonly IntervalRow[];
  readonly billedTokens: bigint;
  /** of the rows a dispute opened now would hold */
  readonly heldTokens: bigint;
  readonly heldAmount: bigint;
  /** the interval's dispute state on-chain */
  readonly openDispute: string | null;
  readonly refundedTokens: bigint;
  readonly disputes: number;
  /** the id the next dispute of this interval gets */
  readonly nextDisputeId: string;
  /** the chain's latest block time */
  readonly now: number;
}

export interface PreparedDispute {
  readonly interval: IntervalRows;
  readonly payer: string;
  readonly bond: BondCover;
}

export interface OpenedDispute {
  readonly disputeId: string;
  readonly txHash: string;
  readonly block: number;
  readonly bond: bigint;
  readonly heldRows: number;
  /** the request the router's verifier sent when the dispute opened (null: none was sent) */
  readonly requestId: string | null;
  /** the approval sent first, when the bond needed one */
  readonly approveTx?: string | undefined;
}

export interface RequestedVerification {
  readonly txHash: string;
  readonly requestId: string;
  readonly attempt: number;
}

export type DisputeState = "none" | "open" | "resolved" | "expired";

export type OracleEvent =
  | { readonly kind: "requested"; readonly requestId: string; readonly attempt: number; readonly requester: string; readonly block: number; readonly txHash: string }
  | {
      readonly kind: "verified";
      readonly requestId: string;
      readonly billedTokens: bigint;
      readonly reportedTokens: bigint;
      readonly overbilledTokens: bigint;
      readonly block: number;
      readonly txHash: string;
    }
  | { readonly kind: "failed"; readonly requestId: string; readonly reason: string; readonly message: string; readonly block: number; readonly txHash: string };

export interface VerificationState {
  readonly attempts: number;
  readonly pending: string | null;
  readonly sentAt: number;
  /** the next request (a retry) is allowed from then, whether the last one was answered or not */
  readonly retryAt: number;
  readonly maxAttempts: number;
}

export interface DisputeStatus {
  readonly disputeId: string;
  readonly state: DisputeState;
  readonly payer: string;
  readonly provider: number;
  readonly model: number;
  readonly callsFrom: number;
  readonly callsTo: number;
  readonly openedAt: number;
  /** until then the oracle may resolve */
  readonly arbiterDeadline: number;
  /** until then governance may resolve; from then anyone may `settleExpiredDispute` (the charge stands) */
  readonly governanceDeadline: number;
  readonly rows: number;
  readonly billedTokens: bigint;
  readonly heldTokens: bigint;
  readonly heldAmount: bigint;
  readonly bond: bigint;
  readonly priorRefundedTokens: bigint;
  readonly overbilledTokens: bigint;
  readonly refund: bigint;
  readonly now: number;
  /** undefined without an oracle serving the router */
  readonly verification?: VerificationState | undefined;
  readonly history: readonly OracleEvent[];
  readonly resolution?:
    | { readonly refund: bigint; readonly toProvider: bigint; readonly bondReturned: boolean; readonly resolver: string; readonly txHash: string; readonly block: number }
    | undefined;
}

/** What a keeper should do for an open dispute now (see `nextAction`). */
export type KeeperAction = "request" | "wait-oracle" | "settle-expired" | "wait-governance" | "none";

const STATES: Record<number, DisputeState> = { 0: "none", 1: "open", 2: "resolved", 3: "expired" };

export class DisputeClient {
  readonly clock: BlockClock;
  private readonly pollMs: number;
  private readonly chunk: number;

  constructor(
    readonly chain: DisputeChain,
    private readonly options: DisputeClientOptions,
  ) {
    this.clock = new BlockClock(chain.provider);
    this.pollMs = options.pollMs ?? 2000;
    this.chunk = options.logChunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS;
  }

  /** The batch as settled, with the rejected rows (the settler's ledger when given, else the chain's logs). */
  async settledBatch(batchId: string): Promise<SettledBatch> {
    checkTarget({ batchId, index: 0 });
    // The settler's ledger is a shortcut only: when Redis is unreachable the chain's logs answer.
    const record = await this.options.store?.get(batchId.toLowerCase()).catch(() => null);
    return readSettledBatch(this.chain, batchId.toLowerCase(), this.clock, record?.outcome, record?.txHash, record?.block);
  }

  /** The interval of a settled row: its payer, provider, model and its batch's committed bucket. */
  async intervalOfRow(target: DisputeTarget): Promise<IntervalKey> {
    checkTarget(target);
    const batch = await this.settledBatch(target.batchId);
    const rows = await batchRows(this.chain, this.options.sources, batch);
    if (rows.charges === null) throw new DisputeError("BATCH_FILE_MISSING", rows.problem ?? `the rows of batch ${batch.batchId} are unknown`);
    const charge = rows.charges[target.index];
    if (charge === undefined) throw new DisputeError("NO_ROW", `--row ${target.index}: batch ${batch.batchId} has rows 0 to ${rows.charges.length - 1}`);
    const reason = batch.rejected.get(target.index);
    if (reason !== undefined) {
      throw new DisputeError("ROW_REJECTED", `--row ${target.index}: the contract rejected this row (${reason}) and charged nothing for it: there is nothing to dispute`);
    }
    return { payer: getAddress(charge.user), provider: charge.provider, model: charge.model, callsFrom: batch.callsFrom };
  }

  /**
   * Every settled row of `key` (whatever batch, released ones included), proven, sorted as `dispute` wants, with
   * what a dispute opened now would hold and the interval's state on-chain.
   *
   * @throws DisputeError when a batch of that bucket has rows this client cannot read (no calldata, no file).
   */
  async intervalRows(key: IntervalKey): Promise<IntervalRows> {
    const [bucket, info, now] = await Promise.all([this.chain.router.usageBucket(), this.chain.router.intervalInfo(key.payer, key.provider, key.model, key.callsFrom), this.now()]);
    if (key.callsFrom % Number(bucket) !== 0) {
      throw new DisputeError(
        "INVALID_INPUT",
        `--calls-from ${key.callsFrom}: not the start of a usage bucket (the router's buckets are ${bucket} s; try ${key.callsFrom - (key.callsFrom % Number(bucket))})`,
      );
    }
    const batches = await scanSettledBatches(this.chain, this.clock, key.callsFrom, new Set([key.callsFrom]), { logChunkBlocks: this.chunk });
    const withRows = [];
    for (const batch of batches) withRows.push(await batchRows(this.chain, this.options.sources, batch));
    const rows = await intervalRowsOf(this.chain, withRows, key, now);
    const held = rows.filter((r) => r.holdable);
    const openDispute = /^0x0+$/.test(info.openDispute) ? null : info.openDispute.toLowerCase();
    return {
      key,
      callsTo: key.callsFrom + Number(bucket),
      rows,
      billedTokens: sum(rows.map((r) => r.charge.tokens)),
      heldTokens: sum(held.map((r) => r.charge.tokens)),
      heldAmount: sum(held.map((r) => r.charge.amount)),
      openDispute,
      refundedTokens: info.refundedTokens,
      disputes: Number(info.disputes),
      nextDisputeId: disputeIdOf(key, info.disputes),
      now,
    };
  }

  /**
   * Everything a dispute of `key` needs, checked: no dispute of the interval is open, at least one row can be held,
   * the rows fit one dispute, the signer is the payer (when given), and how the bond is covered.
   *
   * @throws DisputeError naming what is wrong and the fix.
   */
  async prepare(key: IntervalKey, signerAddress?: string): Promise<PreparedDispute> {
    const payer = getAddress(key.payer);
    if (signerAddress !== undefined && getAddress(signerAddress) !== payer) {
      throw new DisputeError("NOT_PAYER", `only the payer ${payer} may dispute its usage; the signer is ${getAddress(signerAddress)}: sign with the payer's key`);
    }
    const interval = await this.intervalRows({ ...key, payer });
    if (interval.openDispute !== null) {
      throw new DisputeError(
        "ALREADY_DISPUTED",
        `this interval already has an open dispute ${interval.openDispute}: follow it with \`agentgpt dispute status --id ${interval.openDispute}\``,
      );
    }
    if (interval.rows.length === 0) {
      throw new DisputeError("NO_ROW", `nothing was settled for ${payer} on provider #${key.provider}, model #${key.model} in the bucket from ${isoSeconds(key.callsFrom)}`);
    }
    if (interval.rows.length > MAX_DISPUTE_ROWS) {
      throw new DisputeError("INVALID_INPUT", `the interval has ${interval.rows.length} settled rows; one dispute names at most ${MAX_DISPUTE_ROWS}`);
    }
    if (interval.heldAmount === 0n) {
      const reasons = interval.rows.map((r) =>
        r.heldBy !== null ? `row ${r.index} of ${r.batchId} was held by dispute ${r.heldBy}` : r.batchState === "released" ? `batch ${r.batchId} was released` : `the window of batch ${r.batchId} closed`,
      );
      throw new DisputeError("WINDOW_CLOSED", `no row of this interval can be held any more (${[...new Set(reasons)].join("; ")}): it can no longer be disputed`);
    }
    const bond = await this.bondCover(payer, interval.heldAmount);
    return { interval, payer, bond };
  }

  /** The bond of a dispute holding `heldAmount` and what the payer has to cover it. */
  async bondCover(payer: string, heldAmount: bigint): Promise<BondCover> {
    const [bond, deposit, allowance, wallet] = await Promise.all([
      this.chain.router.disputeBondFor(heldAmount),
      this.chain.router.balanceOf(payer),
      this.chain.token.contract.getFunction("allowance")(payer, this.chain.routerAddress) as Promise<bigint>,
      this.chain.token.contract.getFunction("balanceOf")(payer) as Promise<bigint>,
    ]);
    const shortfall = bond > deposit ? bond - deposit : 0n;
    return { bond, deposit, allowance, wallet, shortfall, covered: shortfall === 0n || (allowance >= shortfall && wallet >= shortfall) };
  }

  /**
   * Sends the dispute as the payer. With `approveBond`, first approves the router for the bond's shortfall when the
   * allowance does not cover it (never more than the shortfall).
   */
  async open(prepared: PreparedDispute, signer: Signer, options: { approveBond?: boolean; reason?: string } = {}): Promise<OpenedDispute> {
    const from = getAddress(await signer.getAddress());
    if (from !== prepared.payer) {
      throw new DisputeError("NOT_PAYER", `only the payer ${prepared.payer} may dispute its usage; the signer is ${from}: sign with the payer's key`);
    }
    const unit = this.chain.token.unit;
    const cover = await this.bondCover(from, prepared.interval.heldAmount);
    let approveTx: string | undefined;
    if (!cover.covered) {
      if (cover.wallet < cover.shortfall || options.approveBond !== true) throw new DisputeError("BOND_NOT_COVERED", bondMessage(cover, unit));
      const token = this.chain.token.contract.connect(signer);
      const nonce = await this.nonceOf(from);
      approveTx = (await this.send(() => token.getFunction("approve")(this.chain.routerAddress, cover.shortfall, { nonce }))).hash;
    }
    const refs = prepared.interval.rows.map((r) => ({ batchId: r.batchId, index: r.index, charge: r.charge, proof: r.proof }));
    const router = this.chain.router.connect(signer);
    try {
      await router.dispute.staticCall(refs);
    } catch (error) {
      throw explainRevert(error, unit);
    }
    const nonce = await this.nonceOf(from);
    const receipt = await this.send(() => router.dispute(refs, { nonce }));
    let disputeId: string | null = null;
    let bond = cover.bond;
    let heldRows = 0;
    let requestId: string | null = null;
    for (const log of receipt.logs) {
      const parsed = this.parseRouterLog(log);
      if (parsed?.name === "DisputeOpened") {
        disputeId = (parsed.args.getValue("disputeId") as string).toLowerCase();
        bond = parsed.args.getValue("bond") as bigint;
      }
      if (parsed?.name === "DisputeRowHeld") heldRows += 1;
      const oracleLog = this.parseOracleLog(log);
      if (oracleLog?.name === "VerificationRequested") requestId = oracleLog.args.getValue("requestId") as string;
    }
    if (disputeId === null) throw new DisputeError("REVERTED", `the dispute ${receipt.hash} emitted no DisputeOpened event`);
    this.options.logger?.info(
      { disputeId, payer: from, rows: refs.length, heldRows, held: prepared.interval.heldAmount.toString(), bond: bond.toString(), tx: receipt.hash, requestId, reason: options.reason },
      "dispute opened",
    );
    return { disputeId, txHash: receipt.hash, block: receipt.blockNumber, bond, heldRows, requestId, approveTx };
  }

  /**
   * Asks the UsageOracle to verify an open dispute (anyone may: starts it, or retries after a failed or lost
   * answer). Refused with a reason when there is no oracle, it is not the router's arbiter, or it cannot take a
   * request now.
   */
  async requestVerification(disputeId: string, signer: Signer): Promise<RequestedVerification> {
    checkDisputeId(disputeId);
    const oracle = await this.arbiterOracle();
    const connected = oracle.connect(signer);
    try {
      await connected.requestVerification.staticCall(disputeId);
    } catch (error) {
      throw explainRevert(error, this.chain.token.unit);
    }
    const nonce = await this.nonceOf(await signer.getAddress());
    const receipt = await this.send(() => connected.requestVerification(disputeId, { nonce }));
    for (const log of receipt.logs) {
      const parsed = this.parseOracleLog(log);
      if (parsed?.name === "VerificationRequested") {
        const requestId = parsed.args.getValue("requestId") as string;
        const attempt = Number(parsed.args.getValue("attempt"));
        this.options.logger?.info({ disputeId, requestId, attempt, tx: receipt.hash }, "oracle verification requested");
        return { txHash: receipt.hash, requestId, attempt };
      }
    }
    throw new DisputeError("REVERTED", `the verification request ${receipt.hash} emitted no VerificationRequested event`);
  }

  /** Closes a dispute nobody judged by its governance deadline (anyone may): the charge stands, the bond goes back. */
  async settleExpired(disputeId: string, signer: Signer): Promise<{ txHash: string; block: number }> {
    checkDisputeId(disputeId);
    const router = this.chain.router.connect(signer);
    try {
      await router.settleExpiredDispute.staticCall(disputeId);
    } catch (error) {
      throw explainRevert(error, this.chain.token.unit);
    }
    const nonce = await this.nonceOf(await signer.getAddress());
    const receipt = await this.send(() => router.settleExpiredDispute(disputeId, { nonce }));
    this.options.logger?.info({ disputeId, tx: receipt.hash }, "expired dispute settled: the charge stands, the bond went back to the payer");
    return { txHash: receipt.hash, block: receipt.blockNumber };
  }

  /** The calldata governance sends (through its proposal) to resolve a dispute with `overbilledTokens`. */
  resolveCall(disputeId: string, overbilledTokens: bigint): { to: string; data: string; signature: string } {
    checkDisputeId(disputeId);
    return {
      to: this.chain.routerAddress,
      data: this.chain.router.interface.encodeFunctionData("resolveDispute", [disputeId, overbilledTokens]),
      signature: "resolveDispute(bytes32,uint128)",
    };
  }

  /** The oracle, checked to be the router's arbiter (else its answer could not resolve anything). */
  async arbiterOracle() {
    const oracle = this.chain.oracle;
    if (oracle === undefined || this.chain.oracleAddress === undefined) {
      throw new DisputeError(
        "NO_ORACLE",
        "this deployment has no UsageOracle (or none was given with --oracle): governance resolves the dispute (resolveDispute) " +
          "until its governance deadline; after it anyone may settle it as expired and the charge stands",
      );
    }
    if (!(await this.chain.router.hasRole(ARBITER_ROLE, this.chain.oracleAddress))) {
      throw new DisputeError("NO_ORACLE", `the UsageOracle ${this.chain.oracleAddress} is not the router's arbiter (no ARBITER_ROLE): governance resolves the dispute`);
    }
    return oracle;
  }

  /** Where a dispute stands: its totals, deadlines, the oracle's requests and answers, the outcome. */
  async status(disputeId: string): Promise<DisputeStatus> {
    checkDisputeId(disputeId);
    const id = disputeId.toLowerCase();
    const [info, now] = await Promise.all([this.chain.router.disputeInfo(id), this.now()]);
    const state = STATES[Number(info.status)] ?? "none";
    const base = {
      disputeId: id,
      state,
      payer: info.payer,
      provider: Number(info.provider),
      model: Number(info.model),
      callsFrom: Number(info.callsFrom),
      callsTo: Number(info.callsTo),
      openedAt: Number(info.openedAt),
      arbiterDeadline: Number(info.arbiterDeadline),
      governanceDeadline: Number(info.governanceDeadline),
      rows: Number(info.rows),
      billedTokens: info.billedTokens,
      heldTokens: info.heldTokens,
      heldAmount: info.heldAmount,
      bond: info.bond,
      priorRefundedTokens: info.priorRefundedTokens,
      overbilledTokens: info.overbilledTokens,
      refund: info.refund,
      now,
    };
    if (state === "none") return { ...base, history: [] };
    const head = await this.chain.provider.getBlockNumber();
    const fromBlock = await this.clock.firstBlockAtOrAfter(base.openedAt, 0, head);
    const history: OracleEvent[] = [];
    let verification: VerificationState | undefined;
    const oracle = this.chain.oracle;
    if (oracle !== undefined && this.chain.oracleAddress !== undefined) {
      verification = await this.verificationState(id);
      const events = ["VerificationRequested", "UsageVerified", "VerificationFailed"].map((name) => oracle.interface.getEvent(name as "UsageVerified").topicHash);
      const logs = await getLogsChunked(this.chain.provider, { address: this.chain.oracleAddress, topics: [events, id] }, fromBlock, head, this.chunk);
      for (const log of logs) {
        const parsed = this.parseOracleLog(log);
        if (parsed === null) continue;
        const at = { block: log.blockNumber, txHash: log.transactionHash, requestId: parsed.args.getValue("requestId") as string };
        if (parsed.name === "VerificationRequested") {
          history.push({ kind: "requested", ...at, attempt: Number(parsed.args.getValue("attempt")), requester: parsed.args.getValue("requester") as string });
        } else if (parsed.name === "UsageVerified") {
          history.push({
            kind: "verified",
            ...at,
            billedTokens: parsed.args.getValue("billedTokens") as bigint,
            reportedTokens: parsed.args.getValue("reportedTokens") as bigint,
            overbilledTokens: parsed.args.getValue("overbilledTokens") as bigint,
          });
        } else if (parsed.name === "VerificationFailed") {
          history.push({ kind: "failed", ...at, reason: failureReasonName(parsed.args.getValue("reason") as bigint), message: utf8(parsed.args.getValue("err") as string) });
        }
      }
    }
    let resolution: DisputeStatus["resolution"];
    if (state === "resolved" || state === "expired") {
      const topic = this.chain.router.interface.getEvent("DisputeResolved").topicHash;
      const logs = await getLogsChunked(this.chain.provider, { address: this.chain.routerAddress, topics: [topic, id] }, fromBlock, head, this.chunk);
      const log = logs.at(-1);
      const parsed = log === undefined ? null : this.parseRouterLog(log);
      if (log !== undefined && parsed !== null) {
        resolution = {
          refund: parsed.args.getValue("refund") as bigint,
          toProvider: parsed.args.getValue("toProvider") as bigint,
          bondReturned: parsed.args.getValue("bondReturned") as boolean,
          resolver: parsed.args.getValue("resolver") as string,
          txHash: log.transactionHash,
          block: log.blockNumber,
        };
      }
    }
    return { ...base, verification, history, resolution };
  }

  /** The oracle's verification state of a dispute (undefined without an oracle). */
  async verificationState(disputeId: string): Promise<VerificationState | undefined> {
    const oracle = this.chain.oracle;
    if (oracle === undefined) return undefined;
    const [v, requestTimeout, maxAttempts] = await Promise.all([oracle.verificationOf(disputeId), oracle.requestTimeout(), oracle.maxAttempts()]);
    return {
      attempts: Number(v.attempts),
      pending: /^0x0+$/.test(v.requestId) ? null : v.requestId,
      sentAt: Number(v.sentAt),
      retryAt: Number(v.sentAt) + Number(requestTimeout),
      maxAttempts: Number(maxAttempts),
    };
  }

  /** Polls until the dispute is closed (resolved or expired) or `timeoutMs` passes; returns the latest status. */
  async waitForResolution(disputeId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<DisputeStatus> {
    checkDisputeId(disputeId);
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      const info = await this.chain.router.disputeInfo(disputeId);
      if (Number(info.status) >= 2 || Date.now() >= deadline || options.signal?.aborted === true) return this.status(disputeId);
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.pollMs, Math.max(deadline - Date.now(), 0))));
    }
  }

  /**
   * The disputes open on the router now: DisputeOpened logs from the first block at or after `sinceTime`, less those
   * closed since (read from `disputeInfo`, the truth).
   */
  async openDisputes(sinceTime: number): Promise<string[]> {
    const head = await this.chain.provider.getBlockNumber();
    const fromBlock = await this.clock.firstBlockAtOrAfter(sinceTime, 0, head);
    if (fromBlock > head) return [];
    const topic = this.chain.router.interface.getEvent("DisputeOpened").topicHash;
    const logs = await getLogsChunked(this.chain.provider, { address: this.chain.routerAddress, topics: [topic] }, fromBlock, head, this.chunk);
    const ids = [...new Set(logs.map((log) => log.topics[1]!.toLowerCase()))];
    const open: string[] = [];
    for (const id of ids) if (Number((await this.chain.router.disputeInfo(id)).status) === 1) open.push(id);
    return open;
  }

  /** The latest block's timestamp (the chain's clock, not this machine's). */
  async now(): Promise<number> {
    const provider = this.chain.provider as Partial<JsonRpcApiProvider>;
    if (typeof provider.send === "function") {
      // Straight from the node: ethers may answer from a cache older than the transaction just mined.
      const block = (await provider.send("eth_getBlockByNumber", ["latest", false])) as { timestamp: string } | null;
      if (block !== null) return Number(BigInt(block.timestamp));
    }
    const block = await this.chain.provider.getBlock("latest");
    return block?.timestamp ?? Math.floor(Date.now() / 1000);
  }

  /**
   * The sender's next nonce, asked of the node each time: ethers caches provider reads for a moment, and two
   * transactions sent back to back (approve, dispute, request) would otherwise get the same nonce.
   */
  private async nonceOf(address: string): Promise<number> {
    const provider = this.chain.provider as Partial<JsonRpcApiProvider>;
    if (typeof provider.send !== "function") return this.chain.provider.getTransactionCount(address, "pending");
    return Number(BigInt((await provider.send("eth_getTransactionCount", [address, "pending"])) as string));
  }

  private parseRouterLog(log: Pick<Log, "address" | "topics" | "data">) {
    if (getAddress(log.address) !== this.chain.routerAddress) return null;
    try {
      return this.chain.router.interface.parseLog({ topics: [...log.topics], data: log.data });
    } catch {
      return null;
    }
  }

  private parseOracleLog(log: Pick<Log, "address" | "topics" | "data">) {
    if (this.chain.oracle === undefined || this.chain.oracleAddress === undefined || getAddress(log.address) !== this.chain.oracleAddress) return null;
    try {
      return this.chain.oracle.interface.parseLog({ topics: [...log.topics], data: log.data });
    } catch {
      return null;
    }
  }

  private async send(sendTx: () => Promise<{ wait(confirms?: number): Promise<TransactionReceipt | null> }>): Promise<TransactionReceipt> {
    let receipt: TransactionReceipt | null;
    try {
      receipt = await (await sendTx()).wait(1);
    } catch (error) {
      if (isError(error, "CALL_EXCEPTION") && error.receipt != null) {
        // Simulated fine, reverted when mined (the state changed in between): gas was spent, nothing else happened.
        throw new DisputeError("REVERTED", `transaction ${error.receipt.hash} reverted in block ${error.receipt.blockNumber}: check the state and run again`, {
          cause: error,
        });
      }
      throw explainRevert(error, this.chain.token.unit);
    }
    if (receipt === null) throw new DisputeError("REVERTED", "the transaction was dropped before it was mined: run the command again");
    return receipt;
  }
}

/** What a keeper does for an open dispute now: ask the oracle, close it as expired, or wait. */
export function nextAction(status: Pick<DisputeStatus, "state" | "now" | "arbiterDeadline" | "governanceDeadline" | "verification">): KeeperAction {
  if (status.state !== "open") return "none";
  if (status.now >= status.governanceDeadline) return "settle-expired";
  if (status.now >= status.arbiterDeadline) return "wait-governance";
  const v = status.verification;
  if (v === undefined) return "wait-governance";
  if (v.attempts >= v.maxAttempts) return "wait-governance";
  // retries are spaced by the oracle's requestTimeout, answered or not
  if (v.sentAt !== 0 && status.now < v.retryAt) return "wait-oracle";
  return "request";
}

export function bondMessage(cover: BondCover, unit: TokenUnit): string {
  const fmt = (n: bigint) => formatAmount(n, unit);
  const parts = [
    `the bond is ${fmt(cover.bond)}: the deposit holds ${fmt(cover.deposit)}, so ${fmt(cover.shortfall)} must come from the wallet`,
    `(allowance for the router ${fmt(cover.allowance)}, wallet balance ${fmt(cover.wallet)})`,
  ];
  const fix =
    cover.wallet < cover.shortfall
      ? `: deposit at least ${fmt(cover.shortfall)} more into the router, or fund the wallet`
      : `: approve the router for ${fmt(cover.shortfall)} (pass --approve-bond) or deposit it`;
  return `${parts.join(" ")}${fix}`;
}

function formatAmount(units: bigint, unit: TokenUnit): string {
  return units === MaxUint256 ? "unlimited" : formatTokenAmount(units, unit);
}

function checkTarget(target: DisputeTarget): void {
  if (!isBatchId(target.batchId)) {
    throw new DisputeError("INVALID_INPUT", `--batch "${target.batchId}": a batch id is 0x and 64 hex digits (as settled and archived)`);
  }
  if (!Number.isSafeInteger(target.index) || target.index < 0) {
    throw new DisputeError("INVALID_INPUT", `--row "${target.index}": a row index is a whole number from 0`);
  }
}

function checkDisputeId(disputeId: string): void {
  if (!isDisputeId(disputeId)) throw new DisputeError("INVALID_INPUT", `--id "${disputeId}": a dispute id is 0x and 64 hex digits (printed when it opened)`);
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((a, b) => a + b, 0n);
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

function utf8(hex: string): string {
  if (hex === "0x") return "";
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(hex.slice(2), "hex"));
  } catch {
    return hex;
  }
}
