/** terminalSafe: what a LiteLLM caller can put in a field never reaches the terminal as a control sequence. */
import { expect } from "chai";

import { terminalSafe } from "../../../relayer/cli/terminal-text.js";

describe("terminalSafe", function () {
  it("removes an OSC title sequence and a colour, keeping the text around them", function () {
    expect(terminalSafe("user-\u001b]0;pwned\u0007\u001b[31mred")).to.equal("user-red");
  });

  it("removes CSI sequences with parameters, string sequences ended by ST, and 8-bit forms", function () {
    expect(terminalSafe("a\u001b[2J\u001b[1;1Hb")).to.equal("ab");
    expect(terminalSafe("a\u001b]8;;https://evil\u001b\\link\u001b]8;;\u001b\\b")).to.equal("alinkb");
    expect(terminalSafe("a\u001bPq#0;2;0;0;0\u001b\\b")).to.equal("ab");
    expect(terminalSafe("a\u009b31mb\u009d0;t\u009cc")).to.equal("abc");
    expect(terminalSafe("a\u001b7b\u001b(Bc")).to.equal("abc");
    expect(terminalSafe("cut\u001b[")).to.equal("cut");
    expect(terminalSafe("cut\u001b]0;never ended")).to.equal("cut");
  });

  it("removes C0, DEL, C1 controls (newlines too) and bidi overrides", function () {
    expect(terminalSafe("a\nb\rc\td\u0000e\u0008f\u007fg\u0085h")).to.equal("abcdefgh");
    expect(terminalSafe("invoice\u202Egpj.exe\u202C \u2066x\u2069\u200F\u061C")).to.equal("invoicegpj.exe x");
  });

  it("keeps printable Unicode as it is", function () {
    const text = "Zoë 北京 🚀 naïve — ok";
    expect(terminalSafe(text)).to.equal(text);
  });
});
