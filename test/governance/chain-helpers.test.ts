/**
 * relayer/chain helpers the CLI and the relayer share: the deployment loader, signer loading (keys never echoed),
 * and URL redaction.
 */
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { JsonRpcProvider, Wallet, encryptKeystoreJsonSync } from "ethers";

import {
  ChainError,
  FUTURE_IDS,
  KEYSTORE_PASSWORD_VARIABLE,
  loadDeployment,
  loadSigner,
  networkByName,
  redactUrl,
  redactUrls,
} from "../../relayer/chain/index.js";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"; // hardhat node account #1
const ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async function chainError(promise: Promise<unknown>): Promise<ChainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ChainError) return error;
    throw error;
  }
  throw new Error("expected a ChainError");
}

describe("relayer/chain", function () {
  let dir: string;
  const provider = new JsonRpcProvider("http://127.0.0.1:9", 421614, { staticNetwork: true });
  const arbitrum = networkByName("arbitrumSepolia");

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-chain-"));
  });

  afterEach(async function () {
    await rm(dir, { recursive: true, force: true });
    delete process.env.AGENTGPT_TEST_KEY;
    delete process.env[KEYSTORE_PASSWORD_VARIABLE];
  });

  after(function () {
    provider.destroy();
  });

  describe("loadDeployment", function () {
    it("reads Ignition's deployed_addresses.json, the oracle only when deployed", async function () {
      await mkdir(join(dir, "chain-421614"));
      const recorded = {
        [FUTURE_IDS.agpt]: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        [FUTURE_IDS.autoPayLLM]: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        [FUTURE_IDS.timelock]: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        [FUTURE_IDS.governor]: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
      };
      await writeFile(join(dir, "chain-421614", "deployed_addresses.json"), JSON.stringify(recorded));
      const deployment = await loadDeployment(421614, { deploymentsDir: dir });
      expect(deployment.addresses.agpt).to.equal("0x5FbDB2315678afecb367f032d93F642f64180aa3");
      expect(deployment.addresses.usageOracle).to.equal(undefined);
    });

    it("says how to deploy when nothing is there, and to finish an interrupted deployment", async function () {
      const missing = await chainError(loadDeployment(421614, { deploymentsDir: dir, networkName: "arbitrumSepolia" }));
      expect(missing.code).to.equal("DEPLOYMENT_NOT_FOUND");
      expect(missing.message).to.contain("npm run deploy -- --network arbitrumSepolia");
      await mkdir(join(dir, "chain-421614"));
      await writeFile(join(dir, "chain-421614", "deployed_addresses.json"), '{"AGPTToken#AGPTToken": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}');
      const partial = await chainError(loadDeployment(421614, { deploymentsDir: dir }));
      expect(partial.code).to.equal("DEPLOYMENT_INVALID");
      expect(partial.message).to.contain("AutoPayLLM#AutoPayLLM");
    });
  });

  describe("loadSigner", function () {
    it("takes the key from the named environment variable and reports only where it came from", async function () {
      process.env.AGENTGPT_TEST_KEY = KEY.slice(2);
      const loaded = await loadSigner(provider, arbitrum, { keyVariable: "AGENTGPT_TEST_KEY" });
      expect(loaded.address).to.equal(ADDRESS);
      expect(loaded.source).to.equal("$AGENTGPT_TEST_KEY");
    });

    it("refuses a malformed key without echoing it", async function () {
      process.env.AGENTGPT_TEST_KEY = "0x1234deadbeefsecret";
      const error = await chainError(loadSigner(provider, arbitrum, { keyVariable: "AGENTGPT_TEST_KEY" }));
      expect(error.code).to.equal("INVALID_KEY");
      expect(error.message).to.not.contain("deadbeef");
      expect(error.cause).to.equal(undefined);
    });

    it("decrypts a JSON keystore with the password from the environment", async function () {
      const file = join(dir, "key.json");
      const json = encryptKeystoreJsonSync({ address: ADDRESS, privateKey: KEY }, "correct horse", {
        scrypt: { N: 1 << 10 },
      });
      await writeFile(file, json);
      process.env[KEYSTORE_PASSWORD_VARIABLE] = "correct horse";
      const loaded = await loadSigner(provider, arbitrum, { keystore: file });
      expect(loaded.address).to.equal(ADDRESS);
      expect((loaded.signer as Wallet).privateKey).to.equal(KEY);
      process.env[KEYSTORE_PASSWORD_VARIABLE] = "wrong";
      expect((await chainError(loadSigner(provider, arbitrum, { keystore: file }))).message).to.contain("wrong password");
    });

    it("names every way to provide a signer when none is configured, and keeps --node-account local", async function () {
      const saved = [process.env.AGENTGPT_PRIVATE_KEY, process.env.ARBITRUM_SEPOLIA_PRIVATE_KEY];
      delete process.env.AGENTGPT_PRIVATE_KEY;
      delete process.env.ARBITRUM_SEPOLIA_PRIVATE_KEY;
      try {
        const none = await chainError(loadSigner(provider, arbitrum));
        expect(none.message).to.contain("set AGENTGPT_PRIVATE_KEY or ARBITRUM_SEPOLIA_PRIVATE_KEY");
        expect(none.message).to.contain("--keystore <file>");
        expect((await chainError(loadSigner(provider, arbitrum, { account: 0 }))).message).to.contain(
          "not one",
        );
      } finally {
        if (saved[0] !== undefined) process.env.AGENTGPT_PRIVATE_KEY = saved[0];
        if (saved[1] !== undefined) process.env.ARBITRUM_SEPOLIA_PRIVATE_KEY = saved[1];
      }
    });
  });

  describe("redactUrl", function () {
    it("keeps scheme, host and port, drops paths and queries where providers put keys", function () {
      expect(redactUrl("https://arb-sepolia.g.alchemy.com/v2/SECRET")).to.equal("https://arb-sepolia.g.alchemy.com/…");
      expect(redactUrl("http://127.0.0.1:8545")).to.equal("http://127.0.0.1:8545");
      expect(redactUrls('failed (requestUrl="https://rpc.example/key?token=SECRET")')).to.equal(
        'failed (requestUrl="https://rpc.example/…")',
      );
      // punctuation after a URL ends the sentence, not the URL
      expect(redactUrls("no JSON-RPC node answers at http://127.0.0.1:8545: start one")).to.equal(
        "no JSON-RPC node answers at http://127.0.0.1:8545: start one",
      );
      expect(redactUrls("see https://rpc.example/v2/SECRET.")).to.equal("see https://rpc.example/….");
    });
  });
});
