/**
 * `agentgpt keys revoke <address>` as a function: queue the revocation in the key ring and wait for its outcome,
 * doing the work in this process when no relayer holds the rotation lease (then releasing the lease at the end).
 */
import { getAddress } from "ethers";

import { KeyError } from "../keys/errors.js";
import type { RevokeOutcome } from "./key-ring.js";
import type { RotationSetup } from "./setup.js";

export interface RevokeKeyOptions {
  /** revoke the active key even when no replacement is allowed yet */
  readonly allowNone?: boolean;
  readonly timeoutMs: number;
  /** told once the request is queued */
  readonly onQueued?: () => void;
}

export async function revokeRelayerKey(rotation: RotationSetup, address: string, options: RevokeKeyOptions): Promise<RevokeOutcome> {
  const key = getAddress(address);
  await rotation.ring.requestRevoke(key, options.allowNone === true);
  options.onQueued?.();
  const deadline = Date.now() + options.timeoutMs;
  try {
    for (;;) {
      // takes the rotation lease when no relayer holds it, and then does the work itself
      await rotation.stage.tick();
      const outcome = await rotation.ring.revokeOutcome(key);
      if (outcome !== null) return outcome;
      if (Date.now() > deadline) {
        throw new KeyError(
          "NOT_READY",
          `no outcome after ${Math.round(options.timeoutMs / 1000)} s: the request stays queued; is a relayer with settler.rotation running? (agentgpt keys revoke again waits for it)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await rotation.stage.stop();
    await rotation.close();
  }
}
