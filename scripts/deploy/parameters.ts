/**
 * The deployment parameters of one network (`deploy/parameters/<network>.json5`): read, validated and turned into
 * the suite's graph options and Ignition's parameters, before anything is sent. Unknown keys are errors (a typo in
 * `timelockDelay` must not silently deploy the default), and so are values that break the suite's rules:
 *
 * - the timelock delay exceeds the dispute window plus the sequencer grace period (what `AgentGovernor` checks
 *   on-chain: a governance change never lands inside an open window);
 * - governance has time to judge a dispute the oracle did not answer: `disputeTimeouts.governance` exceeds the whole
 *   proposal path (voting delay + voting period, in blocks, times the network's `blockTime`, plus the timelock
 *   delay) plus the margin {@link governanceMargin};
 * - the oracle's retries fit in the arbiter's time, and disputes cost a bond where an oracle answers them;
 * - the AGPT supply goes where `AGPTToken.allocations` says, someone outside the treasury can propose and reach the
 *   quorum, and (checked by {@link checkDeployerShare} once the deployer is known) on a public network the deployer
 *   keeps at most `AGPTToken.maxDeployerShare` of the supply;
 * - the providers and models the network starts with (`AutoPayLLM.providers`, `AutoPayLLM.models`) are well formed:
 *   names of 1 to 64 bytes, listed once, non-zero payees, positive price caps, amounts that fit the contract.
 */
import { getAddress, isAddress, ZeroAddress } from "ethers";
import { z } from "zod";

import type { DeploymentParameters } from "@nomicfoundation/ignition-core";

import { DEFAULT_INITIAL_SUPPLY } from "../../deploy/modules/AGPTToken.js";
import type { AllocationTarget, SuiteOptions } from "../../deploy/modules/AgentGPT.js";
import { DEFAULT_DISPUTE_WINDOW, DISPUTE_DEFAULTS } from "../../deploy/modules/AutoPayLLM.js";
import { GOVERNANCE_DEFAULTS } from "../../deploy/modules/Governance.js";
import { VERIFICATION_DEFAULTS } from "../../deploy/modules/UsageOracle.js";
import type { RegistryEntries } from "../../deploy/modules/Registry.js";
import { AGPT_UNIT } from "../../relayer/chain/index.js";
import { AmountError, formatTokenAmount, parsePricePer1k, parseTokenAmount } from "../../relayer/config/amount.js";

/** `AutoPayLLM.MIN_DISPUTE_WINDOW` and `MAX_DISPUTE_WINDOW`. */
export const MIN_DISPUTE_WINDOW = 60;
export const MAX_DISPUTE_WINDOW = 30 * 24 * 3600;
/** `AutoPayLLM.MIN_TIMEOUT` and `MAX_TIMEOUT` (arbiter and governance timeouts). */
export const MIN_TIMEOUT = 3600;
export const MAX_TIMEOUT = 90 * 24 * 3600;
/** `AutoPayLLM.MIN_USAGE_BUCKET`, `MAX_USAGE_BUCKET` (and a bucket must divide a day). */
export const MIN_USAGE_BUCKET = 60;
export const MAX_USAGE_BUCKET = 86_400;
/** `AutoPayLLM.MAX_SEQUENCER_GRACE`. */
export const MAX_SEQUENCER_GRACE = 7 * 24 * 3600;
/** `UsageOracle.MIN_REQUEST_TIMEOUT`, `MAX_REQUEST_TIMEOUT`, `MAX_ATTEMPTS`, `MAX_TOLERANCE_BPS`. */
export const MIN_REQUEST_TIMEOUT = 300;
export const MAX_REQUEST_TIMEOUT = 86_400;
export const MAX_ATTEMPTS = 10;
export const MAX_TOLERANCE_BPS = 1000;
/** `AutoPayLLM.MAX_NAME_LENGTH` (bytes of a provider or model name). */
export const MAX_NAME_LENGTH = 64;
const UINT128_MAX = (1n << 128n) - 1n;
/** The smallest margin governance keeps after the proposal path (seconds): see {@link governanceMargin}. */
export const MIN_GOVERNANCE_MARGIN = 3600;
/** `AGPTToken.maxDeployerShare` when the parameters do not say: the deployer keeps nothing on a public network. */
export const DEFAULT_MAX_DEPLOYER_SHARE_BPS = 0;

