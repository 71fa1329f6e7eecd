/**
 * Sending and replacing the transactions the settler signs, in one place for both kinds it sends: batches
 * (settler.ts) and side calls (side-calls.ts, relayer/payout's releases). What a node's refusal means (rpc-errors.ts
 * classifies it) and what a stuck transaction gets (rebroadcast or a fee bump) is decided here, so a new node error
 * text or a new bump rule is changed once. The callers keep their own ledger records: they pass what to log, how to
 * store a new list of transactions and how to broadcast it.
 */
import { Transaction } from "ethers";
import type { Logger } from "pino";

import type { SettlerSigner } from "../keys/signers/device-signer.js";

import { bumpedFees, FeeCeilingError, initialFees, type FeePolicy, type Fees } from "./fees.js";
import { JsonRpcError } from "./json-rpc.js";
import type { SettlerEvents } from "./metrics.js";
import { classifySendError } from "./rpc-errors.js";
import type { RpcPool } from "./rpc-pool.js";
import { feesOf, type SentTransaction } from "./settlement-store.js";

type Rpc = Pick<RpcPool, "request">;

/** Log fields naming what a transaction is for: `{ batchId }` for a batch, `{ kind, id }` for a side call. */
export type TxContext = Readonly<Record<string, unknown>>;

export interface BroadcastOptions {
  readonly rpc: Rpc;
  readonly context: TxContext;
  /** the transaction's nonce, for the log of an underpriced replacement */
  readonly nonce: number | null;
  readonly logger?: Logger | undefined;
}

/**
 * Sends a signed raw transaction. True when the node has it now or had it: accepted, "already known" (broadcast
 * before: a restart), "nonce too low" (already mined, or the nonce was taken: watching the hashes tells which), or
 * "replacement underpriced" (logged; the pending one stands and the next stuck check bumps again). False, logged,
 * when it was not taken: the signer cannot pay for gas, or the node refused it otherwise; the caller keeps it
 * signed and sends it again next pass. Anything else (transport errors, timeouts, after the RPC pool's retries) is
 * thrown: the pass fails and is retried.
 */
export async function broadcastSigned(raw: string, options: BroadcastOptions): Promise<boolean> {
  const { context, logger } = options;
  try {
    await options.rpc.request<string>("eth_sendRawTransaction", [raw]);
  } catch (error) {
    const failure = classifySendError(error, raw);
    if (failure === "already-known" || failure === "nonce-too-low") {
      // Broadcast before (a restart) or already mined: watching its hashes tells which.
    } else if (failure === "replacement-underpriced") {
      logger?.warn({ ...context, nonce: options.nonce }, "replacement underpriced; will bump again");
    } else if (failure === "insufficient-funds") {
      // the key that signed this transaction (a retiring key's batch or replacement too), not the active key
      logger?.error({ signer: Transaction.from(raw).from, ...context }, "the settler's signer cannot pay for gas: fund it");
      return false;
    } else if (error instanceof JsonRpcError) {
      logger?.error({ ...context, err: error.message }, "broadcast refused");
      return false;
    } else {
      throw error;
    }
  }
  return true;
}

export interface StuckTransaction {
  readonly context: TxContext;
  readonly nonce: number;
  /** decimal, as the ledger stores it; read only when a replacement is signed (as before the two copies were one) */
  readonly gasLimit: string | null;
  /** every transaction broadcast for it, the latest last (the stuck one) */
  readonly txs: readonly SentTransaction[];
}

