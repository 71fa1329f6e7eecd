/**
 * The rotation stage: one process (the holder of the rotation lease) rotates the relayer key on a schedule
 * (`settler.rotation.every`) and carries out `agentgpt keys revoke` requests, through the RelayerKeyRotator of every
 * chain. The key ring (key-ring.ts) is its state, so a crash at any instruction resumes where things stood:
 *
 *   create   the key factory makes a new key; the ring records it as `pending` before anything is sent
 *   add      fund it and `addKey` it on every chain (skipped where it already holds RELAYER_ROLE)
 *   switch   the ring makes it `active` and the old key `retiring`; every settler takes the new key between two
 *            passes (Settler.useKeys): the old key keeps its own in-flight transactions, signs nothing new, so there
 *            is no nonce gap and no transaction lost or sent twice
 *   revoke   once, on every chain, the settler reports the new key active, no batch is in flight on the old key
 *            (mined but not final counts as in flight) and the node holds nothing pending from it: `revokeKey`
 *   done     the ring forgets the old key
 *
 * The leaked-key drill (`keys revoke <address>`): a retiring or other managed key is revoked at once; the active key
 * is first replaced (create, add, switch as above, without waiting for the schedule), then revoked as soon as every
 * settler has moved, without waiting for its transactions: a transaction of it mined after the revocation reverts and
 * its batch goes back to the queue for the new key (a batch id settles once on chain: nothing is charged twice).
 * The fresh key is marked `drill` in the ring, so a drill interrupted after the switch and retried on the next tick
 * still finishes as the revocation of the key in use (the settler moved to the fresh key), not of a retiring one.
 */
import { getAddress } from "ethers";
import type { Logger } from "pino";

import type { Lease } from "../settler/lease.js";
import type { SettlementStore } from "../settler/settlement-store.js";
import { inFlightOn } from "../settler/settler.js";
import type { RelayerKeyFactory } from "./key-factory.js";
import type { KeyRing, KeyRingState, RevokeRequest, RingKey } from "./key-ring.js";
import type { RotatorChain } from "./rotator-chain.js";

export interface RotationChain {
  readonly rotator: RotatorChain;
  /** the chain's settlement ledger: which keys its settler signs with, which batches are in flight */
  readonly store: SettlementStore;
}