/** Where a share of the AGPT supply goes: an address, the timelock (the treasury governance spends), the deployer. */
export interface Allocation {
  to: string | "timelock" | "deployer";
  /** Token units; "rest" in the file is resolved to what the other entries leave. */
  amount: bigint;
}

/** The parameters, checked and with every default filled in. */
export interface SuiteParameters {
  /** Minted to the deployer, then handed out as `allocations` say; what no entry takes stays with the deployer. */
  initialSupply: bigint;
  allocations: Allocation[];
  /** The most of the supply (basis points) the deployer may keep on a non-local network. */
  maxDeployerShareBps: number;
  /** An existing ERC-20 to settle in; undefined: the fresh AGPT. */
  paymentToken?: string;
  disputeWindow: number;
  /** Seconds; batches commit the bucket their calls started in, disputes compare one bucket. */
  usageBucket: number;
  /** Payment-token units: the fixed part of a dispute's bond. */
  disputeBond: bigint;
  arbiterTimeout: number;
  governanceTimeout: number;
  /** L2 sequencer-uptime feed and the grace period after an outage (seconds; 0 without a feed). */
  sequencerUptimeFeed?: string;
  sequencerGracePeriod: number;
  /** Seconds per tick of the governance clock (AGPT block numbers; on Arbitrum the L1 block number). */
  blockTime: number;
  votingDelay: number;
  votingPeriod: number;
  proposalThreshold: bigint;
  quorumPercent: number;
  timelockDelay: number;
  relayer?: string;
  /** RelayerKeyRotator: the ROTATOR key's address and the limits (deploy the rotator when set). */
  rotator?: { rotator: string; maxKeys: number; minInterval: number };
  guardian?: string;
  /** The chain's Chainlink Functions router: deploy the oracle adapter on it. */
  functionsRouter?: string;
  /** The oracle's verification settings (used only with `functionsRouter`). */
  verification: { requestTimeout: number; maxAttempts: number; toleranceBps: number };
  /** Providers and priced models registered before the hand-over, so rows are billable at once. */
  registry: RegistryEntries;
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

// "1%", "0.5%", "0%": a share of the supply, in basis points.
const share = z.string().transform((value, ctx) => {
  const match = /^\s*(\d{1,3})(?:\.(\d{1,2}))?\s*%\s*$/.exec(value);
  const bps = match === null ? NaN : Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
  if (!(bps >= 0 && bps <= 10_000)) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a share of the supply: write e.g. "0%" or "1%"` });
    return z.NEVER;
  }
  return bps;
});

const target = z.string().transform((value, ctx) => {
  if (value === "timelock" || value === "deployer") return value;
  if (isAddress(value) && getAddress(value) !== ZeroAddress) return getAddress(value);
  ctx.addIssue({
    code: "custom",
    message: `"${value}" is not a holder: write its address (0x followed by 40 hex digits), "timelock" or "deployer"`,
  });
  return z.NEVER;
});

const registryName = z.string({ error: "must be a name in quotes, as LiteLLM reports it" }).refine(
  (name) => {
    const length = new TextEncoder().encode(name).length;
    return length >= 1 && length <= MAX_NAME_LENGTH && name.trim() === name;
  },
  { message: `must be 1 to ${MAX_NAME_LENGTH} bytes, without leading or trailing spaces` },
);

const quantity = (n: number, unit: string) => `${n} ${n === 1 ? unit.replace(/s$/, "") : unit}`;
const int = (min: number, max: number, unit: string) =>
  z
    .number({ error: `must be a whole number of ${unit}` })
    .int(`must be a whole number of ${unit}`)
    .min(min, { message: `must be at least ${quantity(min, unit)}` })
    .max(max, { message: `must be at most ${quantity(max, unit)}` });

const schema = z.strictObject({
  AGPTToken: z
    .strictObject({
      initialSupply: agptAmount.optional(),
      allocations: z
        .array(z.strictObject({ to: target, amount: z.union([z.literal("rest"), agptAmount]) }))
        .optional(),
      maxDeployerShare: share.optional(),
    })
    .optional(),
  AutoPayLLM: z
    .strictObject({
      paymentToken: address.optional(),
      disputeWindow: int(MIN_DISPUTE_WINDOW, MAX_DISPUTE_WINDOW, "seconds").optional(),
      usageBucket: int(MIN_USAGE_BUCKET, MAX_USAGE_BUCKET, "seconds")
        .refine((seconds) => 86_400 % seconds === 0, { message: "must divide a day (86400 s), e.g. 60, 900, 3600" })
        .optional(),
      disputeBond: z.union([z.bigint().nonnegative(), z.string()]).optional(),
      disputeTimeouts: z
        .strictObject({
          arbiter: int(MIN_TIMEOUT, MAX_TIMEOUT, "seconds"),
          governance: int(MIN_TIMEOUT, MAX_TIMEOUT, "seconds"),
        })
        .optional(),
      sequencerUptimeFeed: address.optional(),
      sequencerGracePeriod: int(0, MAX_SEQUENCER_GRACE, "seconds").optional(),
      providers: z.array(z.strictObject({ name: registryName, payee: address })).optional(),
      models: z
        .array(
          z.strictObject({
            name: registryName,
            maxPrice: z.union([z.bigint(), z.string()]),
            dailyBudget: z.union([z.bigint(), z.string()]).optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  Governance: z.strictObject({
    blockTime: z
      .number({ error: "required: seconds per block of the governance clock (Arbitrum: 12, the L1 block; Polygon: 2)" })
      .positive("must be a positive number of seconds")
      .max(3600, "must be at most 3600 seconds"),
    votingDelay: int(0, 2 ** 48 - 1, "blocks").optional(),
    votingPeriod: int(1, 2 ** 32 - 1, "blocks").optional(),
    proposalThreshold: agptAmount.optional(),
    quorumPercent: int(1, 100, "percent").optional(),
    timelockDelay: int(1, 365 * 24 * 3600, "seconds").optional(),
  }),
  RelayerRole: z.strictObject({ relayer: address }).optional(),
  RelayerKeyRotator: z
    .strictObject({
      rotator: address,
      maxKeys: int(1, 8, "keys").optional(),
      minInterval: int(0, 30 * 24 * 3600, "seconds").optional(),
    })
    .optional(),
  GuardianRole: z.strictObject({ guardian: address }).optional(),
  UsageOracle: z
    .strictObject({
      functionsRouter: address,
      requestTimeout: int(MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT, "seconds").optional(),
      maxAttempts: int(1, MAX_ATTEMPTS, "attempts").optional(),
      toleranceBps: int(0, MAX_TOLERANCE_BPS, "basis points").optional(),
    })
    .optional(),
});

/** Seconds the whole proposal path takes at the parameters' pace: voting delay + period (blocks) and the timelock. */
export function proposalPathSeconds(p: Pick<SuiteParameters, "blockTime" | "votingDelay" | "votingPeriod" | "timelockDelay">): number {
  return Math.ceil((p.votingDelay + p.votingPeriod) * p.blockTime) + p.timelockDelay;
}

/**
 * The margin governance keeps after the proposal path before a dispute's governance deadline (seconds): a fifth of
 * the path, at least {@link MIN_GOVERNANCE_MARGIN}. It covers blocks up to 20 % slower than `blockTime`, the time
 * to notice that the oracle failed and to submit the proposal, and the propose, vote, queue and execute transactions.
 */
export function governanceMargin(p: Pick<SuiteParameters, "blockTime" | "votingDelay" | "votingPeriod" | "timelockDelay">): number {
  return Math.max(MIN_GOVERNANCE_MARGIN, Math.ceil(proposalPathSeconds(p) / 5));
}

/**
 * Validates raw parameters (as read by Ignition's reader: JSON5, `"<n>n"` strings already bigints).
 *
 * @param source the file name, for messages
 * @throws ParameterError listing every problem, each as `<Module>.<parameter>: <what is wrong and the fix>`.
 */
export function checkParameters(raw: unknown, source: string): SuiteParameters {
  const parsed = schema.safeParse(raw);
  const fail = (problems: string[]): never => {
    throw new ParameterError(`invalid deployment parameters in ${source}:\n  - ${problems.join("\n  - ")}`);
  };
  if (!parsed.success) {
    fail(
      parsed.error.issues.map((issue) => {
        if (issue.code === "unrecognized_keys") {
          const where = issue.path.length === 0 ? "" : `${issue.path.join(".")}.`;
          return `unknown parameter ${issue.keys.map((key) => where + key).join(", ")} (misspelt?)`;
        }
        if (issue.path.length === 1 && issue.path[0] === "Governance") {
          return "Governance: required (at least blockTime: seconds per block of the governance clock)";
        }
        return `${issue.path.map((part) => (typeof part === "number" ? `[${part}]` : String(part))).join(".").replace(/\.\[/g, "[")}: ${issue.message}`;
      }),
    );
  }
  const p = parsed.data!;
  const problems: string[] = [];

  const initialSupply = p.AGPTToken?.initialSupply ?? DEFAULT_INITIAL_SUPPLY;
  const allocations: Allocation[] = [];
  const entries = p.AGPTToken?.allocations ?? [];
  const listed = entries.reduce((sum, entry) => sum + (entry.amount === "rest" ? 0n : entry.amount), 0n);
  const rests = entries.filter((entry) => entry.amount === "rest").length;
  if (rests > 1) problems.push('AGPTToken.allocations: at most one entry may take "rest"');
  if (listed > initialSupply) {
    problems.push(
      `AGPTToken.allocations hand out ${formatTokenAmount(listed, AGPT_UNIT)}, more than AGPTToken.initialSupply ` +
        `(${formatTokenAmount(initialSupply, AGPT_UNIT)}): lower the amounts or raise the supply`,
    );
  }
  for (const entry of entries) {
    const amount = entry.amount === "rest" ? (listed > initialSupply ? 0n : initialSupply - listed) : entry.amount;
    if (amount === 0n) {
      problems.push(`AGPTToken.allocations: the entry for ${entry.to} gets nothing: remove it or give it an amount`);
    }
    allocations.push({ to: entry.to, amount });
  }

  let disputeBond: bigint = DISPUTE_DEFAULTS.disputeBond;
  const rawBond = p.AutoPayLLM?.disputeBond;
  if (typeof rawBond === "bigint") {
    disputeBond = rawBond;
  } else if (rawBond !== undefined) {
    if (p.AutoPayLLM?.paymentToken !== undefined) {
      problems.push(
        `AutoPayLLM.disputeBond: settling in an existing token, give the bond in its units as a bigint ("5000000n")`,
      );
    } else {
      try {
        disputeBond = parseTokenAmount(rawBond, AGPT_UNIT);
      } catch (error) {
        problems.push(`AutoPayLLM.disputeBond: ${error instanceof AmountError ? error.message : String(error)}`);
      }
    }
  } else if (p.AutoPayLLM?.paymentToken !== undefined) {
    problems.push(
      "AutoPayLLM.disputeBond: required with an existing paymentToken, in its units as a bigint (\"5000000n\"): " +
        "enough to pay the oracle's Functions requests of one dispute",
    );
  }

  const registry = checkRegistry(p.AutoPayLLM, problems);

  const params: SuiteParameters = {
    initialSupply,
    allocations,
    maxDeployerShareBps: p.AGPTToken?.maxDeployerShare ?? DEFAULT_MAX_DEPLOYER_SHARE_BPS,
    paymentToken: p.AutoPayLLM?.paymentToken,
    disputeWindow: p.AutoPayLLM?.disputeWindow ?? DEFAULT_DISPUTE_WINDOW,
    usageBucket: p.AutoPayLLM?.usageBucket ?? DISPUTE_DEFAULTS.usageBucket,
    disputeBond,
    arbiterTimeout: p.AutoPayLLM?.disputeTimeouts?.arbiter ?? DISPUTE_DEFAULTS.arbiterTimeout,
    governanceTimeout: p.AutoPayLLM?.disputeTimeouts?.governance ?? DISPUTE_DEFAULTS.governanceTimeout,
    sequencerUptimeFeed: p.AutoPayLLM?.sequencerUptimeFeed,
    sequencerGracePeriod: p.AutoPayLLM?.sequencerGracePeriod ?? 0,
    blockTime: p.Governance.blockTime,
    votingDelay: p.Governance.votingDelay ?? GOVERNANCE_DEFAULTS.votingDelay,
    votingPeriod: p.Governance.votingPeriod ?? GOVERNANCE_DEFAULTS.votingPeriod,
    proposalThreshold: p.Governance.proposalThreshold ?? GOVERNANCE_DEFAULTS.proposalThreshold,
    quorumPercent: p.Governance.quorumPercent ?? GOVERNANCE_DEFAULTS.quorumPercent,
    timelockDelay: p.Governance.timelockDelay ?? GOVERNANCE_DEFAULTS.timelockDelay,
    relayer: p.RelayerRole?.relayer,
    ...(p.RelayerKeyRotator === undefined
      ? {}
      : { rotator: { rotator: p.RelayerKeyRotator.rotator, maxKeys: p.RelayerKeyRotator.maxKeys ?? 2, minInterval: p.RelayerKeyRotator.minInterval ?? 3600 } }),
    guardian: p.GuardianRole?.guardian,
    functionsRouter: p.UsageOracle?.functionsRouter,
    verification: {
      requestTimeout: p.UsageOracle?.requestTimeout ?? VERIFICATION_DEFAULTS.requestTimeout,
      maxAttempts: p.UsageOracle?.maxAttempts ?? VERIFICATION_DEFAULTS.maxAttempts,
      toleranceBps: p.UsageOracle?.toleranceBps ?? VERIFICATION_DEFAULTS.toleranceBps,
    },
    registry,
  };

  // The timelock against the longest a dispute window can last (what AgentGovernor checks on-chain).
  if (params.sequencerGracePeriod > 0 && params.sequencerUptimeFeed === undefined) {
    problems.push(
      "AutoPayLLM.sequencerGracePeriod: needs AutoPayLLM.sequencerUptimeFeed (the grace period follows an outage " +
        "the feed reports): name the feed or remove the grace period",
    );
  }
  const longestWindow = params.disputeWindow + params.sequencerGracePeriod;
  if (params.timelockDelay <= longestWindow) {
    const grace = params.sequencerGracePeriod;
    problems.push(
      `Governance.timelockDelay (${params.timelockDelay} s) must be longer than AutoPayLLM.disputeWindow ` +
        `(${params.disputeWindow} s${p.AutoPayLLM?.disputeWindow === undefined ? ", the default" : ""})` +
        (grace > 0 ? ` + AutoPayLLM.sequencerGracePeriod (${grace} s) = ${longestWindow} s` : "") +
        `, so a governance change never lands inside an open dispute window: raise timelockDelay above ` +
        `${longestWindow} or shorten disputeWindow${grace > 0 ? " or sequencerGracePeriod" : ""}`,
    );
  }

  // Governance has time to judge a dispute nobody else answered (the default after its deadline: the charge stands).
  const path = proposalPathSeconds(params);
  const margin = governanceMargin(params);
  if (params.governanceTimeout < path + margin) {
    problems.push(
      `AutoPayLLM.disputeTimeouts.governance (${params.governanceTimeout} s` +
        `${p.AutoPayLLM?.disputeTimeouts === undefined ? ", the default" : ""}) leaves governance no time to ` +
        `resolve a dispute the oracle did not answer: the proposal path takes (votingDelay ${params.votingDelay} + ` +
        `votingPeriod ${params.votingPeriod} blocks) x blockTime ${params.blockTime} s + timelockDelay ` +
        `${params.timelockDelay} s = ${path} s, plus a margin of ${margin} s (a fifth of the path, at least ` +
        `${MIN_GOVERNANCE_MARGIN} s): raise disputeTimeouts.governance to at least ${path + margin} or shorten ` +
        "votingDelay, votingPeriod or timelockDelay",
    );
  }

  if (params.functionsRouter !== undefined) {
    const retries = params.verification.maxAttempts * params.verification.requestTimeout;
    if (params.arbiterTimeout <= retries) {
      problems.push(
        `AutoPayLLM.disputeTimeouts.arbiter (${params.arbiterTimeout} s) must leave the oracle all its attempts: ` +
          `UsageOracle.maxAttempts ${params.verification.maxAttempts} x requestTimeout ` +
          `${params.verification.requestTimeout} s = ${retries} s: raise the arbiter timeout or lower the attempts`,
      );
    }
    if (params.disputeBond === 0n) {
      problems.push(
        "AutoPayLLM.disputeBond: must be positive where an oracle answers disputes: each dispute costs up to " +
          "UsageOracle.maxAttempts Chainlink Functions requests, which the bond pays for when the dispute is wrong",
      );
    }
  }

  if (initialSupply === 0n) {
    problems.push("AGPTToken.initialSupply: must be positive (AGPT has a fixed supply minted once)");
  }
  if (params.proposalThreshold > initialSupply) {
    problems.push(
      `Governance.proposalThreshold (${formatTokenAmount(params.proposalThreshold, AGPT_UNIT)}) exceeds ` +
        `AGPTToken.initialSupply (${formatTokenAmount(initialSupply, AGPT_UNIT)}): nobody could ever propose`,
    );
  }
  // Votes exist only outside the treasury: the timelock cannot delegate its AGPT without a vote.
  const voting = new Map<string, bigint>();
  voting.set("deployer", initialSupply - allocations.reduce((sum, a) => sum + a.amount, 0n));
  for (const a of allocations) if (a.to !== "timelock") voting.set(a.to, (voting.get(a.to) ?? 0n) + a.amount);
  const outside = [...voting.values()].reduce((sum, amount) => sum + amount, 0n);
  const quorum = (initialSupply * BigInt(params.quorumPercent)) / 100n;
  if (initialSupply > 0n && outside < quorum) {
    problems.push(
      `AGPTToken.allocations leave ${formatTokenAmount(outside, AGPT_UNIT)} outside the timelock, below the quorum ` +
        `(Governance.quorumPercent ${params.quorumPercent} % = ${formatTokenAmount(quorum, AGPT_UNIT)}): no ` +
        "proposal could ever pass. List holders that together hold at least the quorum",
    );
  }
  const largest = [...voting.values()].reduce((max, amount) => (amount > max ? amount : max), 0n);
  if (initialSupply > 0n && largest < params.proposalThreshold && params.proposalThreshold <= initialSupply) {
    problems.push(
      `AGPTToken.allocations give nobody outside the timelock the proposal threshold ` +
        `(${formatTokenAmount(params.proposalThreshold, AGPT_UNIT)}): nobody could propose. Give one holder at least that`,
    );
  }

  if (problems.length > 0) fail(problems);
  return params;
}

type RawSettlement = NonNullable<z.infer<typeof schema>["AutoPayLLM"]>;

/**
 * The providers and models of `AutoPayLLM.providers` / `AutoPayLLM.models`, amounts in payment-token units: with the
 * fresh AGPT, prices like "0.12 AGPT/1k tokens" and budgets like "500 AGPT"; with an existing `paymentToken`, bigints
 * in its units ("120000n"). Problems are pushed as `AutoPayLLM.models[1].maxPrice: <what is wrong and the fix>`.
 */
function checkRegistry(raw: RawSettlement | undefined, problems: string[]): RegistryEntries {
  const existingToken = raw?.paymentToken !== undefined;
  const providers = (raw?.providers ?? []).map((entry) => ({ name: entry.name, payee: entry.payee }));
  const seen = new Map<string, number>();
  providers.forEach((provider, i) => {
    const first = seen.get(provider.name);
    if (first !== undefined) {
      problems.push(
        `AutoPayLLM.providers[${i}].name: "${provider.name}" is listed twice (also providers[${first}]): a provider ` +
          "is registered once; remove one entry",
      );
    }
    seen.set(provider.name, i);
  });

  const amount = (field: string, value: bigint | string, kind: "price" | "budget"): bigint | undefined => {
    if (typeof value === "bigint") {
      if (value < 0n || value > UINT128_MAX) {
        problems.push(`${field}: ${value} token units is out of range (0 to 2^128 - 1)`);
        return undefined;
      }
      return value;
    }
    if (existingToken) {
      problems.push(
        `${field}: settling in an existing AutoPayLLM.paymentToken, give it in that token's units as a bigint ` +
          `("120000n")${kind === "price" ? " per 1k tokens" : " per UTC day"}`,
      );
      return undefined;
    }
    try {
      const units = kind === "price" ? parsePricePer1k(value, AGPT_UNIT) : parseTokenAmount(value, AGPT_UNIT);
      if (units > UINT128_MAX) {
        problems.push(`${field}: "${value}" is more than the contract holds (2^128 - 1 token units)`);
        return undefined;
      }
      return units;
    } catch (error) {
      problems.push(`${field}: ${error instanceof AmountError ? error.message : String(error)}`);
      return undefined;
    }
  };

