/**
 * AccessControl role ids of the suite, as the contracts compute them (`keccak256("NAME")`, admin = zero).
 */
import { ZeroHash, id } from "ethers";

/** `AutoPayLLM` and `TimelockController`: the role that administers every other role (every governance power). */
export const DEFAULT_ADMIN_ROLE = ZeroHash;

/** `AutoPayLLM`: may submit batches (`settleBatchAt`, and the older `settleBatch`), nothing else. */
export const RELAYER_ROLE = id("RELAYER_ROLE");
/** `AutoPayLLM`: may resolve disputes until the arbiter deadline (the oracle adapter). */
export const ARBITER_ROLE = id("ARBITER_ROLE");
/** `AutoPayLLM`: may pause and unpause settlement and release; cannot move funds. */
export const PAUSER_ROLE = id("PAUSER_ROLE");

/** `TimelockController`: may schedule operations (the governor only). */
export const PROPOSER_ROLE = id("PROPOSER_ROLE");
/** `TimelockController`: may execute ready operations (the governor only). */
export const EXECUTOR_ROLE = id("EXECUTOR_ROLE");
/** `TimelockController`: may cancel pending operations (the governor only). */
export const CANCELLER_ROLE = id("CANCELLER_ROLE");

/** The `AutoPayLLM` roles governance may grant or revoke by name. */
export const SETTLEMENT_ROLES = {
  RELAYER: RELAYER_ROLE,
  ARBITER: ARBITER_ROLE,
  PAUSER: PAUSER_ROLE,
} as const;

export type SettlementRoleName = keyof typeof SETTLEMENT_ROLES;
