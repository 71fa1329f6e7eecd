/**
 * The payer's side of a dispute, for any payer: find the batch file (archive, else IPFS by CID), prove the row
 * against the rows root on-chain, check the window, the bond and what covers it, send `AutoPayLLM.dispute`, ask the
 * `UsageOracle` to verify, and follow the dispute until it is resolved. Every check happens before anything is sent;
 * each send is simulated first so a revert is explained instead of paid for.
 */
import { MaxUint256, getAddress, isError, type JsonRpcApiProvider, type Signer, type TransactionReceipt } from "ethers";
import type { Logger } from "pino";

import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import type { SettlementStore } from "../settler/settlement-store.js";
import { ARBITER_ROLE } from "../chain/roles.js";
import { loadBatchFile, type BatchFileSources, type LoadedBatchFile } from "./batch-source.js";
import { BlockClock } from "./block-clock.js";
import type { DisputeChain } from "./dispute-chain.js";
import { DisputeError } from "./errors.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "./logs.js";
import { explainRevert, failureReasonName } from "./reverts.js";
import { proveRow, type ProvenRow } from "./row-proof.js";
import { isBatchId, readSettledBatch, type SettledBatch } from "./settled-batch.js";

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

export interface PreparedDispute {
  readonly target: DisputeTarget;
  readonly batch: SettledBatch;
  readonly batchFile: LoadedBatchFile;
  readonly proven: ProvenRow;
  readonly payer: string;
  /** unix seconds: when the window closes (huge while the L2 sequencer is down) */
  readonly closesAt: bigint;
  /** the chain's latest block time */
  readonly now: number;
  readonly bond: BondCover;
}

export interface OpenedDispute {
  readonly txHash: string;
  readonly block: number;
  readonly bond: bigint;
  /** the approval sent first, when the bond needed one */
  readonly approveTx?: string | undefined;
}

export interface RequestedVerification {
  readonly txHash: string;
  readonly requestId: string;
  readonly attempt: number;
}

export type DisputeState = "none" | "open" | "resolved";

export type OracleEvent =
  | { readonly kind: "requested"; readonly requestId: string; readonly attempt: number; readonly requester: string; readonly block: number; readonly txHash: string }
  | {
      readonly kind: "verified";
      readonly requestId: string;
      readonly billedTokens: bigint;
      readonly reportedTokens: bigint;
      readonly refund: bigint;
      readonly block: number;
      readonly txHash: string;
    }
  | { readonly kind: "failed"; readonly requestId: string; readonly reason: string; readonly message: string; readonly block: number; readonly txHash: string };

export interface DisputeStatus {
  readonly target: DisputeTarget;
  readonly state: DisputeState;
  readonly payer: string;
  readonly provider: number;
  readonly amount: bigint;
  readonly bond: bigint;
  readonly openedAt: number;
  /** until then the oracle may resolve */
  readonly arbiterDeadline: number;
  /** until then governance may resolve; after it anyone may `refundExpiredDispute` */
  readonly governanceDeadline: number;
  readonly now: number;
  readonly verification?: { readonly attempts: number; readonly pending: string | null; readonly sentAt: number; readonly retryAt: number; readonly maxAttempts: number } | undefined;
  readonly history: readonly OracleEvent[];
  readonly resolution?:
    | { readonly refund: bigint; readonly toProvider: bigint; readonly bondReturned: boolean; readonly resolver: string; readonly txHash: string; readonly block: number }
    | undefined;
}

