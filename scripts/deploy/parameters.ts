/**
 * The deployment parameters of one network (`deploy/parameters/<network>.json5`): read, validated and turned into
 * the suite's graph options and Ignition's parameters, before anything is sent. Unknown keys are errors (a typo in
 * `timelockDelay` must not silently deploy the default), and so are values that break the suite's rules.
 */
import { getAddress, isAddress, ZeroAddress } from "ethers";
import { z } from "zod";

import type { DeploymentParameters } from "@nomicfoundation/ignition-core";

import { DEFAULT_INITIAL_SUPPLY } from "../../deploy/modules/AGPTToken.js";
import type { SuiteOptions } from "../../deploy/modules/AgentGPT.js";
import { DEFAULT_DISPUTE_WINDOW } from "../../deploy/modules/AutoPayLLM.js";
import { GOVERNANCE_DEFAULTS } from "../../deploy/modules/Governance.js";
import { AGPT_UNIT } from "../../relayer/chain/index.js";
import { AmountError, formatTokenAmount, parseTokenAmount } from "../../relayer/config/amount.js";

/** `AutoPayLLM.MIN_DISPUTE_WINDOW` and `MAX_DISPUTE_WINDOW`. */
export const MIN_DISPUTE_WINDOW = 60;
export const MAX_DISPUTE_WINDOW = 30 * 24 * 3600;

/** The parameters, checked and with every default filled in. */
export interface SuiteParameters {
  holder?: string;
  initialSupply: bigint;
  /** An existing ERC-20 to settle in; undefined: the fresh AGPT. */
  paymentToken?: string;
  disputeWindow: number;
  votingDelay: number;
  votingPeriod: number;
  proposalThreshold: bigint;
  quorumPercent: number;
  timelockDelay: number;
  relayer?: string;
  guardian?: string;
  /** The chain's Chainlink Functions router: deploy the oracle adapter on it. */
  functionsRouter?: string;
}

export class ParameterError extends Error {
  override readonly name = "ParameterError";
}

const address = z
  .string()
  .refine((value) => isAddress(value) && getAddress(value) !== ZeroAddress, {
    message: "must be a non-zero address (0x followed by 40 hex digits)",
  })
  .transform((value) => getAddress(value));

// "100000 AGPT" (exact, 18 decimals), or token units as Ignition writes bigints ("100000000000000000000000n").
const agptAmount = z.union([z.bigint().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === "bigint") return value;
  try {
    return parseTokenAmount(value, AGPT_UNIT);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: error instanceof AmountError ? error.message : String(error) });
    return z.NEVER;
  }
});

const quantity = (n: number, unit: string) => `${n} ${n === 1 ? unit.replace(/s$/, "") : unit}`;
const int = (min: number, max: number, unit: string) =>
  z
    .number({ error: `must be a whole number of ${unit}` })
    .int(`must be a whole number of ${unit}`)
    .min(min, { message: `must be at least ${quantity(min, unit)}` })
    .max(max, { message: `must be at most ${quantity(max, unit)}` });

const schema = z.strictObject({
  AGPTToken: z.strictObject({ holder: address.optional(), initialSupply: agptAmount.optional() }).optional(),
  AutoPayLLM: z
    .strictObject({
      paymentToken: address.optional(),
      disputeWindow: int(MIN_DISPUTE_WINDOW, MAX_DISPUTE_WINDOW, "seconds").optional(),
    })
    .optional(),
  Governance: z
    .strictObject({
      votingDelay: int(0, 2 ** 48 - 1, "blocks").optional(),
      votingPeriod: int(1, 2 ** 32 - 1, "blocks").optional(),
      proposalThreshold: agptAmount.optional(),
      quorumPercent: int(1, 100, "percent").optional(),
      timelockDelay: int(1, 365 * 24 * 3600, "seconds").optional(),
    })
    .optional(),
  RelayerRole: z.strictObject({ relayer: address }).optional(),
  GuardianRole: z.strictObject({ guardian: address }).optional(),
  UsageOracle: z.strictObject({ functionsRouter: address }).optional(),
});

/**
 * Validates raw parameters (as read by Ignition's reader: JSON5, `"<n>n"` strings already bigints).
 *
 * @param source the file name, for messages
 * @throws ParameterError listing every problem, each as `<Module>.<parameter>: <what is wrong and the fix>`.
 */
