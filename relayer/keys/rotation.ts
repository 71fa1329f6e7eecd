/**
 * Rotating the relayer's signing key without stopping settlement. The state of a rotation is read, never stored:
 * from the chain (roles, nonces, gas), the configuration (active and retiring signer) and the settler's ledger
 * (which keys the live settler signs with, which batches are in flight on which key). From it follows the one next
 * step, so `agentgpt keys rotate` can be run again at any point and picks up where things stand:
 *
 *   grant   the new key lacks RELAYER_ROLE: grant it (directly when the caller is the router's admin, else a
 *           governance proposal, prepared for the caller)
 *   switch  the configuration still signs with the old key: make the new key the signer and the old one `retiring:`
 *   reload  the running settler has not taken the new key yet: SIGHUP the relayer (or restart it)
 *   drain   batches are still in flight on the old key (the settler finishes them with it), or the old key has
 *           transactions pending in the node: wait
 *   revoke  the old key is drained but still holds RELAYER_ROLE: revoke it (directly, or by proposal)
 *   done    the old key holds no role: drop `retiring:` from the configuration
 */
import type { SettlementRecord, SettlerSigners } from "../settler/settlement-store.js";
import { inFlightOn } from "../settler/settler.js";

export type RotationPhase = "grant" | "switch" | "reload" | "drain" | "revoke" | "done";

export interface RotationView {
  readonly chain: string;
  readonly router: string;
  /** the key being replaced */
  readonly old: string;
  /** the key replacing it */
  readonly next: string;
  readonly newHasRole: boolean;
  readonly oldHasRole: boolean;
  /** the new key's gas balance (wei) */
  readonly newBalance: bigint;
  /** the configuration's active signer and retiring key */
  readonly configActive: string;
  readonly configRetiring: string | null;
  /** what the settler holding the lease last reported (null: nothing yet) */
  readonly live: SettlerSigners | null;
  /** ledger batches in flight on the old key */
  readonly inFlightOld: readonly SettlementRecord[];
  readonly oldLatestNonce: number;
  readonly oldPendingNonce: number;
}

export function rotationPhase(view: RotationView): RotationPhase {
  if (!view.newHasRole) return "grant";
  if (view.configActive !== view.next) return "switch";
  if (view.live === null || view.live.active !== view.next) return "reload";
  if (!view.oldHasRole) return "done";
  if (view.inFlightOld.length > 0 || view.oldPendingNonce > view.oldLatestNonce) return "drain";
  return "revoke";
}

/** Ledger batches in flight on `address` (re-exported for callers that hold only this module). */
export function inFlightOnKey(records: readonly SettlementRecord[], address: string): SettlementRecord[] {
  return inFlightOn(records, address);
}

/** The YAML that makes `next` the signer and `old` the retiring key, for the config section at `at`. */
export function switchSnippet(
  at: string,
  next: { keystore: string | null; passwordEnv: string; passwordFile?: string | null },
  old: { keystore: string | null; passwordEnv: string; passwordFile?: string | null; keyEnv?: string | undefined },
): string {
  const path = at.split(".");
  const lines: string[] = [];
  path.forEach((part, depth) => lines.push(`${"  ".repeat(depth)}${part}:`));
  const indent = "  ".repeat(path.length);
  lines.push(`${indent}keystore: ${next.keystore ?? "<the new keystore>"}`);
  lines.push(next.passwordFile == null ? `${indent}password_env: ${next.passwordEnv}` : `${indent}password_file: ${next.passwordFile}`);
  lines.push(`${indent}retiring:              # the key being replaced: finishes its own batches, signs nothing new`);
  if (old.keystore !== null) {
    lines.push(`${indent}  keystore: ${old.keystore}`);
    lines.push(old.passwordFile == null ? `${indent}  password_env: ${old.passwordEnv}` : `${indent}  password_file: ${old.passwordFile}`);
  } else {
    lines.push(`${indent}  key_env: ${old.keyEnv ?? "<the variable holding the old development key>"}`);
  }
  return lines.join("\n");
}
