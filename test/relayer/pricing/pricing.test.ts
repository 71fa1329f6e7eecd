import { expect } from "chai";

import { ceilDiv, parseDecimal, type RouteConfig } from "../../../relayer/config/index.js";
import { displayAmount, priceCall, RouteTable, SettlementChains } from "../../../relayer/pricing/index.js";

const ONE = 10n ** 18n;
const GPT4: RouteConfig = {
  name: "mission_critical",
  model: "gpt-4-turbo",
  pricing: "per_1k_tokens",
  pricePer1k: (12n * ONE) / 100n,
  providers: [{ name: "openai", deployment: "az-westus" }, { name: "anyscale" }, { name: "together-ai" }],
  aliases: [],
};
const MIXTRAL: RouteConfig = {
  name: "cost_optimized",
  model: "mixtral-8x22b",
  pricing: "per_1k_tokens",
  pricePer1k: (85n * ONE) / 10_000n,
  providers: [{ name: "groq" }, { name: "firework-ai" }, { name: "deepinfra" }],
  aliases: ["mixtral"],
};
const METERED: RouteConfig = {
  name: "metered",
  model: "claude-3-opus",
  pricing: "response_cost",
  pricePer1k: ONE / 10n, // ceiling 0.1 AGPT per 1k tokens
  providers: [{ name: "anthropic" }],
  aliases: [],
};
const RATE = { num: (5n * ONE) / 2n, den: 1n }; // 2.5 AGPT/USD

describe("relayer/pricing", function () {
  describe("priceCall", function () {
    it("per_1k_tokens: amountMilli = tokens * price, exactly; the display amount rounds up", function () {
      const price = priceCall(GPT4, 1630, "0.0239", RATE);
      expect(price).to.deep.equal({ ok: true, amountMilli: 1630n * ((12n * ONE) / 100n), pricing: "per_1k_tokens", pricePer1k: (12n * ONE) / 100n, capped: false });
      // 1 token of mixtral: 8.5e15 milli-units = 8.5e12 units, never 0
      const one = priceCall(MIXTRAL, 1, null, undefined);
      expect(one.ok && one.amountMilli).to.equal(8_500_000_000_000_000n);
      expect(displayAmount(8_500_000_000_000_001n)).to.equal(8_500_000_000_001n);
    });

    it("response_cost: ceil(cost * units per USD * 1000) from the float's decimal text, no float arithmetic", function () {
      // 0.0239 USD * 2.5 AGPT/USD = 0.05975 AGPT = 5.975e16 units = 5.975e19 milli-units
      const price = priceCall(METERED, 1630, "0.0239", RATE);
      expect(price).to.deep.equal({ ok: true, amountMilli: 59_750_000_000_000_000_000n, pricing: "response_cost", pricePer1k: ONE / 10n, capped: false });
      // A float whose binary value is not 0.1 + 0.2: the decimal text LiteLLM wrote is what is priced.
      const text = String(0.1 + 0.2); // "0.30000000000000004"
      const tricky = priceCall({ ...METERED, pricePer1k: undefined }, 10, text, RATE);
      expect(tricky.ok && tricky.amountMilli).to.equal(750_000_000_000_000_100_000n);
      // A rate that is a fraction (0.3 USD/AGPT = 10/3 AGPT/USD) rounds up once, at the end.
      const third = priceCall({ ...METERED, pricePer1k: undefined }, 10, "0.0001", { num: 10n * ONE, den: 3n });
      const decimal = parseDecimal("0.0001")!;
      expect(third.ok && third.amountMilli).to.equal(ceilDiv(decimal.digits * 10n * ONE * 1000n, 10n ** 4n * 3n));
      expect(third.ok && third.amountMilli).to.equal(333_333_333_333_333_334n);
    });

    it("response_cost above the route's ceiling is charged the ceiling and marked capped", function () {
      // 1 USD for 100 tokens = 2.5 AGPT, ceiling 0.1 AGPT/1k tokens * 100 tokens = 0.01 AGPT
      const price = priceCall(METERED, 100, "1", RATE);
      expect(price).to.deep.equal({ ok: true, amountMilli: 100n * (ONE / 10n), pricing: "response_cost", pricePer1k: ONE / 10n, capped: true });
    });

    it("a zero or missing response_cost is unpriced, never free", function () {
      for (const cost of ["0", "0.0", null]) {
        const price = priceCall(METERED, 100, cost, RATE);
        expect(price.ok, String(cost)).to.equal(false);
        expect(!price.ok && price.reason).to.equal("unpriced");
      }
    });
  });

  describe("RouteTable", function () {
    const table = new RouteTable([GPT4, MIXTRAL, METERED], { fireworks_ai: "firework-ai" });

    it("matches by model group, by model without its provider prefix, and by alias", function () {
      expect(table.match({ modelGroup: "gpt-4-turbo", model: "openai/gpt-4-turbo", litellmProvider: "openai" })).to.deep.include({ ok: true, route: GPT4, provider: "openai" });
      expect(table.match({ modelGroup: null, model: "together_ai/gpt-4-turbo", litellmProvider: "together_ai" })).to.deep.include({ ok: true, route: GPT4, provider: "together-ai" });
      expect(table.match({ modelGroup: "mixtral", model: "groq/mixtral-8x7b-32768", litellmProvider: "groq" })).to.deep.include({ ok: true, route: MIXTRAL, provider: "groq" });
      expect(table.match({ modelGroup: "cost_optimized", model: "fireworks_ai/whatever", litellmProvider: "fireworks_ai" })).to.deep.include({ ok: true, route: MIXTRAL, provider: "firework-ai" });
      // No custom_llm_provider: the provider comes from the model prefix.
      expect(table.match({ modelGroup: null, model: "anthropic/claude-3-opus", litellmProvider: null })).to.deep.include({ ok: true, route: METERED, provider: "anthropic" });
    });

    it("never bills a provider the route does not list, and says why", function () {
      expect(table.match({ modelGroup: "gpt-4-turbo", model: "azure/gpt-4-turbo", litellmProvider: "azure" })).to.deep.equal({
        ok: false,
        detail: "provider azure (as azure) is not listed by route mission_critical for model_group=gpt-4-turbo, model=azure/gpt-4-turbo",
      });
      expect(table.match({ modelGroup: "llama-3", model: "groq/llama-3", litellmProvider: "groq" })).to.deep.equal({ ok: false, detail: "no route for model_group=llama-3, model=groq/llama-3" });
      expect(table.match({ modelGroup: null, model: "", litellmProvider: "openai" })).to.deep.equal({ ok: false, detail: "the log names no model (model and model_group are empty)" });
    });
  });

  it("SettlementChains: a provider's payment channel, else the default chain", function () {
    const chains = new SettlementChains(
      [
        { provider: "openai", chain: "arbitrum" },
        { provider: "anthropic", chain: "polygon" },
      ],
      "arbitrum",
    );
    expect(chains.chainFor("openai")).to.equal("arbitrum");
    expect(chains.chainFor("Anthropic")).to.equal("polygon");
    expect(chains.chainFor("groq")).to.equal("arbitrum");
    expect(chains.all).to.deep.equal(["arbitrum", "polygon"]);
  });
});
