import { expect } from "chai";

import {
  AmountError,
  ceilDiv,
  decimalOfNumber,
  formatDecimal,
  formatTokenAmount,
  parseDecimal,
  parsePricePer1k,
  parseTokenAmount,
  parseUsdRate,
  toChecksumAddress,
  toPayerAddress,
} from "../../../relayer/config/index.js";

const AGPT = { symbol: "AGPT", decimals: 18 } as const;
const ONE = 10n ** 18n;

describe("relayer/config amounts", function () {
  describe("parseDecimal", function () {
    it("keeps every digit of decimal and scientific text", function () {
      expect(parseDecimal("0.12")).to.deep.equal({ digits: 12n, scale: 2 });
      expect(parseDecimal("8.4e-05")).to.deep.equal({ digits: 84n, scale: 6 });
      expect(parseDecimal("1718035200.412311")).to.deep.equal({ digits: 1718035200412311n, scale: 6 });
      expect(parseDecimal("2E3")).to.deep.equal({ digits: 2000n, scale: 0 });
      expect(parseDecimal("-1.50")).to.deep.equal({ digits: -15n, scale: 1 });
      expect(parseDecimal(".5")).to.deep.equal({ digits: 5n, scale: 1 });
    });

    it("refuses what is not a decimal", function () {
      for (const text of ["", ".", "NaN", "Infinity", "0x10", "1,000", "1e999", "12abc"]) expect(parseDecimal(text), text).to.equal(undefined);
    });

    it("reads a JSON float back as the exact text LiteLLM wrote", function () {
      expect(formatDecimal(decimalOfNumber(0.0239)!)).to.equal("0.0239");
      expect(formatDecimal(decimalOfNumber(8.4e-5)!)).to.equal("0.000084");
      expect(formatDecimal(decimalOfNumber(1e-7)!)).to.equal("0.0000001");
      expect(decimalOfNumber(Number.NaN)).to.equal(undefined);
    });

    it("rounds up with ceilDiv", function () {
      expect(ceilDiv(1000n, 1000n)).to.equal(1n);
      expect(ceilDiv(1001n, 1000n)).to.equal(2n);
      expect(ceilDiv(1n, 1000n)).to.equal(1n);
      expect(ceilDiv(0n, 1000n)).to.equal(0n);
    });
  });

  describe("parseTokenAmount", function () {
    it("turns the seed's amounts into exact token units", function () {
      expect(parseTokenAmount("500 AGPT", AGPT)).to.equal(500n * ONE);
      expect(parseTokenAmount("0.000000000000000001 AGPT", AGPT)).to.equal(1n);
      expect(parseTokenAmount(" 50 agpt ", AGPT)).to.equal(50n * ONE);
    });

    it("refuses bare numbers, other tokens, too many decimals and negatives, saying what to write", function () {
      expect(() => parseTokenAmount(500, AGPT)).to.throw(AmountError, 'e.g. "500 AGPT"');
      expect(() => parseTokenAmount("500 ETH", AGPT)).to.throw(AmountError, "settles in AGPT");
      expect(() => parseTokenAmount("0.0000000000000000001 AGPT", AGPT)).to.throw(AmountError, "more decimal places");
      expect(() => parseTokenAmount("-1 AGPT", AGPT)).to.throw(AmountError, "negative");
    });
  });

  describe("parsePricePer1k", function () {
    it("reads the seed's budgets exactly", function () {
      expect(parsePricePer1k("0.12 AGPT/1k tokens", AGPT)).to.equal((12n * ONE) / 100n);
      expect(parsePricePer1k("0.0085 AGPT/1k tokens", AGPT)).to.equal((85n * ONE) / 10_000n);
    });

    it("accepts other token counts when the result is a whole number of units per 1k tokens", function () {
      expect(parsePricePer1k("1 AGPT/1M tokens", AGPT)).to.equal(ONE / 1000n);
      expect(parsePricePer1k("0.00012 AGPT/token", AGPT)).to.equal((12n * ONE) / 100n);
      expect(parsePricePer1k("120 AGPT/1000 tokens", AGPT)).to.equal(120n * ONE);
      expect(() => parsePricePer1k("0.000000000000000001 AGPT/1M tokens", AGPT)).to.throw(AmountError, "whole number");
    });

    it("refuses zero, units it cannot read, and a bare number", function () {
      expect(() => parsePricePer1k("0 AGPT/1k tokens", AGPT)).to.throw(AmountError, "greater than zero");
      expect(() => parsePricePer1k("0.12 AGPT per 1k", AGPT)).to.throw(AmountError, '"0.12 AGPT/1k tokens"');
      expect(() => parsePricePer1k(0.12, AGPT)).to.throw(AmountError, "with its unit");
    });
  });

  describe("parseUsdRate", function () {
    it("reads both directions as an exact fraction of units per USD", function () {
      expect(parseUsdRate("2.5 AGPT/USD", AGPT)).to.deep.equal({ num: (5n * ONE) / 2n, den: 1n });
      // 1 AGPT costs 0.40 USD: 2.5 AGPT per USD
      expect(parseUsdRate("0.40 USD/AGPT", AGPT)).to.deep.equal({ num: (5n * ONE) / 2n, den: 1n });
      // 1 AGPT costs 0.30 USD: 10/3 AGPT per USD, kept as a fraction
      expect(parseUsdRate("0.3 USD/AGPT", AGPT)).to.deep.equal({ num: 10n * ONE, den: 3n });
      expect(() => parseUsdRate("2.5 AGPT/EUR", AGPT)).to.throw(AmountError, "AGPT/USD or USD/AGPT");
    });
  });

  it("formatTokenAmount prints units as tokens", function () {
    expect(formatTokenAmount((12n * ONE) / 100n, AGPT)).to.equal("0.12 AGPT");
    expect(formatTokenAmount(500n * ONE, AGPT)).to.equal("500 AGPT");
    expect(formatTokenAmount(1n, AGPT)).to.equal("0.000000000000000001 AGPT");
  });

  describe("addresses", function () {
    it("checksums lowercase addresses and keeps valid checksums", function () {
      expect(toChecksumAddress("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")).to.equal("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
      expect(toChecksumAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")).to.equal("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    });

    it("refuses a wrong checksum (a typo), malformed text and the zero address as payer", function () {
      expect(() => toChecksumAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267")).to.throw("wrong EIP-55 checksum");
      expect(() => toChecksumAddress("0x1234")).to.throw("not an EVM address");
      expect(() => toPayerAddress(`0x${"0".repeat(40)}`)).to.throw("zero address");
    });
  });
});