  const models: RegistryEntries["models"][number][] = [];
  const seenModels = new Map<string, number>();
  (raw?.models ?? []).forEach((entry, i) => {
    const where = `AutoPayLLM.models[${i}]`;
    const first = seenModels.get(entry.name);
    if (first !== undefined) {
      problems.push(`${where}.name: "${entry.name}" is listed twice (also models[${first}]): merge the two entries`);
    }
    seenModels.set(entry.name, i);
    const maxPricePer1k = amount(`${where}.maxPrice`, entry.maxPrice, "price");
    if (maxPricePer1k === 0n) {
      problems.push(
        `${where}.maxPrice: must be positive: a model is billable only with a price cap (remove the entry to leave ` +
          `"${entry.name}" unpriced)`,
      );
    }
    const dailyBudget = entry.dailyBudget === undefined ? 0n : amount(`${where}.dailyBudget`, entry.dailyBudget, "budget");
    if (maxPricePer1k !== undefined && dailyBudget !== undefined) {
      models.push({ name: entry.name, maxPricePer1k, dailyBudget });
    }
  });
  return { providers, models };
}

/** What the deployer keeps of the supply: the part no allocation takes, and the entries naming it. */
export function deployerKeeps(params: SuiteParameters, deployer: string): bigint {
  const handedOut = params.allocations.reduce((sum, a) => sum + a.amount, 0n);
  const named = params.allocations
    .filter((a) => a.to === "deployer" || a.to.toLowerCase() === deployer.toLowerCase())
    .reduce((sum, a) => sum + a.amount, 0n);
  return params.initialSupply - handedOut + named;
}

