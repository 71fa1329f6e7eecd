/**
 * Which RPC URL the rotation stage sends the rotator's transactions through: the first of a chain's `rpc_urls` that
 * answers eth_chainId with the configured chain id, against a real `hardhat node` and ports nothing listens on. It
 * used to take the first URL whatever it did, so one dead RPC stopped rotations (and the leaked-key drill) while the
 * settler failed over and went on.
 */
import { expect } from "chai";
import { pino } from "pino";

import { KeyError } from "../../../relayer/keys/errors.js";
import { firstAnsweringRpc } from "../../../relayer/rotation/setup.js";
import { freePort, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { rejection } from "../../helpers/rejection.js";

describe("rotation: the RPC URL the rotator sends through", function () {
  this.timeout(60_000);
  let node: HardhatNode;
  let dead: string;

  before(async function () {
    node = await startHardhatNode();
    dead = `http://127.0.0.1:${await freePort()}/v2/secret-api-key`; // nothing listens there
  });
  after(async function () {
    await node?.stop();
  });

  it("skips a first URL that does not answer and takes the next one, with a warning", async function () {
    const logs: Array<{ level: number; msg: string; url?: string }> = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    expect(await firstAnsweringRpc("local", [dead, node.url], undefined, logger)).to.deep.equal({ url: node.url, chainId: 31337 });
    expect(logs.filter((l) => l.level === 40).map((l) => l.msg)).to.deep.equal([
      "rotation: an earlier RPC URL of this chain did not answer; the rotator sends through this one",
    ]);
    expect(JSON.stringify(logs)).to.not.include("secret-api-key");
    expect(await firstAnsweringRpc("local", [node.url, dead], 31337)).to.deep.equal({ url: node.url, chainId: 31337 });
  });

  it("skips a URL that serves another chain id, and refuses when none answers, naming each URL without its secrets", async function () {
    const error = await rejection(firstAnsweringRpc("arbitrum", [dead, node.url], 42161));
    expect(error).to.be.instanceOf(KeyError);
    const message = (error as Error).message;
    expect(message).to.match(/^chains\.arbitrum: no RPC URL answered eth_chainId for the rotation/);
    expect(message).to.include("it serves chain id 31337, not 42161");
    expect(message).to.include(new URL(node.url).host);
    expect(message).to.not.include("secret-api-key");
  });
});