export interface RotationStageOptions {
  readonly ring: KeyRing;
  readonly lease: Lease;
  readonly factory: RelayerKeyFactory;
  readonly chains: readonly RotationChain[];
  /** the settler's configured key's address: the ring's first active key */
  readonly configuredAddress: () => Promise<string>;
  /** ms between rotations; null: never on schedule (the CLI, which only carries out revocations) */
  readonly everyMs: number | null;
  /** the lease's time to live (ms): renewed every third of it while a step runs */
  readonly leaseTtlMs: number;
  /** ms between ticks (default 2000) */
  readonly pollMs?: number;
  /** ms to wait for every settler to take the new key before a drill revokes the old one anyway (default 30 s) */
  readonly switchTimeoutMs?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

class LeaseLost extends Error {}

export class RotationStage {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: RotationStageOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.tick().catch((error: unknown) => {
        this.options.logger?.error({ err: error instanceof Error ? error.message : String(error) }, "rotation step failed; retried on the next tick");
      });
      await this.running;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.options.pollMs ?? 2000);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
    await this.options.lease.release().catch(() => undefined);
  }

  /** One step: take or renew the lease; finish a pending key; carry out one revoke request; rotate when due; drain. */
  async tick(): Promise<void> {
    if (!(await this.options.lease.acquire())) return;
    // a step can take longer than the lease (keys created, transactions confirmed): keep renewing it meanwhile
    const heartbeat = setInterval(() => void this.options.lease.acquire().catch(() => undefined), Math.max(100, Math.floor(this.options.leaseTtlMs / 3)));
    try {
      let ring = await this.ringOrInit();
      ring = await this.resumePending(ring);
      const request = await this.options.ring.nextRevokeRequest();
      if (request !== null) {
        await this.handleRevoke(ring, request);
        return;
      }
      if (this.options.everyMs !== null && (ring.rotateNow === true || this.now() - ring.active.since >= this.options.everyMs)) {
        ring = await this.rotate(ring);
      }
      await this.drain(ring);
    } catch (error) {
      if (error instanceof LeaseLost) {
        this.options.logger?.warn("rotation lease lost mid-step: another process carries on from the ring");
        return;
      }
      throw error;
    } finally {
      clearInterval(heartbeat);
    }
  }

  private checkLease(): void {
    if (!this.options.lease.held) throw new LeaseLost();
  }

  private async write(next: KeyRingState, expected: number): Promise<KeyRingState> {
    this.checkLease();
    if (!(await this.options.ring.compareAndSet(next, expected))) throw new LeaseLost();
    return next;
  }

  private async ringOrInit(): Promise<KeyRingState> {
    const ring = await this.options.ring.get();
    if (ring !== null) return ring;
    const first: KeyRingState = {
      generation: 1,
      active: { address: getAddress(await this.options.configuredAddress()), ref: { kind: "configured" }, since: this.now() },
      retiring: [],
      pending: null,
    };
    this.options.logger?.info({ active: first.active.address }, "key ring started from the configured signer");
    return this.write(first, -1);
  }

  /** Whether every chain's rotator accepts an addition now. */
  private async additionAllowed(): Promise<{ ok: true } | { ok: false; chain: string; at: bigint }> {
    for (const { rotator } of this.options.chains) {
      const [next, time] = await Promise.all([rotator.nextAddAt(), rotator.chainTime()]);
      // the next block's timestamp is at least one more than the latest's
      if (next > time + 1n) return { ok: false, chain: rotator.chain, at: next };
    }
    return { ok: true };
  }

  /** Creates a new key and records it as pending, then authorizes it and switches to it. */
  private async rotate(ring: KeyRingState): Promise<KeyRingState> {
    const waiting = ring.retiring.filter((key) => key.revoked !== true);
    if (waiting.length > 0) {
      this.options.logger?.debug?.({ retiring: waiting.map((k) => k.address) }, "rotation due, but the previous key is still draining");
      return ring;
    }
    const allowed = await this.additionAllowed();
    if (!allowed.ok) {
      this.options.logger?.info({ chain: allowed.chain, nextAddAt: Number(allowed.at) }, "rotation due, but the rotator's interval has not passed yet");
      return ring;
    }
    return this.replaceActive(ring);
  }

  private async replaceActive(ring: KeyRingState, drill = false): Promise<KeyRingState> {
    this.checkLease();
    const created = await this.options.factory.createRelayerKey();
    const pending: RingKey = { address: getAddress(created.address), ref: created.ref, since: this.now(), ...(drill ? { drill: true } : {}) };
    const withPending = await this.write({ ...ring, pending }, ring.generation);
    this.options.logger?.info({ key: pending.address }, "new relayer key created");
    return this.resumePending(withPending);
  }

  /** Authorizes the pending key on every chain, then makes it active and the old key retiring. */
  private async resumePending(ring: KeyRingState): Promise<KeyRingState> {
    const pending = ring.pending;
    if (pending === null) return ring;
    for (const { rotator } of this.options.chains) {
      this.checkLease();
      await rotator.authorize(pending.address);
    }
    const now = this.now();
    const next: KeyRingState = {
      generation: ring.generation + 1,
      active: { ...pending, since: now },
      retiring: [...ring.retiring, { ...ring.active, since: now }],
      pending: null,
      rotateNow: false,
    };
    const written = await this.write(next, ring.generation);
    this.options.logger?.info({ active: next.active.address, retiring: ring.active.address }, "settlers switch to the new relayer key; the old one drains");
    return written;
  }

  /** Whether the settler of every chain signs with the ring's active key and nothing is left on `address`. */
  private async drained(ring: KeyRingState, address: string): Promise<boolean> {
    for (const { rotator, store } of this.options.chains) {
      const signers = await store.signers();
      if (signers === null || signers.active !== ring.active.address) return false;
      if (inFlightOn(await store.active(), address).length > 0) return false;
      const { latest, pending } = await rotator.nonces(address);
      if (pending > latest) return false;
    }
    return true;
  }

  private async moved(ring: KeyRingState): Promise<boolean> {
    for (const { store } of this.options.chains) {
      const signers = await store.signers();
      if (signers === null || signers.active !== ring.active.address) return false;
    }
    return true;
  }

  /** Revokes every retiring key that is drained, and forgets it. */
  private async drain(ring: KeyRingState): Promise<KeyRingState> {
    let current = ring;
    for (const key of ring.retiring) {
      if (!(await this.drained(current, key.address))) continue;
      if (key.revoked !== true) await this.revokeEverywhere(key.address, false);
      current = await this.write(
        { ...current, generation: current.generation + 1, retiring: current.retiring.filter((k) => k.address !== key.address) },
        current.generation,
      );
      this.options.logger?.info({ key: key.address }, "old relayer key drained and revoked on every chain: rotation done");
    }
    return current;
  }

  private async revokeEverywhere(address: string, allowNone: boolean): Promise<number> {
    let revoked = 0;
    for (const { rotator } of this.options.chains) {
      this.checkLease();
      if ((await rotator.revoke(address, allowNone)) === "revoked") revoked++;
    }
    return revoked;
  }

  private async markRevoked(ring: KeyRingState, address: string): Promise<KeyRingState> {
    return this.write(
      { ...ring, generation: ring.generation + 1, retiring: ring.retiring.map((k) => (k.address === address ? { ...k, revoked: true } : k)) },
      ring.generation,
    );
  }

  private async handleRevoke(ring: KeyRingState, request: RevokeRequest): Promise<void> {
    const address = getAddress(request.address);
    const finish = async (ok: boolean, message: string, replacedBy?: string) => {
      this.checkLease();
      await this.options.ring.finishRevoke(request, { address, ok, message, at: this.now(), ...(replacedBy === undefined ? {} : { replacedBy }) });
      (ok ? this.options.logger?.warn.bind(this.options.logger) : this.options.logger?.error.bind(this.options.logger))?.({ key: address, replacedBy }, `keys revoke: ${message}`);
    };
    let current = ring;
    // a drill retried after its switch (a transaction failed or the lease was lost after the fresh key became active):
    // the key was the one in use when asked, and was replaced for this request; it is finished as such, not as a
    // retiring key, so the outcome names the key the settler moved to
    const replacedForIt = current.active.drill === true && current.retiring.at(-1)?.address === address;
    if (current.active.address === address || replacedForIt) {
      if (!replacedForIt) {
        const allowed = await this.additionAllowed();
        if (!allowed.ok) {
          if (!request.allowNone) {
            await finish(
              false,
              `${address} is the settler's active key and the rotator on chain ${allowed.chain} accepts no new key before ` +
                `${new Date(Number(allowed.at) * 1000).toISOString()} (its minimum interval): run again then, or with --allow-none ` +
                "to revoke it now (settlement stops until the replacement is allowed; receipts stay queued), or ask a guardian to pause",
            );
            return;
          }
          await this.revokeEverywhere(address, true);
          await this.write({ ...current, generation: current.generation + 1, active: { ...current.active, revoked: true }, rotateNow: true }, current.generation);
          await finish(true, `revoked on every chain with no replacement yet: the rotation stage adds a fresh key from ${new Date(Number(allowed.at) * 1000).toISOString()}`);
          return;
        }
        // a key still draining from the last rotation would make three live keys with the fresh one (over N = 2): the
        // settler signs nothing new with it, so revoke it now (a transaction of it mined later reverts, its batch is
        // queued again for the active key: nothing is lost, nothing charged twice)
        for (const key of current.retiring) {
          if (key.revoked === true) continue;
          await this.revokeEverywhere(key.address, false);
          current = await this.markRevoked(current, key.address);
        }
        current = await this.replaceActive(current, true);
      }
      // wait (bounded) until every settler signs with the fresh key, so nothing new is signed with the leaked one
      const deadline = this.now() + (this.options.switchTimeoutMs ?? 30_000);
      while (!(await this.moved(current)) && this.now() < deadline) {
        this.checkLease();
        await new Promise((resolve) => setTimeout(resolve, 200));
        await this.options.lease.acquire();
      }
      await this.revokeEverywhere(address, false);
      await this.markRevoked(current, address);
      await finish(true, `revoked on every chain; the settler moved to ${current.active.address}`, current.active.address);
      return;
    }
    if (current.retiring.some((k) => k.address === address)) {
      await this.revokeEverywhere(address, false);
      await this.markRevoked(current, address);
      await finish(true, "revoked on every chain (it was retiring: the settler no longer signs with it)");
      return;
    }
    // a key the rotator manages but the ring does not know: adopted by governance, or added with a leaked ROTATOR key
    const managed = [];
    for (const { rotator } of this.options.chains) if (await rotator.isManaged(address)) managed.push(rotator);
    if (managed.length === 0) {
      await finish(
        false,
        `${address} is not a key the rotator manages on any chain: only governance can revoke it ` +
          `(agentgpt governance propose relayer-key --revoke ${address})`,
      );
      return;
    }
    let revoked = 0;
    for (const rotator of managed) {
      this.checkLease();
      if ((await rotator.revoke(address, false)) === "revoked") revoked++;
    }
    await finish(true, `revoked on ${revoked} chain(s) (a key the rotator manages but the settler does not use)`);
  }
}
