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
  /**
   * hands the keys to every settler that follows the ring; `applied` is called once every one of them signs with
   * them (Settler.useKeys's release): the keys the ring dropped are closed then (their PKCS#11 sessions, KMS clients)
   */
  readonly apply: (active: SettlerSigner, retiring: SettlerSigner[], ring: KeyRingState, applied: () => void) => Promise<void>;
  readonly pollMs: number;
  readonly logger?: Logger;
}

export class KeyFollower {
  private applied = -1;
  private readonly wallets = new Map<string, SettlerSigner>();
  /** keys the ring dropped, waiting for every settler to stop using them before they are closed */
  private readonly unclosed = new Set<SettlerSigner>();
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
    // keys the ring no longer lists are never needed again: forgotten now, closed once no settler uses them
    const listed = new Set([ring.active.address, ...ring.retiring.map((k) => k.address)]);
    const dropped: SettlerSigner[] = [];
    for (const [address, wallet] of this.wallets) {
      if (listed.has(address)) continue;
      this.wallets.delete(address);
      dropped.push(wallet);
      this.unclosed.add(wallet);
    }
    await this.options.apply(active, retiring, ring, () => {
      for (const wallet of dropped) void this.closeKey(wallet);
    });
    this.applied = ring.generation;
    return true;
  }

  /**
   * Closes every key this follower opened (a device session per PKCS#11 key, however many rotations ago it was
   * opened): after the settlers stopped, as the runtime's last step.
   */
  async closeKeys(): Promise<void> {
    const all = [...this.wallets.values(), ...this.unclosed];
    this.wallets.clear();
    await Promise.all(all.map((wallet) => this.closeKey(wallet)));
  }

  private async closeKey(wallet: SettlerSigner): Promise<void> {
    this.unclosed.delete(wallet);
    const closable = wallet as SettlerSigner & { close?: () => Promise<void> };
    try {
      await closable.close?.();
    } catch (error) {
      this.options.logger?.warn({ key: wallet.address, err: error instanceof Error ? error.message : String(error) }, "closing a relayer key the ring dropped failed");
    }
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
