/**
 * The settler of one chain: turns archived batches into `settleBatchAt` transactions, exactly once. Each batch commits
 * the usage bucket of its calls (`callsFrom`, from its batch file), so a batch settled late is judged by its calls'
 * time.
 *
 * One process per chain holds the lease (lease.ts); it alone signs with the chain's key, and its ledger writes are
 * fenced with the lease's token (a settler paused past its lease writes nothing once another took over). A standby
 * asks for the lease every `pollMs` (and every `leaseTtlMs / 3`) and takes over within `leaseTtlMs + leaseTtlMs / 3`
 * of the holder's last renewal (20 s with the defaults). Each batch moves through
 * queued -> signed -> sent -> mined -> final in the ledger (settlement-store.ts), and every step is recorded before
 * its side effect, so a crash at any point resumes without charging twice:
 * - before signing, the chain is asked whether the batch id is already settled (a crash between send and record,
 *   or a lost ledger): if so the settling transaction is found from its BatchSettled log and recorded;
 * - a signed transaction is stored before it is broadcast and rebroadcast after a restart (same hash);
 * - a transaction not mined within `stuckAfterMs` is replaced with the same nonce and both fees raised by at least
 *   10 % (`bump`), or rebroadcast as is on chains without a public mempool (`resubmit`, Arbitrum);
 * - every hash ever broadcast for a batch is watched; whichever is mined settles it (a replacement included);
 * - a nonce consumed by a transaction that is not ours sends the batch back to the queue for a new nonce;
 * - after `confirmations` blocks the block hash is checked again; a reorged or dropped transaction reopens the
 *   batch (rebroadcast), and only then is the batch final and its outcome (rejected rows) read from the logs;
 * - a batch whose receipts root another batch id already settled (`AutoPayLLMReceiptsRootUsed`: those receipts are
 *   charged already) is refused for good: logged as an error, counted (`batches_refused`, `receipts_refused`) and
 *   kept in the ledger's refused set with the id of the batch that settled them; it is never sent again.
 *
 * Side calls (`side`, relayer/payout's releases): after each pass over its batches, the lease holder sends the side
 * calls another stage hands it with the active key, one in flight at a time, taking their nonces from the same
 * ledger sequence, stored before broadcast and bumped like batches (side-calls.ts): the two never race for a nonce.
 * Both send and replace through broadcast.ts (what a node's refusal means, rebroadcast or fee bump), written once.
 *
 * Key rotation (`agentgpt keys rotate`): besides its active key the settler may hold retiring keys. New batches are
 * always signed with the active key; a batch already signed keeps the key that signed it (read back from its signed
 * transaction) for watching, nonce checks and fee bumps, until it is mined or sent back to the queue (then the active
 * key signs it anew). A batch in flight on a key the settler does not hold is still watched and rebroadcast, but
 * cannot be bumped: add that key as `retiring:` to finish it. `useKeys` swaps keys between passes (SIGHUP), and the
 * settler reports its keys in the ledger (`signers`), so a rotation revokes the old key only once it is drained.
 */
import { Interface, Transaction, getAddress } from "ethers";
import type { Logger } from "pino";

import type { SettlerSigner } from "../keys/signers/device-signer.js";

import type { Charge } from "../batcher/rows-tree.js";
import type { Archive } from "../batcher/archive.js";
import { chargesOf } from "../batcher/batch-file.js";
import { failpoint } from "../chaos/failpoint.js";
import type { ChainGuard } from "./chain-guard.js";
import { broadcastSigned, currentFees, replaceStuck, signCall } from "./broadcast.js";
import type { FeePolicy, Fees } from "./fees.js";
import { JsonRpcError } from "./json-rpc.js";
import { FencedError, Lease } from "./lease.js";
import { decodeOutcome, type RpcLog, type SettlementOutcome } from "./outcome.js";
import { SideSender, type SideCalls } from "./side-calls.js";
import { revertOf } from "./rpc-errors.js";
import type { RpcPool } from "./rpc-pool.js";
import type { SettlerEvents } from "./metrics.js";
import {
  SettlementStore,
  type SentTransaction,
  type SettlementRecord,
  type SubmitBatch,
} from "./settlement-store.js";