const STATES: Record<number, DisputeState> = { 0: "none", 1: "open", 2: "resolved" };

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

  /**
   * Everything a dispute needs, checked: the batch is escrowed and its window open, the file matches the chain, the
   * row was charged and is not disputed yet, the payer is `payer` (when given), and how the bond is covered.
   *
   * @throws DisputeError naming what is wrong and the fix.
   */
  async prepare(target: DisputeTarget, payer?: string): Promise<PreparedDispute> {
    checkTarget(target);
    const batch = await this.settledBatch(target.batchId);
    if (batch.state === "released") {
      throw new DisputeError("BATCH_RELEASED", `batch ${batch.batchId} was released to its providers after its window: too late to dispute`);
    }
    const batchFile = await loadBatchFile(this.options.sources, {
      batchId: batch.batchId,
      dataCid: batch.dataCid,
      chainId: this.chain.chainId,
      router: this.chain.routerAddress,
    });
    const proven = proveRow(batchFile.file, batch, target.index);
    const rowPayer = getAddress(proven.charge.user);
    if (payer !== undefined && getAddress(payer) !== rowPayer) {
      throw new DisputeError("NOT_PAYER", `only the row's payer ${rowPayer} may dispute row ${target.index}; the signer is ${getAddress(payer)}: sign with the payer's key`);
    }
    const existing = await this.chain.router.disputeInfo(batch.batchId, target.index);
    if (Number(existing.status) !== 0) {
      throw new DisputeError(
        "ALREADY_DISPUTED",
        `row ${target.index} of batch ${batch.batchId} was already disputed (${STATES[Number(existing.status)]}): ` +
          `follow it with \`agentgpt dispute status --batch ${batch.batchId} --row ${target.index}\``,
      );
    }
    const [closesAt, now] = await Promise.all([this.chain.router.disputeClosesAt(batch.batchId), this.now()]);
    if (BigInt(now) >= closesAt) {
      throw new DisputeError(
        "WINDOW_CLOSED",
        `the dispute window of batch ${batch.batchId} closed at ${new Date(Number(closesAt) * 1000).toISOString()}: it can no longer be disputed`,
      );
    }
    const bond = await this.bondCover(rowPayer, proven.charge.amount);
    return { target, batch, batchFile, proven, payer: rowPayer, closesAt, now, bond };
  }

  /** The row's charge and proof, checked against the chain, whatever its dispute state (for a verification retry). */
  async prove(target: DisputeTarget): Promise<ProvenRow> {
    checkTarget(target);
    const batch = await this.settledBatch(target.batchId);
    const batchFile = await loadBatchFile(this.options.sources, {
      batchId: batch.batchId,
      dataCid: batch.dataCid,
      chainId: this.chain.chainId,
      router: this.chain.routerAddress,
    });
    return proveRow(batchFile.file, batch, target.index);
  }

  /** The bond of a row charging `amount` and what the payer has to cover it. */
  async bondCover(payer: string, amount: bigint): Promise<BondCover> {
    const [bond, deposit, allowance, wallet] = await Promise.all([
      this.chain.router.disputeBondFor(amount),
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
      throw new DisputeError("NOT_PAYER", `only the row's payer ${prepared.payer} may dispute it; the signer is ${from}: sign with the payer's key`);
    }
    const unit = this.chain.token.unit;
    const cover = await this.bondCover(from, prepared.proven.charge.amount);
    let approveTx: string | undefined;
    if (!cover.covered) {
      if (cover.wallet < cover.shortfall || options.approveBond !== true) {
        throw new DisputeError("BOND_NOT_COVERED", bondMessage(cover, unit));
      }
      const token = this.chain.token.contract.connect(signer);
      const nonce = await this.nonceOf(from);
      const receipt = await this.send(() => token.getFunction("approve")(this.chain.routerAddress, cover.shortfall, { nonce }));
      approveTx = receipt.hash;
    }
    const { batchId, index } = prepared.target;
    const router = this.chain.router.connect(signer);
    try {
      await router.dispute.staticCall(batchId, index, prepared.proven.charge, prepared.proven.proof);
    } catch (error) {
      throw explainRevert(error, unit);
    }
    const nonce = await this.nonceOf(from);
    const receipt = await this.send(() => router.dispute(batchId, index, prepared.proven.charge, prepared.proven.proof, { nonce }));
    let bond = cover.bond;
    for (const log of receipt.logs) {
      const parsed = this.parseRouterLog(log);
      if (parsed?.name === "DisputeOpened") bond = parsed.args.getValue("bond") as bigint;
    }
    this.options.logger?.info(
      { batchId, index, payer: from, amount: prepared.proven.charge.amount.toString(), bond: bond.toString(), tx: receipt.hash, reason: options.reason },
      "dispute opened",
    );
    return { txHash: receipt.hash, block: receipt.blockNumber, bond, approveTx };
  }

  /**
   * Asks the UsageOracle to verify the disputed row (as its payer, or as a REQUESTER_ROLE account). Refused with a
   * reason when there is no oracle, it is not the router's arbiter, or it cannot take a request now.
   */
  async requestVerification(target: DisputeTarget, proven: Pick<ProvenRow, "charge" | "proof">, signer: Signer): Promise<RequestedVerification> {
    const oracle = await this.arbiterOracle();
    const { batchId, index } = target;
    const connected = oracle.connect(signer);
    try {
      await connected.requestVerification.staticCall(batchId, index, proven.charge, proven.proof);
    } catch (error) {
      throw explainRevert(error, this.chain.token.unit);
    }
    const nonce = await this.nonceOf(await signer.getAddress());
    const receipt = await this.send(() => connected.requestVerification(batchId, index, proven.charge, proven.proof, { nonce }));
    for (const log of receipt.logs) {
      if (getAddress(log.address) !== this.chain.oracleAddress) continue;
      const parsed = oracle.interface.parseLog({ topics: [...log.topics], data: log.data });
      if (parsed?.name === "VerificationRequested") {
        const requestId = parsed.args.getValue("requestId") as string;
        const attempt = Number(parsed.args.getValue("attempt"));
        this.options.logger?.info({ batchId, index, requestId, attempt, tx: receipt.hash }, "oracle verification requested");
        return { txHash: receipt.hash, requestId, attempt };
      }
    }
    throw new DisputeError("REVERTED", `the verification request ${receipt.hash} emitted no VerificationRequested event`);
  }

  /** The oracle, checked to be the router's arbiter (else its answer could not resolve anything). */
  async arbiterOracle() {
    const oracle = this.chain.oracle;
    if (oracle === undefined || this.chain.oracleAddress === undefined) {
      throw new DisputeError(
        "NO_ORACLE",
        "this deployment has no UsageOracle (or none was given with --oracle): governance resolves the dispute (resolveDispute), " +
          "and if it does not in time anyone may refund it with refundExpiredDispute",
      );
    }
    if (!(await this.chain.router.hasRole(ARBITER_ROLE, this.chain.oracleAddress))) {
      throw new DisputeError(
        "NO_ORACLE",
        `the UsageOracle ${this.chain.oracleAddress} is not the router's arbiter (no ARBITER_ROLE): governance resolves the dispute`,
      );
    }
    return oracle;
  }

  /** Where the dispute of a row stands: deadlines, the oracle's requests and answers, the resolution. */
  async status(target: DisputeTarget): Promise<DisputeStatus> {
    checkTarget(target);
    const batchId = target.batchId.toLowerCase();
    const [info, arbiterTimeout, governanceTimeout, now] = await Promise.all([
      this.chain.router.disputeInfo(batchId, target.index),
      this.chain.router.arbiterTimeout(),
      this.chain.router.governanceTimeout(),
      this.now(),
    ]);
    const state = STATES[Number(info.status)] ?? "none";
    const openedAt = Number(info.openedAt);
    const base = {
      target: { batchId, index: target.index },
      state,
      payer: info.payer,
      provider: Number(info.provider),
      amount: info.amount,
      bond: info.bond,
      openedAt,
      arbiterDeadline: openedAt + Number(arbiterTimeout),
      governanceDeadline: openedAt + Number(arbiterTimeout) + Number(governanceTimeout),
      now,
    };
    if (state === "none") return { ...base, history: [] };

    const head = await this.chain.provider.getBlockNumber();
    const opened = await this.clock.blocksBetween(openedAt, openedAt + 1, head);
    const fromBlock = opened?.fromBlock ?? head;
    const history: OracleEvent[] = [];
    let verification: DisputeStatus["verification"];
    const oracle = this.chain.oracle;
    if (oracle !== undefined && this.chain.oracleAddress !== undefined) {
      const [v, requestTimeout, maxAttempts] = await Promise.all([
        oracle.verificationOf(batchId, target.index),
        oracle.requestTimeout(),
        oracle.maxAttempts(),
      ]);
      const pending = /^0x0+$/.test(v.requestId) ? null : v.requestId;
      verification = {
        attempts: Number(v.attempts),
        pending,
        sentAt: Number(v.sentAt),
        retryAt: Number(v.sentAt) + Number(requestTimeout),
        maxAttempts: Number(maxAttempts),
      };
      const events = [
        oracle.interface.getEvent("VerificationRequested").topicHash,
        oracle.interface.getEvent("UsageVerified").topicHash,
        oracle.interface.getEvent("VerificationFailed").topicHash,
      ];
      const logs = await getLogsChunked(
        this.chain.provider,
        { address: this.chain.oracleAddress, topics: [events, batchId, indexTopic(target.index)] },
        fromBlock,
        head,
        this.chunk,
      );
      for (const log of logs) {
        const parsed = oracle.interface.parseLog({ topics: [...log.topics], data: log.data });
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
            refund: parsed.args.getValue("refund") as bigint,
          });
        } else if (parsed.name === "VerificationFailed") {
          const err = parsed.args.getValue("err") as string;
          history.push({ kind: "failed", ...at, reason: failureReasonName(parsed.args.getValue("reason") as bigint), message: utf8(err) });
        }
      }
    }
    let resolution: DisputeStatus["resolution"];
    if (state === "resolved") {
      const topic = this.chain.router.interface.getEvent("DisputeResolved").topicHash;
      const logs = await getLogsChunked(
        this.chain.provider,
        { address: this.chain.routerAddress, topics: [topic, batchId, indexTopic(target.index)] },
        fromBlock,
        head,
        this.chunk,
      );
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

  /** Polls until the dispute is resolved or `timeoutMs` passes; returns the latest status either way. */
  async waitForResolution(target: DisputeTarget, options: { timeoutMs: number; signal?: AbortSignal }): Promise<DisputeStatus> {
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      const info = await this.chain.router.disputeInfo(target.batchId, target.index);
      if (Number(info.status) === 2 || Date.now() >= deadline || options.signal?.aborted === true) return this.status(target);
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.pollMs, Math.max(deadline - Date.now(), 0))));
    }
  }

  /** The latest block's timestamp (the chain's clock, not this machine's). */
  async now(): Promise<number> {
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

  private parseRouterLog(log: { address: string; topics: readonly string[]; data: string }) {
    if (getAddress(log.address) !== this.chain.routerAddress) return null;
    try {
      return this.chain.router.interface.parseLog({ topics: [...log.topics], data: log.data });
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

function indexTopic(index: number): string {
  return `0x${index.toString(16).padStart(64, "0")}`;
}

function utf8(hex: string): string {
  if (hex === "0x") return "";
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(hex.slice(2), "hex"));
  } catch {
    return hex;
  }
}
