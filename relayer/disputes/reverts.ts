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

/** Turns a revert of `dispute`, `requestVerification` or `approve` into a DisputeError (else returns the error). */
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
    case "AutoPayLLMWindowClosed":
      return fail("WINDOW_CLOSED", `the dispute window of batch ${String(a)} closed at ${isoTime(b as bigint)}: it can no longer be disputed`);
    case "AutoPayLLMBatchNotEscrowed":
      return fail("BATCH_RELEASED", `batch ${String(a)} is not in escrow any more (released): too late to dispute`);
    case "AutoPayLLMNotRowPayer":
      return fail("NOT_PAYER", `only the row's payer ${String(b)} may dispute it; the signer is ${String(a)}: sign with the payer's key`);
    case "AutoPayLLMAlreadyDisputed":
      return fail("ALREADY_DISPUTED", `row ${String(b)} of batch ${String(a)} was already disputed: see \`agentgpt dispute status\``);
    case "AutoPayLLMInvalidProof":
      return fail("BATCH_FILE_MISMATCH", `the chain refused the row's Merkle proof: the batch file does not match batch ${String(a)}`);
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
      return fail("VERIFICATION_REFUSED", `row ${String(b)} of batch ${String(a)} has no open dispute to verify`);
    case "UsageOracleNotRequester":
      return fail("VERIFICATION_REFUSED", `only the row's payer ${String(b)} or a REQUESTER_ROLE account may request verification; the signer is ${String(a)}`);
    case "UsageOracleDeadlinePassed":
      return fail("VERIFICATION_REFUSED", `the oracle's deadline for this dispute passed at ${isoTime(c as bigint)}: governance resolves it now`);
    case "UsageOracleRequestPending":
      return fail(
        "VERIFICATION_REFUSED",
        `a verification request (${String(c)}) is still in flight; a retry is allowed from ${isoTime(revert.args[3] as bigint)}`,
      );
    case "UsageOracleTooManyAttempts":
      return fail("VERIFICATION_REFUSED", `the oracle was asked ${String(c)} times for this dispute (the most it allows): governance resolves it`);
    case "UsageOracleInvalidRow":
      return fail("BATCH_FILE_MISMATCH", `the oracle refused the row (${String(a)}, ${String(b)}): its charge or proof does not match the dispute`);
    case "AutoPayLLMInsufficientDeposit":
      return fail("BOND_NOT_COVERED", `the deposit of ${String(a)} holds ${formatTokenAmount(b as bigint, unit)}, short of ${formatTokenAmount(c as bigint, unit)}`);
    default:
      return fail("REVERTED", `the contract refused: ${revert.name}(${revert.args.map(String).join(", ")}); nothing was sent`);
  }
}