/** The part of AutoPayLLM's ABI the settler uses. */
export const ROUTER_ABI = [
  "function settleBatchAt(bytes32 batchId, (address user, uint32 provider, uint32 model, uint64 tokens, uint128 amount)[] charges, bytes32 receiptsRoot, string dataCid, uint64 callsFrom)",
  "function batchInfo(bytes32 batchId) view returns ((bytes32 rowsRoot, bytes32 receiptsRoot, uint40 settledAt, uint40 releaseAt, uint40 callsFrom, uint16 rowCount, uint16 acceptedCount, uint16 shareCount, uint8 status, uint80 sequencerRound))",
  "event BatchSettled(bytes32 indexed batchId, bytes32 rowsRoot, bytes32 receiptsRoot, uint256 acceptedRows, uint256 rejectedRows, uint256 escrowed, uint64 releaseAt, uint64 callsFrom, string dataCid)",
  "event RowRejected(bytes32 indexed batchId, uint256 index, address indexed user, uint8 reason)",
  "error AutoPayLLMBatchAlreadySettled(bytes32 batchId)",
  "error AutoPayLLMReceiptsRootUsed(bytes32 receiptsRoot, bytes32 batchId)",
  "error AutoPayLLMInvalidInterval(uint256 callsFrom, uint256 usageBucket)",
  "error EnforcedPause()",
  "error AccessControlUnauthorizedAccount(address account, bytes32 neededRole)",
];

export interface SettlerOptions {
  store: SettlementStore;
  rpc: RpcPool;
  archive: Archive;
  chainId: number;
  router: string;
  /** the chain's signing key (a keystore opened at start, or an HSM / KMS key): signs every new batch */
  wallet: SettlerSigner;
  /** keys being rotated out: they only finish the transactions they signed (watch, bump, rebroadcast) */
  retiring?: readonly SettlerSigner[];
  fees: FeePolicy;
  /** blocks on top of the inclusion block before a batch is final (1 = final when mined) */
  confirmations: number;
  /** "bump" raises fees of a stuck transaction; "resubmit" rebroadcasts it unchanged (Arbitrum: no mempool) */
  replacement: "bump" | "resubmit";
  /** ms between ledger passes (default 1,000) */
  pollMs?: number;
  /** ms without inclusion before a transaction is replaced (default 30,000) */
  stuckAfterMs?: number;
  /** batches signed or sent at once (default 4) */
  maxInFlight?: number;
  /** ms the lease lives without renewal (default 15,000) */
  leaseTtlMs?: number;
  /** gas limit = estimate * this / 100 (default 125) */
  gasLimitPercent?: number;
  /** how far back to look for a batch's BatchSettled log when the ledger lost it (blocks, default 100,000) */
  logLookbackBlocks?: number;
  /** called once per batch when it becomes final */
  onFinal?: (record: SettlementRecord) => Promise<void>;
  /** other calls sent with this settler's key after each pass, through the same nonce sequence (relayer/payout's releases) */
  side?: SideCalls;
  /**
   * checks that the chain is still the one the settler started on (chain id, genesis, router code): checked every
   * `healthCheckMs` and after every failed pass; while it reports a problem nothing is sent, the problem is logged
   * once, and the settler backs off (up to `maxBackoffMs`)
   */
  guard?: Pick<ChainGuard, "problem">;
  /** ms between chain checks while healthy (default max(5 * pollMs, 5,000)) */
  healthCheckMs?: number;
  /** longest wait between checks while the chain is wrong (default 30,000) */
  maxBackoffMs?: number;
  /** told when the chain goes wrong (the reason, with the fix) and when it is right again (null): readiness */
  onHealth?: (problem: string | null) => void;
  /** told of final, reverted, stuck, replaced and refused transactions as they happen (relayer/settler/metrics.ts) */
  events?: SettlerEvents;
  logger?: Logger;
}

interface RpcReceipt {
  transactionHash: string;
  blockNumber: string;
  blockHash: string;
  status: string;
  gasUsed: string;
  /** wei per gas actually paid (absent on some old nodes: the fee is then counted as 0) */
  effectiveGasPrice?: string;
  logs: RpcLog[];
}

interface SettleCall {
  charges: Charge[];
  callsFrom: number;
}

