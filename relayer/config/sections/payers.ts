/**
 * `payers:` who pays for a call. Rules are tried in order; the first that matches the call and yields a wallet
 * wins. A rule matches when every selector it names equals the call's value (a selector may list several
 * values); `any: true` matches every call. It yields either a fixed `payer`, or a wallet read from the call's
 * metadata (`wallet_from`), which must be in `allowed` unless `allow_any: true` says that callers may bill any
 * wallet they name.
 *
 * Why the allow list: `spend_logs_metadata` and `requester_metadata` can be set by whoever sends the request
 * to LiteLLM, so a caller could otherwise name somebody else's wallet and spend its deposit.
 *
 * ```yaml
 * payers:
 *   - key_alias: prod-backend            # LiteLLM virtual key alias (metadata.user_api_key_alias)
 *     payer: "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
 *   - team_id: [research, ml-platform]   # also: key_hash, user_id, end_user
 *     payer: "0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2"
 *   - key_alias: partner-gateway
 *     wallet_from: [spend_logs_metadata.wallet, requester_metadata.wallet]
 *     allowed: ["0x4B20993Bc481177ec7E8f571ceCaE8A9e22C02db"]
 *   - any: true                          # a catch-all payer, if you want one
 *     payer: "0x78731D3Ca6b7E34aC0F824c42a7cC18A495cabaB"
 * ```
 */
import { z } from "zod";

import { payerAddress } from "./fields.js";

export const SELECTORS = ["key_alias", "key_hash", "user_id", "team_id", "end_user"] as const;
export type Selector = (typeof SELECTORS)[number];

export const WALLET_SOURCES = ["spend_logs_metadata", "requester_metadata"] as const;
export type WalletSource = (typeof WALLET_SOURCES)[number];

export interface WalletField {
  readonly source: WalletSource;
  readonly field: string;
}

export interface PayerRule {
  /** position in `payers:` (for messages and the unbillable detail) */
  readonly index: number;
  /** selector -> accepted values; empty with `any` */
  readonly match: Readonly<Partial<Record<Selector, readonly string[]>>>;
  readonly any: boolean;
  /** fixed payer (EIP-55) */
  readonly payer?: string | undefined;
  /** metadata fields to read a wallet from, in order */
  readonly walletFrom: readonly WalletField[];
  /** wallets a `wallet_from` rule may yield (EIP-55); undefined with allow_any */
  readonly allowed?: ReadonlySet<string> | undefined;
}

const values = () =>
  z
    .union([z.string().trim().min(1), z.array(z.string().trim().min(1)).min(1)])
    .transform((value) => (Array.isArray(value) ? value : [value]));

const walletField = () =>
  z
    .string()
    .trim()
    .regex(
      /^(spend_logs_metadata|requester_metadata)\.[A-Za-z0-9_-]{1,64}$/,
      'write spend_logs_metadata.FIELD or requester_metadata.FIELD (e.g. spend_logs_metadata.wallet)',
    )
    .transform((text): WalletField => {
      const [source, field = ""] = text.split(".") as [WalletSource, string];
      return { source, field };
    });

const ruleSchema = z
  .strictObject({
    key_alias: values().optional(),
    key_hash: values().optional(),
    user_id: values().optional(),
    team_id: values().optional(),
    end_user: values().optional(),
    any: z.literal(true, 'write "any: true" for a rule that matches every call').optional(),
    payer: payerAddress().optional(),
    wallet_from: z
      .union([walletField(), z.array(walletField()).min(1)])
      .transform((value) => (Array.isArray(value) ? value : [value]))
      .optional(),
    allowed: z.array(payerAddress()).min(1).optional(),
    allow_any: z.boolean().optional(),
  })
  .superRefine((rule, issues) => {
    const selectors = SELECTORS.filter((selector) => rule[selector] !== undefined);
    if (selectors.length === 0 && rule.any !== true) {
      issues.addIssue({
        code: "custom",
        message: `name who this rule is for (${SELECTORS.join(", ")}), or write "any: true" for every call`,
      });
    }
    if (selectors.length > 0 && rule.any === true) {
      issues.addIssue({ code: "custom", path: ["any"], message: `"any: true" cannot be combined with ${selectors.join(", ")}` });
    }
    if ((rule.payer === undefined) === (rule.wallet_from === undefined)) {
      issues.addIssue({ code: "custom", message: "give exactly one of payer (a fixed wallet) or wallet_from (read from metadata)" });
    }
    if (rule.wallet_from !== undefined && rule.allowed === undefined && rule.allow_any !== true) {
      issues.addIssue({
        code: "custom",
        path: ["allowed"],
        message:
          "wallet_from reads a wallet the caller can choose: list the wallets it may name in allowed, " +
          'or write "allow_any: true" if every caller may bill any wallet',
      });
    }
    if (rule.wallet_from === undefined && (rule.allowed !== undefined || rule.allow_any !== undefined)) {
      issues.addIssue({ code: "custom", path: ["allowed"], message: "allowed and allow_any only apply with wallet_from" });
    }
  });

export const payersSection = () =>
  z
    .array(ruleSchema)
    .default([])
    .transform((rules): PayerRule[] =>
      rules.map((rule, index) => {
        const match: Partial<Record<Selector, readonly string[]>> = {};
        for (const selector of SELECTORS) {
          const accepted = rule[selector];
          if (accepted !== undefined) match[selector] = accepted;
        }
        return {
          index,
          match,
          any: rule.any === true,
          payer: rule.payer,
          walletFrom: rule.wallet_from ?? [],
          allowed: rule.allow_any === true || rule.allowed === undefined ? undefined : new Set(rule.allowed),
        };
      }),
    );
