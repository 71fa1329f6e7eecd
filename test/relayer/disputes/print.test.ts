/**
 * What `agentgpt dispute` and `agentgpt reconcile` print may quote the chain (names registered on the router) and
 * usage APIs: control characters never reach the terminal.
 */
import { expect } from "chai";

import { print } from "../../../relayer/cli/commands/dispute.js";

function captured(body: () => void): string {
  const write = process.stdout.write;
  let out = "";
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    body();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe("dispute / reconcile output", function () {
  it("removes escape sequences and control characters (bell, carriage return, C1) from printed lines; keeps text", function () {
    const out = captured(() => print(["provider open\u001b[31mai\u001b[0m\u0007 model gpt\rX", "name \u001b]0;pwned\u0007é ✓", "c1 \u009b2J", "two\nlines"]));
    expect(out).to.equal("provider openai model gptX\nname é ✓\nc1 \ntwo\nlines\n");
    expect(out).to.not.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });
});
