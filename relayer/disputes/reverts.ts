/**
 * The one place where a reverted dispute or verification call becomes a message for people. Branches on the custom
 * error's name as decoded by the contract's ABI (never on message text); what is not known here is reported with its
 * name and arguments.
 */
import { isError } from "ethers";

import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import { DisputeError, type DisputeErrorCode } from "./errors.js";

const FAILURES = ["None", "FunctionsError", "MalformedResponse", "DisputeClosed", "DeadlinePassed"] as const;

export function failureReasonName(reason: number | bigint): string {
  return FAILURES[Number(reason)] ?? `reason ${reason}`;
}

export function isoTime(seconds: bigint | number): string {
  const value = BigInt(seconds);
  if (value > 253_402_300_799n) return "not before the L2 sequencer is back up";
  return new Date(Number(value) * 1000).toISOString();
}

/** The decoded custom error of a reverted call (`null` when the error is not a revert with known data). */
export function revertOf(error: unknown): { name: string; args: readonly unknown[] } | null {
  if (!isError(error, "CALL_EXCEPTION") || error.revert == null) return null;
  return { name: error.revert.name, args: [...error.revert.args] };
}

/**
 * Turns a revert of `dispute`, `settleExpiredDispute`, `resolveDispute`, `requestVerification` or `approve` into a
 * DisputeError (else returns the error).
 */
export function explainRevert(error: unknown, unit: TokenUnit): unknown {
  const revert = revertOf(error);
  if (revert === null) {
    if (isError(error, "CALL_EXCEPTION")) {
      return new DisputeError("REVERTED", `the transaction would revert (${error.shortMessage}); nothing was sent`, { cause: error });
    }
    return error;
  }
  const [a, b, c] = revert.args;
  const fail = (code: DisputeErrorCode, message: string) => new DisputeError(code, message, { cause: error });
  switch (revert.name) {
    case "AutoPayLLMBatchNotEscrowed":
      return fail("BATCH_RELEASED", `batch ${String(a)} is not in escrow any more (released): too late to hold its rows`);
    case "AutoPayLLMNotRowPayer":
      return fail("NOT_PAYER", `only the payer ${String(b)} may dispute its usage; the signer is ${String(a)}: sign with the payer's key`);
    case "AutoPayLLMInvalidProof":
      return fail("BATCH_FILE_MISMATCH", `the chain refused the Merkle proof of row ${String(b)} of batch ${String(a)}: the rows read do not match the batch`);
    case "AutoPayLLMUnknownBatch":
      return fail("UNKNOWN_BATCH", `batch ${String(a)} is not settled on this router: check the network and the router address`);
    case "AutoPayLLMNoDisputeRows":
      return fail("NO_ROW", "a dispute names at least one settled row");
    case "AutoPayLLMTooManyDisputeRows":
      return fail("INVALID_INPUT", `the interval has ${String(a)} settled rows; one dispute names at most ${String(b)}`);
    case "AutoPayLLMRowsNotOrdered":
      return fail("INVALID_INPUT", `row ${String(a)} of the dispute is out of order (rows must be sorted by batch id as a number, then index): nothing was sent`);
    case "AutoPayLLMRowOutsideInterval":
      return fail("INVALID_INPUT", `row ${String(a)} of the dispute is not of the same payer, provider, model and usage bucket as the first: nothing was sent`);
    case "AutoPayLLMNothingToHold":
      return fail("WINDOW_CLOSED", "no named row can be held (every batch released, its window closed, or its rows held by an earlier dispute): it can no longer be disputed");
    case "AutoPayLLMIntervalDisputeOpen":
      return fail("ALREADY_DISPUTED", `this interval already has an open dispute ${String(a)}: follow it with \`agentgpt dispute status --id ${String(a)}\``);
    case "AutoPayLLMDisputeNotOpen":
      return fail("DISPUTE_CLOSED", `dispute ${String(a)} is not open (never opened, or resolved or expired already): see \`agentgpt dispute status --id ${String(a)}\``);
    case "AutoPayLLMDisputeNotExpired":
      return fail("NOT_EXPIRED", `dispute ${String(a)} may be settled as expired only from ${isoTime(b as bigint)} (its governance deadline)`);
    case "AutoPayLLMNotResolver":
      return fail(
        "NOT_RESOLVER",
        `${String(a)} may not resolve this dispute: the oracle (ARBITER_ROLE) until ${isoTime(b as bigint)}, governance (DEFAULT_ADMIN_ROLE, through its proposal) until ${isoTime(c as bigint)}`,
      );
    case "AutoPayLLMOverbilledTooLarge":
      return fail("INVALID_INPUT", `overbilled tokens ${String(a)} exceed the ${String(b)} tokens the dispute holds`);
    case "SafeERC20FailedOperation":
    case "ERC20InsufficientAllowance":
    case "ERC20InsufficientBalance":
      return fail(
        "BOND_NOT_COVERED",
        "the bond could not be collected: the payer's deposit plus what the router may pull (allowance, wallet) is short; " +
          "deposit more or approve the router (--approve-bond)",
      );
    case "EnforcedPause":
      return fail("REVERTED", "the router is paused");
    case "UsageOracleNotConfigured":
      return fail(
        "VERIFICATION_REFUSED",
        "the UsageOracle is not configured yet (Functions subscription, DON, source or usage API): governance must set it up; " +
          "until then governance resolves the dispute",
      );
    case "UsageOracleDisputeNotOpen":
      return fail("VERIFICATION_REFUSED", `dispute ${String(a)} is not open: nothing to verify`);
    case "UsageOracleDeadlinePassed":
      return fail("VERIFICATION_REFUSED", `the oracle's deadline for dispute ${String(a)} passed at ${isoTime(b as bigint)}: governance resolves it now`);
    case "UsageOracleRequestPending":
      return fail(
        "VERIFICATION_REFUSED",
        /^0x0+$/.test(String(b))
          ? `the oracle was asked for dispute ${String(a)} recently (retries are spaced by its request timeout); a retry is allowed from ${isoTime(c as bigint)}`
          : `a verification request (${String(b)}) is still in flight; a retry is allowed from ${isoTime(c as bigint)}`,
      );
    case "UsageOracleTooManyAttempts":
      return fail("VERIFICATION_REFUSED", `the oracle was asked ${String(b)} times for dispute ${String(a)} (the most it allows): governance resolves it`);
    case "AutoPayLLMInsufficientDeposit":
      return fail("BOND_NOT_COVERED", `the deposit of ${String(a)} holds ${formatTokenAmount(b as bigint, unit)}, short of ${formatTokenAmount(c as bigint, unit)}`);
    default:
      return fail("REVERTED", `the contract refused: ${revert.name}(${revert.args.map(String).join(", ")}); nothing was sent`);
  }
}
