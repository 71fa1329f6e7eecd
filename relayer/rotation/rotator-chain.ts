/**
 * One chain's RelayerKeyRotator, driven by the ROTATOR key: authorize a new relayer key (fund it with gas, then
 * `addKey`), revoke one (`revokeKey`), and the reads a rotation decides on. Every write is idempotent by reading
 * the router first (a key already holding RELAYER_ROLE is not added again, one without it is not revoked), so a
 * rotation interrupted at any point is simply run again.
 */
import { Contract, JsonRpcProvider, isError } from "ethers";

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

export class RotatorChain {
  readonly chain: string;
  readonly provider: JsonRpcProvider;
  private readonly contract: RelayerKeyRotator;
  private readonly router: Contract;

  constructor(private readonly options: RotatorChainOptions) {
    this.chain = options.chain;
    this.provider = new JsonRpcProvider(options.rpcUrl, undefined, { staticNetwork: true, pollingInterval: 250 });
    this.contract = RelayerKeyRotator__factory.connect(options.rotator, options.signer.connect(this.provider));
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
    if (await this.hasRelayerRole(address)) return "already";
    await this.send(() => this.contract.addKey(address), `addKey(${address})`);
    this.options.logger?.info({ chain: this.chain, key: address }, "relayer key authorized through the rotator");
    return "added";
  }

  /** Revokes `address`'s RELAYER_ROLE through the rotator (skipped when it holds none). */
  async revoke(address: string, allowNone = false): Promise<"revoked" | "not-live"> {
    if (!(await this.hasRelayerRole(address))) return "not-live";
    await this.send(() => this.contract.revokeKey(address, allowNone), `revokeKey(${address})`);
    this.options.logger?.info({ chain: this.chain, key: address }, "relayer key revoked through the rotator");
    return "revoked";
  }

  private async fund(address: string): Promise<void> {
    if (this.options.fundWei === 0n) return;
    const balance = await this.provider.getBalance(address);
    if (balance >= this.options.fundWei) return;
    const signer = this.options.signer.connect(this.provider);
    await this.send(() => signer.sendTransaction({ to: address, value: this.options.fundWei - balance }), `fund ${address}`);
  }

  private async send(call: () => Promise<{ wait(confirmations?: number): Promise<unknown> }>, what: string): Promise<void> {
    try {
      const tx = await call();
      await tx.wait(this.options.confirmations);
    } catch (error) {
      throw new KeyError("NOT_READY", `chain ${this.chain}: the rotator's ${what} failed: ${describeRevert(error, this.contract)}`, { cause: error });
    }
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
