import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { expect } from "chai";

import { ConfigError, formatOverride, loadRelayerConfig } from "../../../relayer/config/index.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const ONE = 10n ** 18n;
const ROUTER = join(REPO, "config", "litellm-router.yaml");
const CHANNELS = join(REPO, "config", "payment-channels.yaml");

function write(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "agentgpt-config-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function problems(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.file.split("/").pop()}:${p.line ?? "-"}: ${p.field}: ${p.message}`);
  }
  expect.fail("the configuration loaded, but it should not");
}

describe("relayer/config loadRelayerConfig", function () {
  it("keeps config/ copies of the seed's files byte for byte (trailing spaces included)", function () {
    const router = readFileSync(ROUTER, "utf8");
    expect(router).to.include('# litellm-router.yaml  \nroutes:  \n  - route: "mission_critical"  \n');
    expect(router).to.include("    budget: 0.12 AGPT/1k tokens  \n");
    expect(readFileSync(CHANNELS, "utf8")).to.match(/^payment_channels: {2}\n {2}- provider: "openai" {2}\n/);
  });

  it("loads the seed's litellm-router.yaml and payment_channels file as written, through include", function () {
    const dir = write({ "relayer.yaml": `include: [${ROUTER}, ${CHANNELS}]\n` });
    const config = loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} });

    expect(config.routes).to.deep.equal([
      {
        name: "mission_critical",
        model: "gpt-4-turbo",
        pricing: "per_1k_tokens",
        pricePer1k: (12n * ONE) / 100n,
        providers: [
          { name: "openai", deployment: "az-westus" },
          { name: "anyscale", deployment: "europe" },
          { name: "together-ai", deployment: "fallback" },
        ],
        aliases: [],
      },
      {
        name: "cost_optimized",
        model: "mixtral-8x22b",
        pricing: "per_1k_tokens",
        pricePer1k: (85n * ONE) / 10_000n,
        providers: [{ name: "groq", deployment: "L40S" }, { name: "firework-ai", deployment: undefined }, { name: "deepinfra", deployment: undefined }],
        aliases: [],
      },
    ]);
    expect(config.blockchain).to.deep.equal({ paymentToken: "AGPT", disputeWindowSeconds: 3600 });
    expect(config.paymentChannels).to.deep.equal([
      { provider: "openai", chain: "arbitrum", balance: 500n * ONE, strategy: "optimistic_rollups" },
      { provider: "anthropic", chain: "polygon", balance: 300n * ONE, strategy: "zk-rollup" },
    ]);
    expect(config.autoRefill).to.deep.equal({ threshold: 50n * ONE, amount: 200n * ONE, gasOptimized: true });
    expect(config.defaultChain).to.equal("arbitrum");
    expect(config.token).to.deep.equal({ symbol: "AGPT", decimals: 18 });
    expect(config.ingest.dedupeTtlMs).to.equal(32 * 86_400_000);
    expect(config.files.map((file) => file.split("/").pop())).to.deep.equal(["relayer.yaml", "litellm-router.yaml", "payment-channels.yaml"]);
  });

  it("loads the example configuration with its defaults and ${VAR:-default} substitutions", function () {
    const config = loadRelayerConfig(join(REPO, "config", "relayer.example.yaml"), { env: { REDIS_URL: "redis://redis.internal:6380/2" } });
    expect(config.redis).to.deep.equal({
      url: "redis://redis.internal:6380/2",
      cluster: null,
      shards: 256,
      prefix: "agentgpt",
      commandTimeoutMs: 2000,
      waitReplicas: 0,
      waitTimeoutMs: 1000,
    });
    expect(config.chains.map((chain) => [chain.name, chain.chainId, chain.rpcUrls, chain.confirmations])).to.deep.equal([
      ["arbitrum", 42161, ["https://arb1.arbitrum.io/rpc"], 1],
      ["polygon", 137, ["https://polygon-rpc.com"], 32],
    ]);
    expect(config.routes[1]!.aliases).to.deep.equal(["mixtral", "mixtral-8x7b-32768"]);
    expect(config.pricing.usdRate).to.deep.equal({ num: (5n * ONE) / 2n, den: 1n });
    expect(config.payers.map((rule) => rule.payer ?? [...(rule.allowed ?? [])])).to.deep.equal([
      "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
      "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"],
    ]);
    expect(config.server).to.include({ host: "127.0.0.1", port: 8787, bodyLimit: 64_000_000, maxEntries: 10_000 });
    // parse_workers: auto is twice the CPUs, at most 4: more threads than CPUs, so a POST rarely waits behind another
    expect(config.server.parseWorkers).to.equal(Math.min(4, 2 * availableParallelism()));
  });

  it("names the file, line and field of a bad amount in an included file", function () {
    const dir = write({
      "router.yaml": 'routes:\n  - route: "r1"\n    model: "m1"\n    budget: 0.12 ETH/1k tokens\n    providers: [openai]\n',
      "relayer.yaml": "include: [router.yaml]\ndefault_chain: arbitrum\n",
    });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      'router.yaml:4: routes[0].budget: "0.12 ETH/1k tokens" is in ETH, but this relayer settles in AGPT',
    ]);
  });

  it("reports every problem at once: unknown field, bare number amount, unsafe wallet_from, missing chain", function () {
    const dir = write({
      "relayer.yaml": [
        "default_chain: arbitrum",
        "chains:",
        "  arbitrum: {}",
        "servr:",
        "  port: 1",
        "payment_channels:",
        "  - provider: openai",
        "    chain: optimism",
        "    balance: 500",
        "payers:",
        "  - key_alias: partner",
        "    wallet_from: spend_logs_metadata.wallet",
        "",
      ].join("\n"),
    });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.have.members([
      'relayer.yaml:4: servr: unknown field "servr" (a typo, or a section this version does not have?)',
      'relayer.yaml:9: payment_channels[0].balance: write an amount with its token, e.g. "500 AGPT" (a bare number is ambiguous)',
      "relayer.yaml:11: payers[0].allowed: wallet_from reads a wallet the caller can choose: list the wallets it may name in allowed, " +
        'or write "allow_any: true" if every caller may bill any wallet',
    ]);
    // The chain check runs once the sections themselves are valid.
    const fixed = write({
      "relayer.yaml": "chains:\n  arbitrum: {}\npayment_channels:\n  - provider: openai\n    chain: optimism\n",
    });
    expect(problems(() => loadRelayerConfig(join(fixed, "relayer.yaml"), { env: {} }))).to.deep.equal([
      'relayer.yaml:5: payment_channels[0].chain: chain "optimism" is not under chains: (arbitrum); add it there or fix the name',
    ]);
  });

  it("reads settler.rotation (every, key kind, keys, rotator key, gas) and a chain's rotator, and refuses what cannot rotate", function () {
    const dir = write({
      "relayer.yaml":
        "default_chain: arbitrum\nchains:\n  arbitrum:\n    rotator: \"0x5fbdb2315678afecb367f032d93f642f64180aa3\"\n" +
        "settler:\n  signer: { keystore: ./keys/relayer.json }\n  rotation:\n    every: 24h\n    password_file: ./keys/rotated.password\n" +
        "    rotator: { keystore: ./keys/rotator.json, password_env: ROTATOR_PASSWORD }\n    fund: 0.05 ETH\n",
    });
    const config = loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} });
    expect(config.settler.rotation).to.deep.include({
      everyMs: 24 * 3600 * 1000,
      key: "keystore",
      keysDir: "./keys/rotated",
      passwordFile: "./keys/rotated.password",
      fundWei: 5n * 10n ** 16n,
      pollMs: 2000,
      leaseTtlMs: 15_000,
    });
    expect(config.settler.rotation!.rotator).to.deep.include({ keystore: "./keys/rotator.json", passwordEnv: "ROTATOR_PASSWORD" });
    expect(config.chains[0]!.rotator).to.equal("0x5FbDB2315678afecb367f032d93F642f64180aa3");

    const bad = write({
      "relayer.yaml":
        "default_chain: arbitrum\nsettler:\n  signer: { keystore: a.json, retiring: { keystore: b.json } }\n  rotation:\n    every: 10ms\n" +
        "    key: yubikey\n    rotator: { keystore: r.json }\n    fund: lots\n",
    });
    const found = problems(() => loadRelayerConfig(join(bad, "relayer.yaml"), { env: {} }));
    expect(found.join("\n")).to.match(/settler\.rotation\.every: rotate at most once a second/);
    expect(found.join("\n")).to.match(/settler\.rotation\.key: the kind of key to create: "keystore" .* or "pkcs11"/);
    expect(found.join("\n")).to.match(/settler\.rotation\.fund: "lots" is not an amount of the chain's native coin/);
  });

  it("refuses a route defined twice in one file (wherever it sits among the sources), and a payment token that is not the token", function () {
    const dir = write({
      "a.yaml": "routes:\n  - { route: q, model: m, budget: 1 AGPT/1k tokens, providers: [p] }\n",
      "b.yaml": "routes:\n  - { route: r, model: m, budget: 1 AGPT/1k tokens, providers: [p] }\n  - { route: r, model: n, budget: 1 AGPT/1k tokens, providers: [p] }\n",
      "relayer.yaml": "include: [a.yaml, b.yaml]\ndefault_chain: arbitrum\n",
    });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      'b.yaml:3: routes[1].route: route "r" is defined twice (also routes[1])',
    ]);
    const twice = write({
      "relayer.yaml":
        "default_chain: arbitrum\nroutes:\n  - { route: r, model: m, budget: 1 AGPT/1k tokens, providers: [p] }\n  - { route: r, model: n, budget: 1 AGPT/1k tokens, providers: [p] }\n" +
        "agentgpt:\n  blockchain:\n    payment_token: USDC\n",
    });
    expect(problems(() => loadRelayerConfig(join(twice, "relayer.yaml"), { env: {} }))).to.deep.equal([
      'relayer.yaml:4: routes[1].route: route "r" is defined twice (also routes[0])',
      "relayer.yaml:7: agentgpt.blockchain.payment_token: payment_token is USDC but amounts are in AGPT: set token.symbol (and token.decimals) to match",
    ]);
  });

  it("refuses a backfill lookback that reaches past the dedupe records (a call billed and forgotten would be billed again)", function () {
    const dir = write({ "relayer.yaml": `include: [${ROUTER}, ${CHANNELS}]\ningest:\n  dedupe_ttl: 2h\nbackfill:\n  lookback: 2h\n` });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      "relayer.yaml:5: backfill.lookback: 2h reaches back past the dedupe records (ingest.dedupe_ttl 2h): a call billed and forgotten would be billed again; set lookback to at most 108m, or raise ingest.dedupe_ttl",
    ]);
    const fits = write({ "relayer.yaml": `include: [${ROUTER}, ${CHANNELS}]\ningest:\n  dedupe_ttl: 2h\nbackfill:\n  lookback: 108m\n` });
    expect(loadRelayerConfig(join(fits, "relayer.yaml"), { env: {} }).backfill?.lookbackMs).to.equal(108 * 60_000);
    // the defaults (dedupe_ttl 32d, lookback 2h) fit
    const defaults = write({ "relayer.yaml": `include: [${ROUTER}, ${CHANNELS}]\nbackfill: {}\n` });
    expect(loadRelayerConfig(join(defaults, "relayer.yaml"), { env: {} }).backfill?.lookbackMs).to.equal(2 * 3_600_000);
  });

  it("adds an operator's routes, aliases and payers beside the seed's files, later sources winning, each override named with both places", function () {
    const dir = write({
      "operator.yaml": [
        "routes:",
        '  - route: "reasoning"',
        '    model: "o1-preview"',
        "    budget: 0.6 AGPT/1k tokens",
        "    providers: [openai]",
        '  - route: "cost_optimized"',
        "    budget: 0.009 AGPT/1k tokens",
        "route_aliases:",
        "  reasoning: [o1]",
        "payers:",
        "  - key_alias: prod-backend",
        '    payer: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"',
        "  - key_alias: research",
        '    payer: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"',
        "",
      ].join("\n"),
      "relayer.yaml": [
        `include: [${ROUTER}, ${CHANNELS}, operator.yaml]`,
        "chains: { arbitrum: {}, polygon: {} }",
        "payers:",
        "  - key_alias: prod-backend",
        '    payer: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"',
        "",
      ].join("\n"),
    });
    const seedBefore = readFileSync(ROUTER, "utf8");
    const config = loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} });
    expect(readFileSync(ROUTER, "utf8")).to.equal(seedBefore);
    expect(config.routes.map((route) => [route.name, route.model, route.pricePer1k, route.providers.map((p) => p.name)])).to.deep.equal([
      ["mission_critical", "gpt-4-turbo", (12n * ONE) / 100n, ["openai", "anyscale", "together-ai"]],
      ["cost_optimized", "mixtral-8x22b", (9n * ONE) / 1000n, ["groq", "firework-ai", "deepinfra"]],
      ["reasoning", "o1-preview", (6n * ONE) / 10n, ["openai"]],
    ]);
    expect(config.routes[2]!.aliases).to.deep.equal(["o1"]);
    // the main file comes after what it includes: its prod-backend payer wins over the operator file's
    expect(config.payers.map((rule) => [rule.match.key_alias, rule.payer])).to.deep.equal([
      [["prod-backend"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"],
      [["research"], "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"],
    ]);
    const overrides = (config.overrides ?? []).map(formatOverride);
    expect(overrides).to.deep.equal([
      `${join(dir, "operator.yaml")}:7:5 routes[1].budget overrides config/litellm-router.yaml:13:5 routes[1].budget (later sources win)`,
      `${join(dir, "relayer.yaml")}:5:5 payers[0].payer overrides ${join(dir, "operator.yaml")}:12:5 payers[0].payer (later sources win)`,
    ]);

    // `relayer check` prints them (it also checks what `start` needs: an ingest token)
    const check = spawnSync(process.execPath, [join(REPO, "bin", "agentgpt.mjs"), "relayer", "check", "--config", join(dir, "relayer.yaml")], {
      cwd: REPO,
      encoding: "utf8",
      env: { ...process.env, AGENTGPT_INGEST_TOKENS: "check-token-0123456789abcdef" },
    });
    expect(check.status, check.stderr).to.equal(0);
    expect(check.stdout).to.include(`warning: ${overrides[0]}\n`);
    expect(check.stdout).to.include("  reasoning: model o1-preview, 0.6 AGPT per 1k tokens, providers openai\n");

    // a directory in include: its YAML files in name order
    const drop = write({
      "10-first.yaml": "routes:\n  - { route: reasoning, model: o1-preview, budget: 0.6 AGPT/1k tokens, providers: [openai] }\n",
      "20-second.yaml": "routes:\n  - { route: reasoning, budget: 0.7 AGPT/1k tokens }\n",
      "notes.txt": "not read",
    });
    const withDir = write({ "relayer.yaml": `include: [${ROUTER}, ${drop}]\nchains: { arbitrum: {} }\n` });
    const fromDir = loadRelayerConfig(join(withDir, "relayer.yaml"), { env: {} });
    expect(fromDir.routes.map((route) => [route.name, route.pricePer1k])).to.deep.equal([
      ["mission_critical", (12n * ONE) / 100n],
      ["cost_optimized", (85n * ONE) / 10_000n],
      ["reasoning", (7n * ONE) / 10n],
    ]);
  });

  it("refuses an operator file that is malformed or does not fit the seed's shape, naming its own file and field", function () {
    const dir = write({
      "shape.yaml": "routes:\n  cost_optimized:\n    budget: 0.009 AGPT/1k tokens\n",
      "bad.yaml": "routes:\n  - route: cost_optimized\n    budget: cheap\n  - route: extra\n    model: m\n    budget: 0.1 AGPT/1k tokens\n    providers: [openai]\n    colour: red\n",
      "relayer.yaml": `include: [${ROUTER}, shape.yaml]\nchains: { arbitrum: {} }\n`,
      "relayer2.yaml": `include: [${ROUTER}, bad.yaml]\nchains: { arbitrum: {} }\n`,
    });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      "shape.yaml:1: routes: is a mapping here but a list in config/litellm-router.yaml (routes): write it in the same form to override it",
    ]);
    const bad = problems(() => loadRelayerConfig(join(dir, "relayer2.yaml"), { env: {} }));
    expect(bad).to.have.length(2);
    expect(bad[0]).to.match(/^bad\.yaml:3: routes\[0\]\.budget: /);
    expect(bad[1]).to.equal('bad.yaml:8: routes[1].colour: unknown field "colour" (a typo, or a section this version does not have?)');
  });

  it("says which environment variable is missing, and where, and what YAML could not read", function () {
    const dir = write({ "relayer.yaml": "default_chain: arbitrum\nredis:\n  url: ${AGENTGPT_TEST_REDIS}\n", "broken.yaml": "routes:\n  - route: [\n" });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      "relayer.yaml:3: redis.url: environment variable AGENTGPT_TEST_REDIS is not set (write ${AGENTGPT_TEST_REDIS:-default} to give a default)",
    ]);
    const broken = problems(() => loadRelayerConfig(join(dir, "broken.yaml"), { env: {} }));
    expect(broken).to.have.length.greaterThan(0);
    expect(broken[0]).to.match(/^broken\.yaml:\d+: : YAML: /);
    expect(problems(() => loadRelayerConfig(join(dir, "missing.yaml"), { env: {} }))).to.deep.equal(["missing.yaml:-: : cannot read the configuration file (no such file)"]);
  });

  it("needs a chain, and a USD rate for response_cost routes", function () {
    const dir = write({
      "relayer.yaml": "routes:\n  - route: metered\n    model: claude-3-opus\n    pricing: response_cost\n    providers: [anthropic]\n",
    });
    expect(problems(() => loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} }))).to.deep.equal([
      'relayer.yaml:4: routes[0].pricing: pricing: response_cost needs a USD rate: add pricing.usd_rate, e.g. "2.5 AGPT/USD"',
      "relayer.yaml:1: default_chain: no chain is configured: add chains: (e.g. arbitrum) or default_chain:, the chain receipts settle on",
    ]);
  });
});