interface RpcBlock {
  number: string;
  hash: string;
  baseFeePerGas?: string;
}

export class Settler {
  readonly lease: Lease;
  private readonly contract = new Interface(ROUTER_ABI);
  private readonly router: string;
  private wallet: SettlerSigner;
  private retiring: readonly SettlerSigner[];
  private signer: string;
  private nextKeys: { wallet: SettlerSigner; retiring: readonly SettlerSigner[] } | null = null;
  private releaseOnApply: Array<() => void> = [];
  private signersReported = false;
  private readonly senders = new Map<string, string>();
  private readonly unheldWarned = new Set<string>();
  private readonly drainedLogged = new Set<string>();
  private readonly pollMs: number;
  private readonly stuckAfterMs: number;
  private readonly maxInFlight: number;
  private readonly gasLimitPercent: bigint;
  private readonly lookback: number;
  private readonly calls = new Map<string, SettleCall>();
  private running = false;
  /** what is wrong with the chain (the guard's last answer): while set, the lease is not renewed */
  private chainProblem: string | null = null;
  private stopped: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly side: SideSender | null;

  constructor(private readonly options: SettlerOptions) {
    this.router = getAddress(options.router);
    this.wallet = options.wallet;
    this.retiring = (options.retiring ?? []).filter((key) => key.address !== options.wallet.address);
    this.signer = options.wallet.address;
    this.pollMs = options.pollMs ?? 1000;
    this.stuckAfterMs = options.stuckAfterMs ?? 30_000;
    this.maxInFlight = options.maxInFlight ?? 4;
    this.gasLimitPercent = BigInt(options.gasLimitPercent ?? 125);
    this.lookback = options.logLookbackBlocks ?? 100_000;
    this.lease = new Lease(options.store.redis, options.store.key("lease"), options.leaseTtlMs ?? 15_000, {
      label: `settler of chain ${options.store.chain}`,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    this.side =
      options.side === undefined
        ? null
        : new SideSender({
            calls: options.side,
            store: options.store,
            rpc: options.rpc,
            chainId: options.chainId,
            router: this.router,
            fees: options.fees,
            replacement: options.replacement,
            stuckAfterMs: this.stuckAfterMs,
            keys: { active: () => this.wallet, keyFor: (address) => this.keyFor(address) },
            logger: options.logger,
          });
  }

  get store(): SettlementStore {
    return this.options.store;
  }

  /** The active key's address (signs new batches). */
  get activeSigner(): string {
    return this.signer;
  }

  /** Addresses of the retiring keys (finish their own transactions only). */
  get retiringSigners(): string[] {
    return this.retiring.map((key) => key.address);
  }

  /**
   * Switches keys before the next pass (a pass in progress finishes with the keys it started with). The previous
   * active key should be among `retiring` while batches are in flight on it, or they can no longer be bumped.
   * `release` is called once the keys are applied (no pass uses the previous ones any more): close their device
   * sessions there.
   */
  useKeys(wallet: SettlerSigner, retiring: readonly SettlerSigner[] = [], release?: () => void): void {
    this.nextKeys = { wallet, retiring: retiring.filter((key) => key.address !== wallet.address) };
    if (release !== undefined) this.releaseOnApply.push(release);
    this.wake?.();
  }

  /** Starts the next pass now instead of after the poll interval (new side calls are waiting). */
  poke(): void {
    this.wake?.();
  }

  /** Hands a sealed, archived batch to the settler (idempotent). */
  async submit(batch: SubmitBatch): Promise<void> {
    const head = await this.blockNumber();
    if (await this.store.submit(batch, head)) {
      this.options.logger?.info({ batchId: batch.batchId, rows: batch.rows, receipts: batch.receipts }, "batch queued for settlement");
    }
    this.wake?.();
  }

  /** Runs the ledger loop until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    // renewed on its own timer too, so a slow pass does not outlive the lease; not while the chain is wrong here
    this.lease.start(() => this.running && this.chainProblem === null);
    this.stopped = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.stopped;
    await this.lease.release().catch(() => undefined);
  }

  private async loop(): Promise<void> {
    let standbyLogged = false;
    let problem: string | null = null;
    let backoff = 0;
    const healthCheckMs = this.options.healthCheckMs ?? Math.max(5 * this.pollMs, 5000);
    let nextCheck = Date.now() + healthCheckMs;
    const checkChain = async () => {
      if (this.options.guard === undefined) return;
      const found = await this.options.guard.problem().catch(() => null);
      nextCheck = Date.now() + healthCheckMs;
      problem = this.reportHealth(problem, found);
      this.chainProblem = problem;
    };
    while (this.running) {
      try {
        if (problem !== null || Date.now() >= nextCheck) await checkChain();
        if (problem === null) {
          if (await this.lease.acquire()) {
            standbyLogged = false;
            await this.pass();
          } else {
            // whoever takes the lease reports its own keys; report ours again when we hold it again
            this.signersReported = false;
            if (!standbyLogged) {
              standbyLogged = true;
              this.options.logger?.info({ lease: this.lease.key }, "another settler holds the lease for this chain: standing by");
            }
          }
        }
      } catch (error) {
        if (error instanceof FencedError) {
          // paused past the lease and another settler took over: nothing was written; stand by
          this.options.logger?.warn({ lease: this.lease.key, err: error.message }, "another settler took the lease over: this pass wrote nothing more; standing by");
          this.signersReported = false;
        } else {
          // a pass that fails because the chain is not the one we started on says so once, not every second
          await checkChain();
          if (problem === null) this.options.logger?.error({ err: errorInfo(error) }, "settler pass failed; retrying");
        }
      }
      backoff = problem === null ? 0 : backoff + 1;
      const delay = problem === null ? this.pollMs : Math.min(this.pollMs * 2 ** backoff, this.options.maxBackoffMs ?? 30_000);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Logs a change of the chain's health once (the cause and the fix) and tells `onHealth`; returns the new state. */
  private reportHealth(previous: string | null, found: string | null): string | null {
    if (found !== null && found !== previous) {
      this.options.logger?.error({ router: this.router, cause: found }, `settlement stopped on this chain, nothing is sent: ${found}`);
      this.options.onHealth?.(found);
    } else if (found === null && previous !== null) {
      this.options.logger?.info({ router: this.router }, "the chain is the expected one again: settlement resumes");
      this.options.onHealth?.(null);
    }
    return found;
  }

  /**
   * One pass over every batch not yet final, in submission order, then the side calls. Public for tests and tools.
   * Run by the lease holder: its ledger writes are fenced with the token it held when the pass began (the one its
   * reads were made under). A pass that stalls past the lease (load, GC) and resumes after the lease was taken
   * again, by another process or by this one (a new holding, a new token), is refused (FENCED) rather than writing
   * what it read before over what the other holder wrote meanwhile (found by the fleet chaos run: a batch finalized
   * twice, its receipts counted twice in the stats).
   */
  async pass(): Promise<void> {
    const token = this.lease.token;
    this.options.store.fence = { fenceKey: this.lease.fenceKey, token: () => token };
    await this.batchPass();
    if (this.side !== null && this.lease.held && this.running) await this.side.pass(() => this.lease.held && this.running);
  }

  private async batchPass(): Promise<void> {
    this.applyKeys();
    if (!this.signersReported) {
      await this.store.setSigners({ active: this.signer, retiring: this.retiringSigners, at: Date.now() });
      this.signersReported = true;
    }
    const records = await this.store.active();
    this.reportDrained(records);
    if (records.length === 0) return;
    const head = await this.blockNumber();
    const nonces = new Map<string, number>();
    const latestNonceOf = async (address: string) => {
      let nonce = nonces.get(address);
      if (nonce === undefined) {
        nonce = await this.nonceAt("latest", address);
        nonces.set(address, nonce);
      }
      return nonce;
    };
    let inFlight = records.filter((r) => r.state === "signed" || r.state === "sent").length;
    for (const record of records) {
      if (!this.lease.held || !this.running) return;
      switch (record.state) {
        case "queued":
        case "blocked":
          if (inFlight >= this.maxInFlight) break;
          if (await this.prepare(record, await latestNonceOf(this.signer))) inFlight++;
          break;
        case "signed":
          await this.broadcast(record, record.txs.at(-1)!);
          break;
        case "sent":
          await this.watch(record, await latestNonceOf(this.senderOf(record.txs.at(-1)!)));
          break;
        case "mined":
          await this.confirm(record, head);
          break;
        case "final":
        case "refused":
          break;
      }
    }
  }

  // ---------------------------------------------------------------- queued

  /** Checks, simulates, signs and stores the first transaction of a queued batch. True when it was signed. */
  private async prepare(record: SettlementRecord, latestNonce: number): Promise<boolean> {
    const { batchId } = record;
    if (await this.alreadySettled(record)) return false;
    const data = await this.calldataOf(record);
    let estimate: bigint;
    try {
      estimate = BigInt(await this.rpc<string>("eth_estimateGas", [{ from: this.signer, to: this.router, data }]));
    } catch (error) {
      const revert = revertOf(error, this.contract);
      if (revert?.name === "AutoPayLLMBatchAlreadySettled") {
        await this.alreadySettled(record, true);
        return false;
      }
      if (revert?.name === "AutoPayLLMReceiptsRootUsed") {
        await this.refuse(record, String(revert.args[1]));
        return false;
      }
      if (revert !== null || error instanceof JsonRpcError) {
        const note = revert === null ? (error as Error).message : `${revert.name}(${revert.args.join(", ")})`;
        if (record.state !== "blocked" || record.note !== note) {
          this.options.logger?.warn({ batchId, reason: note }, "batch cannot settle now; it stays queued and is retried");
        }
        await this.store.update(batchId, { state: "blocked", note });
        return false;
      }
      throw error;
    }
    const gasLimit = (estimate * this.gasLimitPercent) / 100n;
    const fees = await this.initialFees();
    const nonce = Math.max(await this.store.nextNonce(this.signer), latestNonce);
    const tx = await this.sign({ nonce, gasLimit, data, fees }, this.wallet);
    await this.store.assignNonce(this.signer, batchId, nonce, gasLimit, tx);
    this.options.logger?.info({ batchId, nonce, hash: tx.hash, gasLimit: gasLimit.toString() }, "batch signed");
    failpoint("after-sign");
    await this.broadcast({ ...record, state: "signed", nonce }, tx);
    return true;
  }

  /**
   * Whether the batch id is already settled on-chain (by a transaction the ledger may not know). When it is, the
   * settling transaction is recorded as mined and the batch goes on to confirmation.
   */
  private async alreadySettled(record: SettlementRecord, known = false): Promise<boolean> {
    if (!known) {
      const status = await this.batchStatus(record.batchId);
      if (status === 0) return false;
    }
    const log = await this.findSettledLog(record);
    if (log === null) {
      // Settled, but beyond the log lookback: record what we know, so it is never sent again.
      await this.store.update(record.batchId, { state: "blocked", note: "settled on-chain by a transaction outside the log lookback" });
      this.options.logger?.error({ batchId: record.batchId }, "batch is settled on-chain but its transaction was not found");
      return true;
    }
    const receipt = await this.rpc<RpcReceipt | null>("eth_getTransactionReceipt", [log.transactionHash]);
    if (receipt === null) return false;
    this.options.logger?.info({ batchId: record.batchId, hash: receipt.transactionHash }, "batch found already settled on-chain; recording it");
    await this.recordMined(record, receipt);
    return true;
  }

  // ---------------------------------------------------------------- signed / sent

  private async broadcast(record: SettlementRecord, tx: SentTransaction): Promise<void> {
    if (!(await broadcastSigned(tx.raw, { rpc: this.options.rpc, context: { batchId: record.batchId }, nonce: record.nonce, logger: this.options.logger }))) return;
    if (record.state !== "sent") await this.store.update(record.batchId, { state: "sent" });
    failpoint("after-send");
  }

  private async watch(record: SettlementRecord, latestNonce: number): Promise<void> {
    for (const tx of [...record.txs].reverse()) {
      const receipt = await this.rpc<RpcReceipt | null>("eth_getTransactionReceipt", [tx.hash]);
      if (receipt !== null) {
        if (tx !== record.txs.at(-1)) {
          this.options.logger?.info({ batchId: record.batchId, mined: tx.hash, latest: record.txs.at(-1)!.hash }, "an earlier broadcast of the batch was mined (TRANSACTION_REPLACED)");
        }
        await this.recordMined(record, receipt);
        return;
      }
    }
    if (record.nonce !== null && record.nonce < latestNonce) {
      // The nonce is used, by none of our hashes (they have no receipt): another transaction took it.
      if (await this.alreadySettled(record)) return;
      this.options.logger?.warn({ batchId: record.batchId, nonce: record.nonce }, "nonce consumed by another transaction; batch goes back to the queue");
      await this.store.update(record.batchId, { state: "queued", nonce: null, txs: [], note: "nonce consumed by another transaction" });
      return;
    }
    const last = record.txs.at(-1)!;
    if (Date.now() - last.sentAt < this.stuckAfterMs) return;
    await this.replace(record, last);
  }

  /** A stuck transaction: rebroadcast (resubmit, or if dropped) or replace with the same nonce and higher fees. */
  private async replace(record: SettlementRecord, last: SentTransaction): Promise<void> {
    this.options.events?.stuck();
    const key = this.keyFor(this.senderOf(last));
    if (key === undefined && !this.unheldWarned.has(record.batchId)) {
      this.unheldWarned.add(record.batchId);
      this.options.logger?.error(
        { batchId: record.batchId, signer: this.senderOf(last), nonce: record.nonce },
        "a stuck batch is in flight on a key this settler does not hold: it is rebroadcast but cannot be bumped; add that key as the signer's retiring: key",
      );
    }
    await replaceStuck(
      { context: { batchId: record.batchId }, nonce: record.nonce!, gasLimit: record.gasLimit, txs: record.txs },
      {
        rpc: this.options.rpc,
        chainId: this.options.chainId,
        router: this.router,
        fees: this.options.fees,
        replacement: this.options.replacement,
        key,
        noun: "transaction",
        data: () => this.calldataOf(record),
        save: (txs) => this.store.update(record.batchId, { txs }),
        broadcast: (txs, tx) => this.broadcast({ ...record, txs }, tx),
        events: this.options.events,
        logger: this.options.logger,
      },
    );
  }

  private async recordMined(record: SettlementRecord, receipt: RpcReceipt): Promise<void> {
    if (receipt.status !== "0x1") {
      // Reverted on-chain (e.g. paused between simulation and inclusion): the nonce is spent, the batch is not.
      this.options.logger?.warn({ batchId: record.batchId, hash: receipt.transactionHash }, "settlement transaction reverted; batch goes back to the queue");
      await this.store.update(record.batchId, { state: "queued", nonce: null, txs: [], note: `reverted in ${receipt.transactionHash}` });
      this.options.events?.reverted(feeOf(receipt));
      return;
    }
    await this.store.update(record.batchId, {
      state: "mined",
      txHash: receipt.transactionHash,
      block: Number(BigInt(receipt.blockNumber)),
      blockHash: receipt.blockHash,
      gasUsed: BigInt(receipt.gasUsed).toString(),
    });
    failpoint("after-mined");
  }

  // ---------------------------------------------------------------- mined

  private async confirm(record: SettlementRecord, head: number): Promise<void> {
    const block = record.block!;
    if (head < block + this.options.confirmations - 1) return;
    const [atHeight, receipt] = await Promise.all([
      this.rpc<RpcBlock | null>("eth_getBlockByNumber", [`0x${block.toString(16)}`, false]),
      this.rpc<RpcReceipt | null>("eth_getTransactionReceipt", [record.txHash]),
    ]);
    if (atHeight?.hash !== record.blockHash || receipt === null || receipt.blockHash !== record.blockHash) {
      this.options.logger?.warn({ batchId: record.batchId, block, hash: record.txHash }, "settlement block reorged away; batch reopened");
      await this.store.update(record.batchId, { state: "sent", txHash: null, block: null, blockHash: null, gasUsed: null, note: "reorged" });
      const last = record.txs.at(-1);
      if (last !== undefined) await this.broadcast({ ...record, state: "sent" }, last);
      return;
    }
    failpoint("during-confirm");
    const outcome = decodeOutcome(record.batchId, receipt.logs, this.router, this.contract);
    if (outcome === null) throw new Error(`batch ${record.batchId}: no BatchSettled log in ${record.txHash}`);
    await this.finalize(record, outcome, receipt);
  }

  private async finalize(record: SettlementRecord, outcome: SettlementOutcome, receipt: RpcReceipt): Promise<void> {
    const file = await this.options.archive.read(this.store.chain, record.batchId);
    const rowReceipts = file?.rows.map((row) => row.receipts) ?? [];
    const rejectedRows = new Set(outcome.rejected.map(([index]) => index));
    const counters: Record<string, number> = {
      batches_final: 1,
      rows_accepted: outcome.acceptedRows,
      rows_rejected: outcome.rejectedRows,
      gas_used: Number(record.gasUsed ?? 0),
    };
    let receiptsRejected = 0;
    for (const [index, reason] of outcome.rejected) {
      const receipts = rowReceipts[index] ?? 0;
      receiptsRejected += receipts;
      counters[`receipts_rejected_${reason}`] = (counters[`receipts_rejected_${reason}`] ?? 0) + receipts;
    }
    counters.receipts_rejected = receiptsRejected;
    counters.receipts_settled = rowReceipts.reduce((sum, n, i) => sum + (rejectedRows.has(i) ? 0 : n), 0);
    const final: SettlementRecord = { ...record, state: "final", outcome, note: null };
    await this.store.finalize(final, counters);
    this.options.events?.final({
      sealedAt: file?.sealedAt ?? record.submittedAt,
      ...feeOf(receipt),
      receiptsSettled: counters.receipts_settled ?? 0,
      receiptsRejected: receiptsRejected,
    });
    this.calls.delete(record.batchId);
    this.options.logger?.info(
      { batchId: record.batchId, hash: record.txHash, block: record.block, accepted: outcome.acceptedRows, rejected: outcome.rejected },
      "batch final",
    );
    await this.options.onFinal?.(final);
  }

  /**
   * The router refused the batch for good: its receipts root was settled by `settledBy` (another batch id), so its
   * receipts are charged already and sending it again can only fail. Kept, counted and reported; never retried.
   */
  private async refuse(record: SettlementRecord, settledBy: string): Promise<void> {
    const note = `receipts root ${record.receiptsRoot} already settled by batch ${settledBy}`;
    const file = await this.options.archive.read(this.store.chain, record.batchId);
    const receipts = file?.receipts.length ?? record.receipts;
    await this.store.refuse({ ...record, state: "refused", note }, { batches_refused: 1, receipts_refused: receipts });
    this.options.events?.refused();
    this.calls.delete(record.batchId);
    this.options.logger?.error(
      { batchId: record.batchId, receiptsRoot: record.receiptsRoot, settledBy, receipts, amount: record.amount },
      "batch refused for good: its receipts root is already settled by another batch (its receipts are charged there); it is not sent again",
    );
  }

  // ---------------------------------------------------------------- chain access

  private async rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.options.rpc.request<T>(method, params);
  }

  private async blockNumber(): Promise<number> {
    return Number(BigInt(await this.rpc<string>("eth_blockNumber", [])));
  }

  private async nonceAt(tag: "latest" | "pending", address = this.signer): Promise<number> {
    return Number(BigInt(await this.rpc<string>("eth_getTransactionCount", [address, tag])));
  }

  /** Applies keys set by `useKeys` (between passes only). */
  private applyKeys(): void {
    const next = this.nextKeys;
    if (next === null) return;
    this.nextKeys = null;
    const previous = this.signer;
    this.wallet = next.wallet;
    this.retiring = next.retiring;
    this.signer = next.wallet.address;
    this.signersReported = false;
    this.options.logger?.info({ active: this.signer, previous, retiring: this.retiringSigners }, "settler keys changed: new batches are signed with the active key");
    const release = this.releaseOnApply;
    this.releaseOnApply = [];
    for (const done of release) done();
  }

  /** Logs once per retiring key when no batch is in flight on it any more (the ledger is what `keys rotate` checks). */
  private reportDrained(records: readonly SettlementRecord[]): void {
    for (const key of this.retiring) {
      if (this.drainedLogged.has(key.address)) continue;
      if (inFlightOn(records, key.address).length > 0) continue;
      this.drainedLogged.add(key.address);
      this.options.logger?.info({ retiring: key.address }, "retiring key drained: no batch in flight on it; its RELAYER_ROLE can be revoked (agentgpt keys rotate)");
    }
  }

  /** The held key for `address` (active or retiring), if any. */
  private keyFor(address: string): SettlerSigner | undefined {
    if (address === this.signer) return this.wallet;
    return this.retiring.find((key) => key.address === address);
  }

  /** Who signed a stored transaction (recovered from its signature; cached by hash). */
  private senderOf(tx: SentTransaction): string {
    let sender = this.senders.get(tx.hash);
    if (sender === undefined) {
      sender = signerOfRaw(tx.raw);
      this.senders.set(tx.hash, sender);
    }
    return sender;
  }

  private async batchStatus(batchId: string): Promise<number> {
    const data = this.contract.encodeFunctionData("batchInfo", [batchId]);
    const result = await this.rpc<string>("eth_call", [{ to: this.router, data }, "latest"]);
    const [info] = this.contract.decodeFunctionResult("batchInfo", result);
    return Number((info as { status: bigint }).status);
  }

  private async findSettledLog(record: SettlementRecord): Promise<RpcLog | null> {
    const head = await this.blockNumber();
    const from = Math.max(0, Math.min(record.submittedBlock, head) - this.lookback);
    const logs = await this.rpc<RpcLog[]>("eth_getLogs", [
      {
        address: this.router,
        topics: [this.contract.getEvent("BatchSettled")!.topicHash, record.batchId],
        fromBlock: `0x${from.toString(16)}`,
        toBlock: "latest",
      },
    ]);
    return logs.at(-1) ?? null;
  }

  private async initialFees(): Promise<Fees> {
    return currentFees(this.options.rpc, this.options.fees, this.options.logger);
  }

  private async sign(request: { nonce: number; gasLimit: bigint; data: string; fees: Fees }, wallet: SettlerSigner): Promise<SentTransaction> {
    return signCall(wallet, { chainId: this.options.chainId, router: this.router, ...request });
  }

  /** `settleBatchAt` calldata of a batch, from its archived file (the file's CID and call interval are what it commits). */
  private async calldataOf(record: SettlementRecord): Promise<string> {
    let call = this.calls.get(record.batchId);
    if (call === undefined) {
      const file = await this.options.archive.read(this.store.chain, record.batchId);
      if (file === null) throw new Error(`batch ${record.batchId}: archive file missing (${record.path})`);
      if (file.receiptsRoot !== record.receiptsRoot) throw new Error(`batch ${record.batchId}: archive file's receipts root differs from the ledger's`);
      call = { charges: chargesOf(file), callsFrom: file.callsFrom };
      this.calls.set(record.batchId, call);
    }
    return this.contract.encodeFunctionData("settleBatchAt", [record.batchId, call.charges, record.receiptsRoot, record.cid, call.callsFrom]);
  }
}

/** The address that signed a raw transaction (checksummed). */
export function signerOfRaw(raw: string): string {
  const from = Transaction.from(raw).from;
  if (from === null) throw new Error("unsigned transaction in the settlement ledger");
  return from;
}

/**
 * The records whose transaction `address` signed and that are not final yet (signed, sent, or mined and awaiting
 * confirmations: a reorg may still need that key). A key is drained when this is empty.
 */
export function inFlightOn(records: readonly SettlementRecord[], address: string): SettlementRecord[] {
  const wanted = getAddress(address);
  return records.filter((record) => (record.state === "signed" || record.state === "sent" || record.state === "mined") && signerOfRecord(record) === wanted);
}

/** The key a ledger record's latest transaction was signed with; null when nothing is signed yet. */
export function signerOfRecord(record: Pick<SettlementRecord, "txs">): string | null {
  const last = record.txs.at(-1);
  return last === undefined ? null : signerOfRaw(last.raw);
}

/** Gas used and the fee paid (wei) by a mined transaction. */
function feeOf(receipt: Pick<RpcReceipt, "gasUsed" | "effectiveGasPrice">): { gasUsed: bigint; feeWei: bigint } {
  const gasUsed = BigInt(receipt.gasUsed);
  return { gasUsed, feeWei: gasUsed * BigInt(receipt.effectiveGasPrice ?? "0x0") };
}

function errorInfo(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: "Error", message: String(error) };
}
