/**
 * Who pays for a call, from the `payers:` rules (see relayer/config/sections/payers.ts): the first rule that
 * matches the call and yields an allowed wallet. A call no rule pays for is unbillable with reason no_payer, or
 * payer_not_allowed when a wallet_from rule saw a wallet outside its allow list.
 */
import { type PayerRule, type Selector, WALLET_SOURCES, type WalletSource } from "../config/index.js";
import type { SpendLog } from "./spend-log.js";

export type PayerResult =
  | { readonly ok: true; readonly payer: string; /** index of the rule in payers: */ readonly rule: number }
  | { readonly ok: false; readonly reason: "no_payer" | "payer_not_allowed"; readonly detail: string };

type Identity = Pick<SpendLog, "keyAlias" | "keyHash" | "userId" | "teamId" | "endUser" | "wallets">;

function valueOf(log: Identity, selector: Selector): string | null {
  switch (selector) {
    case "key_alias":
      return log.keyAlias;
    case "key_hash":
      return log.keyHash;
    case "user_id":
      return log.userId;
    case "team_id":
      return log.teamId;
    case "end_user":
      return log.endUser;
  }
}

/** A rule with its match conditions as sets (one lookup per condition per call). */
interface CompiledRule {
  readonly rule: PayerRule;
  readonly conditions: ReadonlyArray<readonly [Selector, ReadonlySet<string>]>;
}

/** The metadata fields the rules read a wallet from, per source (what the spend log parser must keep). */
export function walletFieldsOf(rules: readonly PayerRule[]): Record<WalletSource, string[]> {
  const fields = Object.fromEntries(WALLET_SOURCES.map((source) => [source, [] as string[]])) as Record<WalletSource, string[]>;
  for (const rule of rules) for (const { source, field } of rule.walletFrom) if (!fields[source].includes(field)) fields[source].push(field);
  return fields;
}

export class PayerResolver {
  private readonly rules: readonly CompiledRule[];

  constructor(rules: readonly PayerRule[]) {
    this.rules = rules.map((rule) => ({
      rule,
      conditions: (Object.entries(rule.match) as Array<[Selector, readonly string[]]>).map(([selector, accepted]) => [selector, new Set(accepted)] as const),
    }));
  }

  resolve(log: Identity): PayerResult {
    const refused: string[] = [];
    for (const { rule, conditions } of this.rules) {
      if (!rule.any && !matches(conditions, log)) continue;
      if (rule.payer !== undefined) return { ok: true, payer: rule.payer, rule: rule.index };
      for (const { source, field } of rule.walletFrom) {
        const wallet = log.wallets[source][field];
        if (wallet === undefined) continue;
        if (rule.allowed === undefined || rule.allowed.has(wallet)) return { ok: true, payer: wallet, rule: rule.index };
        refused.push(`payers[${rule.index}] does not allow ${wallet} (from ${source}.${field})`);
      }
    }
    if (refused.length > 0) return { ok: false, reason: "payer_not_allowed", detail: refused.join("; ") };
    const who = [
      `key_alias=${log.keyAlias ?? "-"}`,
      `team_id=${log.teamId ?? "-"}`,
      `user_id=${log.userId ?? "-"}`,
      `end_user=${log.endUser ?? "-"}`,
      `key_hash=${log.keyHash === null ? "-" : `${log.keyHash.slice(0, 12)}...`}`,
    ].join(", ");
    return { ok: false, reason: "no_payer", detail: `no payers: rule matches ${who}` };
  }
}

function matches(conditions: CompiledRule["conditions"], log: Identity): boolean {
  for (const [selector, accepted] of conditions) {
    const value = valueOf(log, selector);
    if (value === null || !accepted.has(value)) return false;
  }
  return true;
}
