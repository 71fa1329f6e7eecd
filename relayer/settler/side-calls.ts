/**
 * Side transactions: calls another stage needs sent with the chain's settler key (relayer/payout's releases). The
 * settler holding the chain's lease sends them after each pass over its batches, through the same pipeline, so they
 * can never race a batch for a nonce:
 * - the nonce comes from the ledger's sequence for the signer (the one batches take theirs from), and is taken in
 *   the same step that stores the signed transaction, before it is broadcast: a restart rebroadcasts it;
 * - a transaction not mined within `stuckAfterMs` is replaced with the same nonce and higher fees (`bump`), or
 *   rebroadcast as is (`resubmit`, or when the node dropped it, or when its key is no longer held), by the same code
 *   as batches (broadcast.ts); one signed by a key no longer held is warned about and, still not mined after three
 *   stuck times, given up: the call is sent again with the active key (side calls are once-only on-chain);
 * - every hash ever broadcast is watched; whichever is mined ends it, and `done` hears the receipt (a reverted one
 *   too: another host may have sent the same call first); a nonce taken by some other transaction ends it with
 *   `done(call, null)`: the caller decides from the chain's state whether to try again.
 * One side transaction is in flight at a time; with nothing pending, several are sent in one pass.
 */
import { Transaction } from "ethers";
import type { Logger } from "pino";

import type { SettlerSigner } from "../keys/signers/device-signer.js";

import { broadcastSigned, currentFees, replaceStuck, signCall } from "./broadcast.js";
import type { FeePolicy } from "./fees.js";
import type { RpcLog } from "./outcome.js";
import type { RpcPool } from "./rpc-pool.js";
import type { SentTransaction, SettlementStore, SideRecord } from "./settlement-store.js";

export interface SideCall {
  /** the caller's id for it (a release: the batch id) */
  readonly id: string;
  /** what it is, for logs ("release") */
  readonly kind: string;
  /** calldata to the router */
  readonly data: string;
  readonly gasLimit: bigint;
}

export interface SideOutcome {
  readonly hash: string;
  /** receipt status 1 */
  readonly ok: boolean;
  readonly logs: readonly RpcLog[];
  /** gasUsed x effectiveGasPrice (wei), for metrics; absent when the node does not report the price */
  readonly feeWei?: bigint;
}

/** What another stage gives the settler to send. */
export interface SideCalls {
  /** The next call to send as `from` (the settler's active key), or null when there is nothing to send now. */
  next(from: string): Promise<SideCall | null>;
  /** The call's transaction was mined (`outcome`), or its nonce was taken by another transaction (null). */
  done(call: { readonly id: string; readonly kind: string }, outcome: SideOutcome | null): Promise<void>;
}

export interface SideSenderOptions {
  readonly calls: SideCalls;
  readonly store: SettlementStore;
  readonly rpc: RpcPool;
  readonly chainId: number;
  readonly router: string;
  readonly fees: FeePolicy;
  readonly replacement: "bump" | "resubmit";
  readonly stuckAfterMs: number;
  /** the settler's keys: the active one signs new side transactions; a bump needs the key that signed */
  readonly keys: { active(): SettlerSigner; keyFor(address: string): SettlerSigner | undefined };
  /** side transactions sent in one pass at most (default 16) */
  readonly maxPerPass?: number;
  readonly logger?: Logger | undefined;
}

interface RpcReceipt {
  transactionHash: string;
  status: string;
  logs: RpcLog[];
  gasUsed?: string;
  effectiveGasPrice?: string;
}

/** stuck times a side transaction signed by a key no longer held is rebroadcast before it is given up */
const UNHELD_GIVE_UP = 3;

export class SideSender {
  /** stuck side transactions signed by a key not held: when each was first found so (ms; this process only) */
  private readonly unheldSince = new Map<string, number>();

  constructor(private readonly options: SideSenderOptions) {}

  /** Watches the side transaction in flight, then sends new ones while each is mined at once; `go` false stops. */
  async pass(go: () => boolean): Promise<void> {
    const max = this.options.maxPerPass ?? 16;
    for (let i = 0; i < max && go(); i++) {
      let record = await this.options.store.side();
      if (record === null) {
        record = await this.start();
        if (record === null) return;
      } else if (record.state === "signed") {
        await this.broadcast(record, record.txs.at(-1)!);
      }
      if (!(await this.watch(record))) return;
    }
  }

  private async start(): Promise<SideRecord | null> {
    const wallet = this.options.keys.active();
    const call = await this.options.calls.next(wallet.address);
    if (call === null) return null;
    const latest = Number(BigInt(await this.rpc<string>("eth_getTransactionCount", [wallet.address, "latest"])));
    const nonce = Math.max(await this.options.store.nextNonce(wallet.address), latest);
    const fees = await currentFees(this.options.rpc, this.options.fees, this.options.logger);
    const tx = await signCall(wallet, { chainId: this.options.chainId, router: this.options.router, nonce, gasLimit: call.gasLimit, data: call.data, fees });
    const record: SideRecord = { id: call.id, kind: call.kind, data: call.data, state: "signed", nonce, gasLimit: call.gasLimit.toString(), txs: [tx] };
    await this.options.store.assignSideNonce(wallet.address, record);
    this.options.logger?.info({ kind: call.kind, id: call.id, nonce, hash: tx.hash }, `${call.kind} transaction signed`);
    await this.broadcast(record, tx);
    return record;
  }

