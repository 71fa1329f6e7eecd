import { createRequire } from "node:module";

import hardhatToolboxMochaEthersPlugin from "@nomicfoundation/hardhat-toolbox-mocha-ethers";
import { configVariable, defineConfig } from "hardhat/config";

import { exitGuard } from "./test/helpers/exit-guard.js";

const require = createRequire(import.meta.url);

/**
 * solc comes from the npm `solc` package (pinned exactly in package.json), so nothing is
 * downloaded at build time. Keep SOLC_VERSION equal to that package's version.
 */
const SOLC_VERSION = "0.8.30";

export default defineConfig({
  plugins: [hardhatToolboxMochaEthersPlugin],
  solidity: {
    version: SOLC_VERSION,
    path: require.resolve("solc/soljson.js"),
    settings: {
      // Arbitrum One/Sepolia and Polygon PoS/Amoy all run Cancun (transient storage, PUSH0, MCOPY).
      evmVersion: "cancun",
      viaIR: true,
      optimizer: { enabled: true, runs: 200 },
    },
  },
  paths: {
    ignition: "deploy",
  },
  typechain: {
    outDir: "typechain-types",
  },
  test: {
    mocha: {
      timeout: 120_000,
      // A leaked handle must not hang `npm test` after its summary: see test/helpers/exit-guard.ts.
      rootHooks: { afterAll: exitGuard(Number(process.env.AGENTGPT_EXIT_GUARD_MS ?? 60_000)) },
    },
    solidity: {
      fuzz: { runs: 256 },
      invariant: { runs: 64, depth: 64, failOnRevert: false },
    },
  },
  networks: {
    hardhat: {
      type: "edr-simulated",
      chainType: "generic",
      hardfork: "cancun",
    },
    localhost: {
      type: "http",
      chainType: "generic",
      url: "http://127.0.0.1:8545",
    },
    arbitrumSepolia: {
      type: "http",
      chainType: "generic",
      chainId: 421614,
      url: configVariable("ARBITRUM_SEPOLIA_RPC_URL"),
      accounts: [configVariable("ARBITRUM_SEPOLIA_PRIVATE_KEY")],
    },
    polygonAmoy: {
      type: "http",
      chainType: "generic",
      chainId: 80002,
      url: configVariable("POLYGON_AMOY_RPC_URL"),
      accounts: [configVariable("POLYGON_AMOY_PRIVATE_KEY")],
    },
  },
  verify: {
    etherscan: {
      apiKey: configVariable("ETHERSCAN_API_KEY"),
    },
  },
});
