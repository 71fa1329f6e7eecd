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
  it("replaces control characters (escape sequences, bell, carriage return) in printed lines; keeps tabs and text", function () {
    const out = captured(() => print(["provider open\u001b[31mai\u001b[0m\u0007 model gpt\rX", "tab\there é ✓", "c1 \u009b2J"]));
    expect(out).to.equal("provider open\ufffd[31mai\ufffd[0m\ufffd model gpt\ufffdX\ntab\there é ✓\nc1 \ufffd2J\n");
    expect(out).to.not.match(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });
});