export function checkParameters(raw: unknown, source: string): SuiteParameters {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      if (issue.code === "unrecognized_keys") {
        const where = issue.path.length === 0 ? "" : `${issue.path.join(".")}.`;
        return `unknown parameter ${issue.keys.map((key) => where + key).join(", ")} (misspelt?)`;
      }
      return `${issue.path.join(".")}: ${issue.message}`;
    });
    throw new ParameterError(`invalid deployment parameters in ${source}:\n  - ${problems.join("\n  - ")}`);
  }
  const p = parsed.data;
  const params: SuiteParameters = {
    holder: p.AGPTToken?.holder,
    initialSupply: p.AGPTToken?.initialSupply ?? DEFAULT_INITIAL_SUPPLY,
    paymentToken: p.AutoPayLLM?.paymentToken,
    disputeWindow: p.AutoPayLLM?.disputeWindow ?? DEFAULT_DISPUTE_WINDOW,
    votingDelay: p.Governance?.votingDelay ?? GOVERNANCE_DEFAULTS.votingDelay,
    votingPeriod: p.Governance?.votingPeriod ?? GOVERNANCE_DEFAULTS.votingPeriod,
    proposalThreshold: p.Governance?.proposalThreshold ?? GOVERNANCE_DEFAULTS.proposalThreshold,
    quorumPercent: p.Governance?.quorumPercent ?? GOVERNANCE_DEFAULTS.quorumPercent,
    timelockDelay: p.Governance?.timelockDelay ?? GOVERNANCE_DEFAULTS.timelockDelay,
    relayer: p.RelayerRole?.relayer,
    guardian: p.GuardianRole?.guardian,
    functionsRouter: p.UsageOracle?.functionsRouter,
  };

  const problems: string[] = [];
  if (params.timelockDelay <= params.disputeWindow) {
    problems.push(
      `Governance.timelockDelay (${params.timelockDelay} s) must be longer than AutoPayLLM.disputeWindow ` +
        `(${params.disputeWindow} s${p.AutoPayLLM?.disputeWindow === undefined ? ", the default" : ""}), so a ` +
        `governance change never lands inside an open dispute window: raise timelockDelay above ` +
        `${params.disputeWindow} or shorten disputeWindow`,
    );
  }
  if (params.initialSupply === 0n) {
    problems.push("AGPTToken.initialSupply: must be positive (AGPT has a fixed supply minted once)");
  }
  if (params.proposalThreshold > params.initialSupply) {
    problems.push(
      `Governance.proposalThreshold (${formatTokenAmount(params.proposalThreshold, AGPT_UNIT)}) exceeds ` +
        `AGPTToken.initialSupply (${formatTokenAmount(params.initialSupply, AGPT_UNIT)}): nobody could ever propose`,
    );
  }
  if (problems.length > 0) {
    throw new ParameterError(`invalid deployment parameters in ${source}:\n  - ${problems.join("\n  - ")}`);
  }
  return params;
}

/** The graph options and Ignition parameters for checked parameters. */
export function toIgnition(params: SuiteParameters): { options: SuiteOptions; parameters: DeploymentParameters } {
  const parameters: DeploymentParameters = {
    AGPTToken: {
      initialSupply: params.initialSupply,
      ...(params.holder === undefined ? {} : { holder: params.holder }),
    },
    AutoPayLLM: {
      disputeWindow: params.disputeWindow,
      ...(params.paymentToken === undefined ? {} : { paymentToken: params.paymentToken }),
    },
    Governance: {
      votingDelay: params.votingDelay,
      votingPeriod: params.votingPeriod,
      proposalThreshold: params.proposalThreshold,
      quorumPercent: params.quorumPercent,
      timelockDelay: params.timelockDelay,
    },
  };
  if (params.relayer !== undefined) parameters.RelayerRole = { relayer: params.relayer };
  if (params.guardian !== undefined) parameters.GuardianRole = { guardian: params.guardian };
  if (params.functionsRouter !== undefined) parameters.UsageOracle = { functionsRouter: params.functionsRouter };
  return {
    options: {
      paymentToken: params.paymentToken === undefined ? "fresh" : "existing",
      relayer: params.relayer !== undefined,
      guardian: params.guardian !== undefined,
      oracle: params.functionsRouter !== undefined,
    },
    parameters,
  };
}
