/**
 * One chain's RelayerKeyRotator, driven by the ROTATOR key: authorize a new relayer key (fund it with gas, then
 * `addKey`), revoke one (`revokeKey`), and the reads a rotation decides on. Every write is idempotent by reading
 * the chain first (a key already funded is not funded again, one holding RELAYER_ROLE is not added again, one without
 * it is not revoked), so a rotation interrupted at any point is simply run again.
 *
 * Nonces. Two transactions of the ROTATOR key that share a nonce are not a cosmetic retry: the node keeps one and the
 * other never happens. If the one dropped is an `addKey`, the rotation stalls with a new key funded but never
 * authorized (the step fails, and a retry finds the ring half-way: the drill then revoked a key the retry had already
 * made retiring instead of the key in use). If the one dropped is a `revokeKey` of the leaked-key drill, the leaked
 * relayer key stays live on the router, free to settle (and so charge payers for) batches its holder forges, until
 * someone notices. Both happened: ethers shares identical JSON-RPC answers for 250 ms, so the `pending` nonce read for
 * `addKey` right after the funding transaction was mined was the funding transaction's own, and `agentgpt keys revoke`
 * (another process, its own provider) reads the nonce on its own.
 *
 * So: in a process, every RotatorChain sending with one rotator key on one chain goes through one queue (NonceQueue
 * below): one transaction at a time, mined before the next is signed, its nonce set explicitly from the chain's
 * `pending` count, read without ethers' cache right before signing (never a count kept in the process: after a
 * node's reset or reorg a remembered nonce would leave a gap, and a transaction waiting behind a gap waits forever,
 * holding the queue; a count that is too low only clashes, and a clash is retried). Across
 * processes (the relayer's rotation stage and `agentgpt keys revoke`, or two relayers by mistake), the rotation lease
 * already lets one of them act at a time; for the window where it cannot (a lease lapsed mid-step under a stalled
 * event loop, or an operator sending with the rotator key by hand), a send whose nonce was taken, or whose
 * transaction was replaced, re-reads the chain: when what it was for is already done (the key funded, added,
 * revoked: by the other sender), it is done; otherwise it is sent again with a fresh nonce. Chosen over a Redis lock
 * around every send because it also covers senders that take no lock (a script, a second deployment's relayer, the
 * operator's wallet) and adds nothing the revoke CLI must wait for while the rotation stage holds the lease.
 */
import { Contract, JsonRpcProvider, isError, type TransactionRequest } from "ethers";

import type { SettlerSigner } from "../keys/signers/device-signer.js";
import type { Logger } from "pino";

import { RelayerKeyRotator__factory } from "../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import type { RelayerKeyRotator } from "../../typechain-types/governance/RelayerKeyRotator.sol/RelayerKeyRotator.js";
import { RELAYER_ROLE } from "../chain/roles.js";
import { KeyError } from "../keys/errors.js";

export interface RotatorChainOptions {
  readonly chain: string;
  readonly rpcUrl: string;
  readonly router: string;
  /** the RelayerKeyRotator's address */
  readonly rotator: string;
  /** the ROTATOR key (not connected) */
  readonly signer: SettlerSigner;
  readonly confirmations: number;
  /** wei a new key is topped up to before it is authorized (0: none) */
  readonly fundWei: bigint;
  readonly logger?: Logger;
}

const ROUTER_ABI = ["function hasRole(bytes32 role, address account) view returns (bool)"];

/** Sends of one rotator transaction whose nonce was taken or replaced, before it fails (each re-reads the chain). */
const NONCE_ATTEMPTS = 5;

/**
 * The one nonce sequence of a sender on a chain in this process: jobs run one after another (each sends one
 * transaction and waits for it to be mined, so the chain's `pending` count is the next nonce when the next job runs).
 */
export class NonceQueue {
  private static readonly queues = new Map<string, NonceQueue>();
  private tail: Promise<unknown> = Promise.resolve();

  /** The process's queue for `address` on chain `chainId` (shared by every RotatorChain of that key and chain). */
  static of(chainId: bigint, address: string): NonceQueue {
    const key = `${chainId}:${address.toLowerCase()}`;
    let queue = NonceQueue.queues.get(key);
    if (queue === undefined) NonceQueue.queues.set(key, (queue = new NonceQueue()));
    return queue;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job, job);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** The node took the nonce (mined or pending), or another transaction of the sender replaced this one. */
function nonceClash(error: unknown): boolean {
  if (isError(error, "NONCE_EXPIRED") || isError(error, "REPLACEMENT_UNDERPRICED") || isError(error, "TRANSACTION_REPLACED")) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /nonce too low|nonce has already been used|already known|known transaction|replacement transaction underpriced/i.test(message);
}

export class RotatorChain {
  readonly chain: string;
  readonly provider: JsonRpcProvider;
  private readonly contract: RelayerKeyRotator;
  private readonly router: Contract;
  private readonly wallet: SettlerSigner;
  private queue: NonceQueue | null = null;

  constructor(private readonly options: RotatorChainOptions) {
    this.chain = options.chain;
    // cacheTimeout -1: no answer shared between calls (ethers shares identical ones for 250 ms by default), so a
    // `pending` nonce or a hasRole read after a transaction is mined is the chain's, not the one from before it
    this.provider = new JsonRpcProvider(options.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 250, cacheTimeout: -1 });
    this.wallet = options.signer.connect(this.provider) as SettlerSigner;
    this.contract = RelayerKeyRotator__factory.connect(options.rotator, this.wallet);
    this.router = new Contract(options.router, ROUTER_ABI, this.provider);
  }

