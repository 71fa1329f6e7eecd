/**
 * Side transactions: calls another stage needs sent with the chain's settler key (relayer/payout's releases). The
 * settler holding the chain's lease sends them after each pass over its batches, through the same pipeline, so they
 * can never race a batch for a nonce:
 * - the nonce comes from the ledger's sequence for the signer (the one batches take theirs from), and is taken in
 *   the same step that stores the signed transaction, before it is broadcast: a restart rebroadcasts it;
 * - a transaction not mined within `stuckAfterMs` is replaced with the same nonce and higher fees (`bump`), or
 *   rebroadcast as is (`resubmit`, or when the node dropped it, or when its key is no longer held);
 * - every hash ever broadcast is watched; whichever is mined ends it, and `done` hears the receipt (a reverted one
 *   too: another host may have sent the same call first); a nonce taken by some other transaction ends it with
 *   `done(call, null)`: the caller decides from the chain's state whether to try again.
 * One side transaction is in flight at a time; with nothing pending, several are sent in one pass.
 */
import { Transaction } from "ethers";
import type { Logger } from "pino";

import type { SettlerSigner } from "../keys/signers/device-signer.js";

import { bumpedFees, initialFees, type FeePolicy, type Fees } from "./fees.js";
import { JsonRpcError } from "./json-rpc.js";
import type { RpcLog } from "./outcome.js";
import { classifySendError } from "./rpc-errors.js";
import type { RpcPool } from "./rpc-pool.js";
import { feesOf, type SentTransaction, type SettlementStore, type SideRecord } from "./settlement-store.js";

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
}

export class SideSender {
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
    const tx = await this.sign({ nonce, gasLimit: call.gasLimit, data: call.data, fees: await this.initialFees() }, wallet);
    const record: SideRecord = { id: call.id, kind: call.kind, data: call.data, state: "signed", nonce, gasLimit: call.gasLimit.toString(), txs: [tx] };
    await this.options.store.assignSideNonce(wallet.address, record);
    this.options.logger?.info({ kind: call.kind, id: call.id, nonce, hash: tx.hash }, `${call.kind} transaction signed`);
    await this.broadcast(record, tx);
    return record;
  }

  private async broadcast(record: SideRecord, tx: SentTransaction): Promise<void> {
    try {
      await this.rpc<string>("eth_sendRawTransaction", [tx.raw]);
    } catch (error) {
      const failure = classifySendError(error, tx.raw);
      if (failure === "already-known" || failure === "nonce-too-low") {
        // broadcast before (a restart) or already mined: watching its hashes tells which
      } else if (failure === "replacement-underpriced") {
        this.options.logger?.warn({ kind: record.kind, id: record.id, nonce: record.nonce }, "replacement underpriced; will bump again");
      } else if (failure === "insufficient-funds") {
        this.options.logger?.error({ signer: Transaction.from(tx.raw).from, kind: record.kind, id: record.id }, "the settler's signer cannot pay for gas: fund it");
        return;
      } else if (error instanceof JsonRpcError) {
        this.options.logger?.error({ kind: record.kind, id: record.id, err: error.message }, "broadcast refused");
        return;
      } else {
        throw error;
      }
    }
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
      await this.options.calls.done(record, { hash: receipt.transactionHash, ok: receipt.status === "0x1", logs: receipt.logs });
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
    if (Date.now() - last.sentAt >= this.options.stuckAfterMs) await this.replace(record, last, sender);
    return false;
  }

  private async replace(record: SideRecord, last: SentTransaction, sender: string): Promise<void> {
    const known = await this.rpc<unknown>("eth_getTransactionByHash", [last.hash]);
    const key = this.options.keys.keyFor(sender);
    if (this.options.replacement === "resubmit" || known === null || key === undefined) {
      this.options.logger?.info({ kind: record.kind, id: record.id, hash: last.hash, dropped: known === null }, "rebroadcasting a pending side transaction");
      const txs = [...record.txs.slice(0, -1), { ...last, sentAt: Date.now() }];
      await this.options.store.updateSide({ txs });
      await this.broadcast({ ...record, txs }, last);
      return;
    }
    const block = await this.rpc<{ baseFeePerGas?: string }>("eth_getBlockByNumber", ["latest", false]);
    const fees = bumpedFees(feesOf(last), BigInt(block.baseFeePerGas ?? "0"), this.options.fees);
    if (fees === null) {
      this.options.logger?.warn({ kind: record.kind, id: record.id, hash: last.hash }, "cannot bump fees further (fee ceiling); waiting for inclusion");
      await this.options.store.updateSide({ txs: [...record.txs.slice(0, -1), { ...last, sentAt: Date.now() }] });
      return;
    }
    const tx = await this.sign({ nonce: record.nonce, gasLimit: BigInt(record.gasLimit), data: record.data, fees }, key);
    const txs = [...record.txs, tx];
    await this.options.store.updateSide({ txs });
    this.options.logger?.info({ kind: record.kind, id: record.id, nonce: record.nonce, hash: tx.hash }, "replacing a stuck side transaction with higher fees");
    await this.broadcast({ ...record, txs }, tx);
  }

  private async initialFees(): Promise<Fees> {
    const [block, tip] = await Promise.all([
      this.rpc<{ baseFeePerGas?: string }>("eth_getBlockByNumber", ["latest", false]),
      this.rpc<string>("eth_maxPriorityFeePerGas", []).catch(() => "0x0"),
    ]);
    return initialFees(BigInt(block.baseFeePerGas ?? "0"), BigInt(tip), this.options.fees);
  }

  private async sign(request: { nonce: number; gasLimit: bigint; data: string; fees: Fees }, wallet: SettlerSigner): Promise<SentTransaction> {
    const raw = await wallet.signTransaction(
      Transaction.from({
        type: 2,
        chainId: this.options.chainId,
        nonce: request.nonce,
        to: this.options.router,
        data: request.data,
        value: 0n,
        gasLimit: request.gasLimit,
        maxFeePerGas: request.fees.maxFeePerGas,
        maxPriorityFeePerGas: request.fees.maxPriorityFeePerGas,
      }),
    );
    return {
      hash: Transaction.from(raw).hash!,
      raw,
      maxFeePerGas: request.fees.maxFeePerGas.toString(),
      maxPriorityFeePerGas: request.fees.maxPriorityFeePerGas.toString(),
      sentAt: Date.now(),
    };
  }

  private rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.options.rpc.request<T>(method, params);
  }
}
