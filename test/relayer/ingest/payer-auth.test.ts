import { expect } from "chai";

import type { PayerRule } from "../../../relayer/config/index.js";
import { BearerAuth, collectTokens, PayerResolver, TokenError } from "../../../relayer/ingest/index.js";
import { PARTNER_WALLET, PAYER_BACKEND, PAYER_RESEARCH, STRANGER_WALLET } from "./harness.js";

function identity(overrides: Partial<Parameters<PayerResolver["resolve"]>[0]> = {}) {
  return {
    keyAlias: null,
    keyHash: null,
    userId: null,
    teamId: null,
    endUser: null,
    wallets: { spend_logs_metadata: {}, requester_metadata: {} },
    ...overrides,
  };
}

const rules: PayerRule[] = [
  { index: 0, match: { key_alias: ["prod-backend", "prod-batch"] }, any: false, payer: PAYER_BACKEND, walletFrom: [] },
  { index: 1, match: { team_id: ["research"], end_user: ["alice"] }, any: false, payer: PAYER_RESEARCH, walletFrom: [] },
  {
    index: 2,
    match: { key_alias: ["partner-gateway"] },
    any: false,
    walletFrom: [
      { source: "spend_logs_metadata", field: "wallet" },
      { source: "requester_metadata", field: "wallet" },
    ],
    allowed: new Set([PARTNER_WALLET]),
  },
];

describe("relayer/ingest payers and auth", function () {
  describe("PayerResolver", function () {
    const resolver = new PayerResolver(rules);

    it("takes the first rule whose selectors all match", function () {
      expect(resolver.resolve(identity({ keyAlias: "prod-batch" }))).to.deep.equal({ ok: true, payer: PAYER_BACKEND, rule: 0 });
      expect(resolver.resolve(identity({ teamId: "research", endUser: "alice" }))).to.deep.equal({ ok: true, payer: PAYER_RESEARCH, rule: 1 });
      expect(resolver.resolve(identity({ teamId: "research", endUser: "bob" })).ok).to.equal(false);
    });

    it("reads a wallet from metadata only when the rule allows it", function () {
      const allowed = identity({ keyAlias: "partner-gateway", wallets: { spend_logs_metadata: {}, requester_metadata: { wallet: PARTNER_WALLET } } });
      expect(resolver.resolve(allowed)).to.deep.equal({ ok: true, payer: PARTNER_WALLET, rule: 2 });
      const stranger = identity({ keyAlias: "partner-gateway", wallets: { spend_logs_metadata: { wallet: STRANGER_WALLET }, requester_metadata: {} } });
      expect(resolver.resolve(stranger)).to.deep.equal({
        ok: false,
        reason: "payer_not_allowed",
        detail: `payers[2] does not allow ${STRANGER_WALLET} (from spend_logs_metadata.wallet)`,
      });
    });

    it("falls through to a later rule after a refused wallet, and reports no_payer with the call's identity", function () {
      const withFallback = new PayerResolver([...rules, { index: 3, match: {}, any: true, payer: PAYER_RESEARCH, walletFrom: [] }]);
      const stranger = identity({ keyAlias: "partner-gateway", wallets: { spend_logs_metadata: { wallet: STRANGER_WALLET }, requester_metadata: {} } });
      expect(withFallback.resolve(stranger)).to.deep.equal({ ok: true, payer: PAYER_RESEARCH, rule: 3 });
      expect(resolver.resolve(identity({ keyAlias: "unknown", keyHash: "88dc28d0f030c55ed4ab" }))).to.deep.equal({
        ok: false,
        reason: "no_payer",
        detail: "no payers: rule matches key_alias=unknown, team_id=-, user_id=-, end_user=-, key_hash=88dc28d0f030...",
      });
    });
  });

  describe("BearerAuth", function () {
    const auth = new BearerAuth(["new-token-0123456789", "old-token-0123456789"]);

    it("accepts every configured token (rotation) and nothing else", function () {
      expect(auth.check("Bearer new-token-0123456789")).to.equal(true);
      expect(auth.check("bearer old-token-0123456789")).to.equal(true);
      expect(auth.check("Bearer new-token-012345678")).to.equal(false);
      expect(auth.check("Bearer new-token-01234567890")).to.equal(false);
      expect(auth.check("new-token-0123456789")).to.equal(false);
      expect(auth.check("Basic bmV3LXRva2Vu")).to.equal(false);
      expect(auth.check(undefined)).to.equal(false);
      expect(auth.check("Bearer ")).to.equal(false);
    });

    it("refuses to start without a token, and names a short token's variable", function () {
      expect(() => new BearerAuth([])).to.throw(TokenError);
      expect(collectTokens({ tokens: ["file-token-0123456789"], tokensEnv: "T" }, { T: " env-token-0123456789 ,file-token-0123456789" })).to.deep.equal([
        "file-token-0123456789",
        "env-token-0123456789",
      ]);
      expect(() => collectTokens({ tokens: [], tokensEnv: "AGENTGPT_INGEST_TOKENS" }, { AGENTGPT_INGEST_TOKENS: "short" })).to.throw(
        TokenError,
        "token 1 in AGENTGPT_INGEST_TOKENS is shorter than 16 characters",
      );
    });
  });
});
