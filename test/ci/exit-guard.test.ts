/**
 * The exit guard (test/helpers/exit-guard.ts) in a real Node process: a leaked server and child process hold the
 * process open until the guard names them and exits with the run's code; a process with nothing left exits by
 * itself at once, never waiting for the guard.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";

import { expect } from "chai";

import { REPO } from "../deploy/local-node.js";

const GUARD = join(REPO, "test", "helpers", "exit-guard.ts");
const TSX = join(REPO, "node_modules", "tsx", "dist", "cli.mjs");

function run(script: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, "--eval", script], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - started });
    });
  });
}

describe("exit guard: a leaked handle cannot hang the test run", function () {
  this.timeout(60_000);

  it("names the leaked server, child process and timer, and exits with the run's code", async function () {
    const result = await run(`
      import { spawn } from "node:child_process";
      import { createServer } from "node:net";
      import { exitGuard } from ${JSON.stringify(GUARD)};
      createServer().listen(0, "127.0.0.1");
      const child = spawn("sleep", ["30"]);
      process.on("exit", () => child.kill());
      setInterval(() => undefined, 1000);
      process.exitCode = 3;
      exitGuard(1500)();
    `);
    expect(result.code).to.equal(3);
    expect(result.stderr).to.contain("1.5 s after the last test the process is still held open by");
    expect(result.stderr).to.match(/Server listening on \{"address":"127\.0\.0\.1"/);
    expect(result.stderr).to.contain("ChildProcess pid");
    expect(result.stderr).to.contain("sleep 30");
    expect(result.stderr).to.match(/1 timer\(s\)/);
    expect(result.ms).to.be.at.least(1500);
  });

  it("never delays a process that has nothing left open", async function () {
    const result = await run(`
      import { exitGuard } from ${JSON.stringify(GUARD)};
      exitGuard(15_000)();
    `);
    expect(result.code).to.equal(0);
    expect(result.stderr).to.equal("");
    expect(result.ms).to.be.below(10_000);
  });
});