/**
 * On a non-local network, refuses parameters that leave the deployer more than `AGPTToken.maxDeployerShare` of the
 * supply (its votes, once delegated): governance must not start in one key's hands.
 */
export function checkDeployerShare(params: SuiteParameters, deployer: string, local: boolean, source: string): void {
  if (local) return;
  const kept = deployerKeeps(params, deployer);
  const max = (params.initialSupply * BigInt(params.maxDeployerShareBps)) / 10_000n;
  if (kept > max) {
    throw new ParameterError(
      `invalid deployment parameters in ${source}:\n  - AGPTToken.allocations leave the deployer ${deployer} ` +
        `${formatTokenAmount(kept, AGPT_UNIT)} of ${formatTokenAmount(params.initialSupply, AGPT_UNIT)}, more than ` +
        `AGPTToken.maxDeployerShare (${params.maxDeployerShareBps / 100} %): allocate the supply to its holders, ` +
        `e.g. { to: "timelock", amount: "rest" } for the treasury`,
    );
  }
}

/**
 * The graph options and Ignition parameters for checked parameters. Allocations naming the deployer (by keyword or,
 * with `deployer`, by address) are not sent: the deployer already holds the supply.
 */
export function toIgnition(
  params: SuiteParameters,
  deployer?: string,
): { options: SuiteOptions; parameters: DeploymentParameters } {
  const sent = params.allocations.filter(
    (a) => a.to !== "deployer" && (deployer === undefined || a.to.toLowerCase() !== deployer.toLowerCase()),
  );
  const allocationParameters: Record<string, string | bigint> = {};
  sent.forEach((a, i) => {
    if (a.to !== "timelock") allocationParameters[`to${i}`] = a.to;
    allocationParameters[`amount${i}`] = a.amount;
  });
  const parameters: DeploymentParameters = {
    AGPTToken: { initialSupply: params.initialSupply },
    AutoPayLLM: {
      disputeWindow: params.disputeWindow,
      usageBucket: params.usageBucket,
      disputeBond: params.disputeBond,
      arbiterTimeout: params.arbiterTimeout,
      governanceTimeout: params.governanceTimeout,
      ...(params.paymentToken === undefined ? {} : { paymentToken: params.paymentToken }),
      ...(params.sequencerUptimeFeed === undefined
        ? {}
        : { sequencerUptimeFeed: params.sequencerUptimeFeed, sequencerGracePeriod: params.sequencerGracePeriod }),
    },
    Governance: {
      votingDelay: params.votingDelay,
      votingPeriod: params.votingPeriod,
      proposalThreshold: params.proposalThreshold,
      quorumPercent: params.quorumPercent,
      timelockDelay: params.timelockDelay,
    },
  };
  if (sent.length > 0) parameters.AGPTAllocations = allocationParameters;
  if (params.relayer !== undefined) parameters.RelayerRole = { relayer: params.relayer };
  if (params.rotator !== undefined) {
    parameters.RelayerKeyRotator = {
      ...params.rotator,
      ...(params.relayer === undefined ? {} : { adopt: params.relayer }),
    };
  }
  if (params.guardian !== undefined) parameters.GuardianRole = { guardian: params.guardian };
  if (params.functionsRouter !== undefined) {
    parameters.UsageOracle = { functionsRouter: params.functionsRouter, ...params.verification };
  }
  const allocations: AllocationTarget[] = sent.map((a) => (a.to === "timelock" ? "timelock" : "account"));
  return {
    options: {
      paymentToken: params.paymentToken === undefined ? "fresh" : "existing",
      relayer: params.relayer !== undefined,
      rotator: params.rotator !== undefined,
      guardian: params.guardian !== undefined,
      oracle: params.functionsRouter !== undefined,
      sequencerFeed: params.sequencerUptimeFeed !== undefined,
      allocations,
      registry: params.registry,
    },
    parameters,
  };
}