  private async broadcast(record: SideRecord, tx: SentTransaction): Promise<void> {
    const context = { kind: record.kind, id: record.id };
    if (!(await broadcastSigned(tx.raw, { rpc: this.options.rpc, context, nonce: record.nonce, logger: this.options.logger }))) return;
    if (record.state !== "sent") {
      await this.options.store.updateSide({ state: "sent" });
      record.state = "sent";
    }
  }

  /** True when the side transaction ended (mined, or its nonce taken) and the slot is free again. */
  private async watch(record: SideRecord): Promise<boolean> {
    for (const tx of [...record.txs].reverse()) {
      const receipt = await this.rpc<RpcReceipt | null>("eth_getTransactionReceipt", [tx.hash]);
      if (receipt === null) continue;
      const feeWei = receipt.gasUsed === undefined || receipt.effectiveGasPrice === undefined ? undefined : BigInt(receipt.gasUsed) * BigInt(receipt.effectiveGasPrice);
      await this.options.calls.done(record, { hash: receipt.transactionHash, ok: receipt.status === "0x1", logs: receipt.logs, ...(feeWei === undefined ? {} : { feeWei }) });
      await this.options.store.clearSide();
      return true;
    }
    const sender = Transaction.from(record.txs.at(-1)!.raw).from!;
    const latest = Number(BigInt(await this.rpc<string>("eth_getTransactionCount", [sender, "latest"])));
    if (record.nonce < latest) {
      this.options.logger?.warn({ kind: record.kind, id: record.id, nonce: record.nonce }, "side transaction's nonce taken by another transaction");
      await this.options.calls.done(record, null);
      await this.options.store.clearSide();
      return true;
    }
    const last = record.txs.at(-1)!;
    if (Date.now() - last.sentAt < this.options.stuckAfterMs) return false;
    if (this.options.keys.keyFor(sender) === undefined && this.giveUpUnheld(record, sender)) {
      await this.options.calls.done(record, null);
      await this.options.store.clearSide();
      return true;
    }
    await this.replace(record, sender);
    return false;
  }

  /**
   * A stuck side transaction signed by a key this settler no longer holds (rotated away, revoked after a leak) can
   * only be rebroadcast, never bumped: if its fees are below what the chain takes now it is never mined, and the one
   * side slot would block every later release (providers unpaid) with no warning. It is warned about, then given up
   * after UNHELD_GIVE_UP stuck times: the caller re-sends the call with the active key (on the next pass) from the
   * chain's state. Safe because every side call is once-only on-chain: `release` refuses a batch not escrowed, so if
   * the old transaction is mined after all, one of the two reverts and nothing moves twice.
   */
  private giveUpUnheld(record: SideRecord, sender: string): boolean {
    const key = `${record.id}:${record.nonce}`;
    const since = this.unheldSince.get(key);
    if (since === undefined) {
      this.unheldSince.set(key, Date.now());
      this.options.logger?.warn(
        { kind: record.kind, id: record.id, nonce: record.nonce, signer: sender, giveUpAfterMs: UNHELD_GIVE_UP * this.options.stuckAfterMs },
        `a stuck ${record.kind} transaction was signed by a key this settler no longer holds: it can only be rebroadcast, and is given up (sent again with the active key) if still not mined`,
      );
      return false;
    }
    if (Date.now() - since < UNHELD_GIVE_UP * this.options.stuckAfterMs) return false;
    this.unheldSince.delete(key);
    this.options.logger?.warn(
      { kind: record.kind, id: record.id, nonce: record.nonce, signer: sender, hash: record.txs.at(-1)!.hash },
      `gave up a ${record.kind} transaction signed by a key no longer held: the call is sent again with the active key`,
    );
    return true;
  }

  private async replace(record: SideRecord, sender: string): Promise<void> {
    await replaceStuck(
      { context: { kind: record.kind, id: record.id }, nonce: record.nonce, gasLimit: record.gasLimit, txs: record.txs },
      {
        rpc: this.options.rpc,
        chainId: this.options.chainId,
        router: this.options.router,
        fees: this.options.fees,
        replacement: this.options.replacement,
        key: this.options.keys.keyFor(sender),
        noun: "side transaction",
        data: async () => record.data,
        save: (txs) => this.options.store.updateSide({ txs }),
        broadcast: (txs, tx) => this.broadcast({ ...record, txs }, tx),
        // no `events`: agentgpt_settler_transactions_{stuck,replaced}_total count settlement transactions only
        logger: this.options.logger,
      },
    );
  }

  private rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.options.rpc.request<T>(method, params);
  }
}
