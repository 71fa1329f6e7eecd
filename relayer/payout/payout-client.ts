/**
 * Getting providers paid: release the escrow of batches whose dispute window closed (anyone may; a batch another
 * host released meanwhile is skipped, not an error), and let a provider's payee see and withdraw its credits.
 */
import { isError, type Signer } from "ethers";

import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import type { Suite } from "../chain/index.js";
import type { AutoPayLLM } from "../../typechain-types/index.js";
import { PayoutError } from "./errors.js";
import { scanEscrow, type EscrowScan } from "./escrow-scan.js";

export interface ProviderCredits {
  readonly id: number;
  readonly name: string;
  readonly payee: string;
  /** released to the provider and not withdrawn yet (token units) */
  readonly credits: bigint;
}

export interface ReleaseResult {
  readonly batchId: string;
  /** null when the batch was released by someone else first (nothing sent) */
  readonly hash: string | null;
  readonly amount: bigint;
}

export class PayoutClient {
  constructor(
    private readonly suite: Suite,
    private readonly signer: Signer | null,
    private readonly confirmations = 1,
  ) {}

  get unit(): TokenUnit {
    return this.suite.paymentUnit;
  }

  private get router(): AutoPayLLM {
    return this.suite.autoPayLLM;
  }

  /** Every registered provider with its payee and credits, or the one named. */
  async credits(name?: string): Promise<ProviderCredits[]> {
    if (name !== undefined) return [await this.provider(name)];
    const count = Number(await this.router.providerCount());
    const out: ProviderCredits[] = [];
    for (let id = 1; id <= count; id++) out.push(await this.providerById(id));
    return out;
  }

  /** Pays provider `name`'s credits to its payee; the signer must be that payee. */
  async withdraw(name: string, account: string): Promise<{ hash: string; amount: bigint; payee: string }> {
    const provider = await this.provider(name);
    if (provider.payee.toLowerCase() !== account.toLowerCase()) {
      throw new PayoutError(
        "NOT_PAYEE",
        `only ${name}'s payee ${provider.payee} may withdraw its credits; the signer is ${account} ` +
          "(sign with the payee's key, or change the payee by governance)",
      );
    }
    if (provider.credits === 0n) {
      throw new PayoutError("NOTHING_TO_WITHDRAW", `${name} has no credits yet: batches are credited when released after their dispute window`);
    }
    const tx = await this.router.connect(this.requireSigner()).withdrawCredits(provider.id);
    await this.confirmed(tx);
    return { hash: tx.hash, amount: provider.credits, payee: provider.payee };
  }

  /** Batches settled since `fromBlock` (and `known` ones) still in escrow, the releasable ones first. */
  scan(fromBlock = 0, known: readonly string[] = []): Promise<EscrowScan> {
    return scanEscrow(this.router, fromBlock, known);
  }

  /**
   * Releases batch `batchId`. A batch released by someone else first (several hosts may run this) is reported
   * with `hash: null`; any other refusal (window open, paused) is thrown as the router's error.
   */
  async release(batchId: string): Promise<ReleaseResult> {
    const router = this.router.connect(this.requireSigner());
    try {
      await router.release.estimateGas(batchId);
    } catch (error) {
      const info = await this.router.batchInfo(batchId);
      if (Number(info.status) === 2) return { batchId, hash: null, amount: 0n };
      throw error;
    }
    let tx;
    try {
      tx = await router.release(batchId);
    } catch (error) {
      // Lost a race between estimate and send: released by another host.
      if (isError(error, "CALL_EXCEPTION") && Number((await this.router.batchInfo(batchId)).status) === 2) {
        return { batchId, hash: null, amount: 0n };
      }
      throw error;
    }
    const receipt = await this.confirmed(tx);
    let amount = 0n;
    for (const log of receipt.logs) {
      const parsed = this.router.interface.parseLog(log);
      if (parsed?.name === "BatchReleased") amount = parsed.args.amount as bigint;
    }
    return { batchId, hash: tx.hash, amount };
  }

  format(amount: bigint): string {
    return formatTokenAmount(amount, this.unit);
  }

  private async provider(name: string): Promise<ProviderCredits> {
    const id = Number(await this.router.providerId(name));
    if (id === 0) {
      const known = (await this.credits()).map((p) => p.name);
      throw new PayoutError(
        "UNKNOWN_PROVIDER",
        `--provider "${name}" is not registered on this router (registered: ${known.join(", ") || "none"})`,
      );
    }
    return this.providerById(id);
  }

  private async providerById(id: number): Promise<ProviderCredits> {
    const [[name, payee], credits] = await Promise.all([this.router.providerInfo(id), this.router.credits(id)]);
    return { id, name, payee, credits };
  }

  private requireSigner(): Signer {
    if (this.signer === null) throw new PayoutError("TRANSACTION_FAILED", "this needs a signer: pass --keystore, --key-env or --node-account");
    return this.signer;
  }

  private async confirmed(tx: { hash: string; wait(confirms?: number): Promise<unknown> }) {
    const receipt = (await tx.wait(this.confirmations)) as { status?: number | null; logs: readonly { topics: readonly string[]; data: string }[] } | null;
    if (receipt === null || receipt.status !== 1) throw new PayoutError("TRANSACTION_FAILED", `transaction ${tx.hash} failed on-chain`);
    return receipt as { logs: Parameters<AutoPayLLM["interface"]["parseLog"]>[0][] };
  }
}