export interface ReplaceOptions {
  readonly rpc: Rpc;
  readonly chainId: number;
  readonly router: string;
  readonly fees: FeePolicy;
  /** "bump" raises the fees; "resubmit" rebroadcasts unchanged (Arbitrum: no public mempool to outbid) */
  readonly replacement: "bump" | "resubmit";
  /** the held key that signed the stuck transaction; undefined when this settler does not hold it (rebroadcast only) */
  readonly key: SettlerSigner | undefined;
  /**
   * what the transaction is called in logs: "transaction" (a batch) or "side transaction", so an operator tells a
   * stuck release from a stuck settlement
   */
  readonly noun: string;
  /** calldata of a replacement: a batch rebuilds it from its archived file, a side call stored its own */
  data(): Promise<string>;
  /** stores the new list of transactions (before anything is broadcast: a restart finds it) */
  save(txs: SentTransaction[]): Promise<void>;
  /** broadcasts `tx`, the record's transactions being `txs` now */
  broadcast(txs: SentTransaction[], tx: SentTransaction): Promise<void>;
  /**
   * counts replacements (agentgpt_settler_transactions_replaced_total): given for batches only, so the metric keeps
   * counting settlement transactions as its help text says, and side calls are not counted there
   */
  readonly events?: Pick<SettlerEvents, "replaced"> | undefined;
  readonly logger?: Logger | undefined;
}

/**
 * A transaction not mined within the stuck time: rebroadcast as is (`resubmit`, a transaction the node dropped, or one
 * signed by a key not held), or replaced with the same nonce and higher fees; at the fee ceiling it waits (its
 * sent time is reset so the next try is one stuck time later).
 */
export async function replaceStuck(stuck: StuckTransaction, options: ReplaceOptions): Promise<void> {
  const { context } = stuck;
  const { logger } = options;
  const last = stuck.txs.at(-1)!;
  const known = await options.rpc.request<unknown>("eth_getTransactionByHash", [last.hash]);
  if (options.replacement === "resubmit" || known === null || options.key === undefined) {
    logger?.info({ ...context, hash: last.hash, dropped: known === null }, `rebroadcasting a pending ${options.noun}`);
    const txs = [...stuck.txs.slice(0, -1), { ...last, sentAt: Date.now() }];
    await options.save(txs);
    options.events?.replaced("rebroadcast");
    await options.broadcast(txs, last);
    return;
  }
  const block = await options.rpc.request<{ baseFeePerGas?: string }>("eth_getBlockByNumber", ["latest", false]);
  const fees = bumpedFees(feesOf(last), BigInt(block.baseFeePerGas ?? "0"), options.fees);
  if (fees === null) {
    logger?.warn({ ...context, hash: last.hash }, "cannot bump fees further (fee ceiling); waiting for inclusion");
    await options.save([...stuck.txs.slice(0, -1), { ...last, sentAt: Date.now() }]);
    return;
  }
  const data = await options.data();
  const tx = await signCall(options.key, { chainId: options.chainId, router: options.router, nonce: stuck.nonce, gasLimit: BigInt(stuck.gasLimit!), data, fees });
  const txs = [...stuck.txs, tx];
  await options.save(txs);
  logger?.info(
    { ...context, nonce: stuck.nonce, hash: tx.hash, maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas },
    `replacing a stuck ${options.noun} with higher fees`,
  );
  options.events?.replaced("bump");
  await options.broadcast(txs, tx);
}

/** Fees of a new transaction from the latest block and the node's tip; a ceiling below the base fee is logged and thrown. */
export async function currentFees(rpc: Rpc, policy: FeePolicy, logger?: Logger): Promise<Fees> {
  const [block, tip] = await Promise.all([
    rpc.request<{ baseFeePerGas?: string }>("eth_getBlockByNumber", ["latest", false]),
    rpc.request<string>("eth_maxPriorityFeePerGas", []).catch(() => "0x0"),
  ]);
  try {
    return initialFees(BigInt(block.baseFeePerGas ?? "0"), BigInt(tip), policy);
  } catch (error) {
    if (error instanceof FeeCeilingError) logger?.error({ err: error.message }, "fee ceiling too low for the current base fee");
    throw error;
  }
}

/** Signs a call to the router (EIP-1559, no value) with `key`; `sentAt` is now. */
export async function signCall(
  key: SettlerSigner,
  request: { chainId: number; router: string; nonce: number; gasLimit: bigint; data: string; fees: Fees },
): Promise<SentTransaction> {
  const raw = await key.signTransaction(
    Transaction.from({
      type: 2,
      chainId: request.chainId,
      nonce: request.nonce,
      to: request.router,
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