  get rotatorAddress(): string {
    return this.options.rotator;
  }

  async hasRelayerRole(address: string): Promise<boolean> {
    return (await this.router.getFunction("hasRole")(RELAYER_ROLE, address)) as boolean;
  }

  async liveKeys(): Promise<string[]> {
    return [...(await this.contract.liveKeys())];
  }

  async isManaged(address: string): Promise<boolean> {
    return this.contract.isManaged(address);
  }

  /** Unix seconds from which the rotator accepts the next addition (0: now). */
  async nextAddAt(): Promise<bigint> {
    return this.contract.nextAddAt();
  }

  async chainTime(): Promise<bigint> {
    return BigInt((await this.provider.getBlock("latest"))!.timestamp);
  }

  /** The key's mined and pending nonces: equal when nothing it sent is waiting in the node. */
  async nonces(address: string): Promise<{ latest: number; pending: number }> {
    const [latest, pending] = await Promise.all([this.provider.getTransactionCount(address, "latest"), this.provider.getTransactionCount(address, "pending")]);
    return { latest, pending };
  }

  /** Tops `address` up to the configured gas amount, then grants it RELAYER_ROLE through the rotator. */
  async authorize(address: string): Promise<"added" | "already"> {
    await this.fund(address);
    const sent = await this.send(`addKey(${address})`, async () => !(await this.hasRelayerRole(address)), () => this.contract.addKey.populateTransaction(address));
    if (sent === "done") return "already";
    this.options.logger?.info({ chain: this.chain, key: address }, "relayer key authorized through the rotator");
    return "added";
  }

  /** Revokes `address`'s RELAYER_ROLE through the rotator (skipped when it holds none). */
  async revoke(address: string, allowNone = false): Promise<"revoked" | "not-live"> {
    const sent = await this.send(`revokeKey(${address})`, () => this.hasRelayerRole(address), () => this.contract.revokeKey.populateTransaction(address, allowNone));
    if (sent === "done") return "not-live";
    this.options.logger?.info({ chain: this.chain, key: address }, "relayer key revoked through the rotator");
    return "revoked";
  }

  private async fund(address: string): Promise<void> {
    if (this.options.fundWei === 0n) return;
    // the amount is read again at each attempt: another sender may have topped it up meanwhile
    let missing = 0n;
    await this.send(
      `fund ${address}`,
      async () => (missing = this.options.fundWei - (await this.provider.getBalance(address))) > 0n,
      async () => ({ to: address, value: missing }),
    );
  }

  private async nonceQueue(): Promise<NonceQueue> {
    return (this.queue ??= NonceQueue.of((await this.provider.getNetwork()).chainId, this.wallet.address));
  }

  /**
   * Sends one rotator transaction through the key's queue, once `needed` (read from the chain) says it is still
   * needed, and waits for its confirmations: "done" when it was not needed (any more), "sent" when this call's
   * transaction was mined. A taken nonce or a replaced transaction is retried with a fresh nonce after `needed` is
   * read again; anything else fails (the rotation step is retried on the next tick).
   */
  private async send(what: string, needed: () => Promise<boolean>, request: () => Promise<TransactionRequest>): Promise<"sent" | "done"> {
    const queue = await this.nonceQueue();
    return queue.run(async () => {
      for (let attempt = 1; ; attempt++) {
        let nonce: number | null = null;
        try {
          if (!(await needed())) return "done";
          nonce = await this.provider.getTransactionCount(this.wallet.address, "pending");
          const tx = await this.wallet.sendTransaction({ ...(await request()), nonce });
          await tx.wait(this.options.confirmations);
          return "sent";
        } catch (error) {
          if (nonceClash(error) && attempt < NONCE_ATTEMPTS) {
            this.options.logger?.warn(
              { chain: this.chain, nonce, attempt, err: describeRevert(error, this.contract) },
              `the rotator's ${what}: its nonce was taken by another transaction of the rotator key; reading the chain again`,
            );
            await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
            continue;
          }
          // a revert because another sender did the same thing first (AlreadyLive, ...) is that thing done
          if (!(await needed().catch(() => true))) return "done";
          throw new KeyError("NOT_READY", `chain ${this.chain}: the rotator's ${what} failed: ${describeRevert(error, this.contract)}`, { cause: error });
        }
      }
    });
  }
}

/** A rotator or router revert by name and arguments, else the ethers error code (never a URL or a key). */
export function describeRevert(error: unknown, contract: RelayerKeyRotator): string {
  if (isError(error, "CALL_EXCEPTION")) {
    const data = error.data;
    if (typeof data === "string" && data.length >= 10) {
      const parsed = contract.interface.parseError(data);
      if (parsed !== null) return `${parsed.name}(${parsed.args.map(String).join(", ")})`;
    }
    return error.shortMessage;
  }
  if (error instanceof Error && "code" in error) return `${String((error as { code: unknown }).code)}: ${(error as { shortMessage?: string }).shortMessage ?? ""}`;
  return error instanceof Error ? error.message : String(error);
}
