/**
 * Node's floor is 22.13 everywhere it is stated: package.json's engines, the `agentgpt` start check
 * (bin/node-floor.mjs) and .ci/run's check (.ci/node-floor, run here in bash as CI runs it).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { expect } from "chai";

import { REPO } from "../deploy/local-node.js";
import { NODE_FLOOR, nodeTooOld } from "../../bin/node-floor.mjs";

const OLD = ["v20.19.0", "v22.0.0", "v22.12.0", "22.12.9", "v21.99.0"];
const OK = ["v22.13.0", "22.13.1", "v22.23.3", "v23.0.0", "v24.1.0"];

describe("Node.js floor: 22.13", function () {
  it("package.json's engines and the CLI's start check say 22.13", function () {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { engines: { node: string } };
    expect(pkg.engines.node).to.equal(">=22.13");
    expect(NODE_FLOOR).to.equal("22.13.0");
    for (const version of OLD) expect(nodeTooOld(version), version).to.equal(true);
    for (const version of OK) expect(nodeTooOld(version), version).to.equal(false);
    expect(nodeTooOld(process.versions.node)).to.equal(false); // the Node running the tests passes
  });

  it(".ci/run's check installs node@22 below 22.13 (and only then)", function () {
    const below = (version: string) =>
      spawnSync("bash", ["-c", `set -euo pipefail; . .ci/node-floor; if node_below_floor "$1"; then echo below; else echo ok; fi`, "bash", version], { cwd: REPO, encoding: "utf8" });
    for (const version of [...OLD, ""]) expect(below(version).stdout, version).to.equal("below\n");
    for (const version of OK) expect(below(version).stdout, version).to.equal("ok\n");
    const run = readFileSync(join(REPO, ".ci", "run"), "utf8");
    expect(run).to.include('. .ci/node-floor\nif node_below_floor "$(node --version');
    expect(readFileSync(join(REPO, ".ci", "node-floor"), "utf8")).to.include("NODE_FLOOR=22.13.0");
  });
});
