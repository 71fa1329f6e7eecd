/**
 * Makes a settlement process follow the key ring: when the ring's generation moves, its keys are opened (once per
 * address, then cached) and handed to the settlers, which take them between two passes (Settler.useKeys), the same
 * path as a SIGHUP reload. Runs in every settlement process, so a standby that takes a settler lease over signs with
 * the ring's key, not the one its configuration named at start.
 */
import type { SettlerSigner } from "../keys/signers/device-signer.js";
import type { Logger } from "pino";

import type { KeyRing, KeyRingState, RingKey } from "./key-ring.js";

export interface KeyFollowerOptions {
  readonly ring: KeyRing;
  /** opens a ring key for signing */
  readonly open: (key: RingKey) => Promise<SettlerSigner>;
  /** hands the keys to every settler that follows the ring */
  readonly apply: (active: SettlerSigner, retiring: SettlerSigner[], ring: KeyRingState) => Promise<void>;
  readonly pollMs: number;
  readonly logger?: Logger;
}

export class KeyFollower {
  private applied = -1;
  private readonly wallets = new Map<string, SettlerSigner>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly options: KeyFollowerOptions) {}

  /** Applies the ring if it moved since the last call (or always, with `force`); true when keys were handed over. */
  async sync(force = false): Promise<boolean> {
    const ring = await this.options.ring.get();
    if (ring === null || (ring.generation === this.applied && !force)) return false;
    const active = await this.wallet(ring.active);
    const retiring: SettlerSigner[] = [];
    for (const key of ring.retiring) retiring.push(await this.wallet(key));
    await this.options.apply(active, retiring, ring);
    this.applied = ring.generation;
    // forget keys the ring no longer lists: they are never needed again
    const listed = new Set([ring.active.address, ...ring.retiring.map((k) => k.address)]);
    for (const address of this.wallets.keys()) if (!listed.has(address)) this.wallets.delete(address);
    return true;
  }

  start(): void {
    const loop = async () => {
      this.running = this.sync()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.options.logger?.error({ err: error instanceof Error ? error.message : String(error) }, "cannot follow the key ring; retried");
        });
      await this.running;
      if (this.timer !== null) this.timer = setTimeout(() => void loop(), this.options.pollMs);
    };
    this.timer = setTimeout(() => void loop(), this.options.pollMs);
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = null;
    if (timer !== null) clearTimeout(timer);
    await this.running;
  }

  private async wallet(key: RingKey): Promise<SettlerSigner> {
    let wallet = this.wallets.get(key.address);
    if (wallet === undefined) {
      wallet = await this.options.open(key);
      if (wallet.address !== key.address) throw new Error(`key ring: ${key.address} opened as ${wallet.address}; the ring or the key file is wrong`);
      this.wallets.set(key.address, wallet);
    }
    return wallet;
  }
}
