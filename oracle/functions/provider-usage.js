// Chainlink Functions source (runs on the DON, Deno; the body of an async function): the provider-side usage
// behind one dispute: a payer's tokens of one provider and model over one call interval (the usage bucket its rows
// committed when they settled). UsageOracle.requestVerification sends it with these args:
//   args[0] usage API base URL (governed on-chain), args[1] provider name, args[2] model name,
//   args[3] payer (lowercase 0x address), args[4] interval start, args[5] interval end (unix seconds, end exclusive)
// and the DON-hosted secret `usageApiKey` (sent as a bearer token; never echoed in errors).
// It asks GET {base}/v1/usage?provider=&model=&payer=&start=&end= and expects JSON
//   { "provider", "model", "payer", "start", "end", "tokens" }
// echoing the query, with `tokens` a non-negative integer (number or decimal string) below 2^64.
// Returns one uint256: the tokens the provider reports. UsageOracle compares them with all the tokens billed over the
// interval by the rows the dispute named.
if (args.length !== 6) throw Error(`expected 6 args, got ${args.length}`)
const [baseUrl, provider, model, payer, start, end] = args
if (!/^https?:\/\/[^\s]+$/.test(baseUrl)) throw Error("usage API URL is not http(s)")
if (!/^0x[0-9a-f]{40}$/.test(payer)) throw Error("payer is not a lowercase address")
if (!/^[0-9]{1,12}$/.test(start) || !/^[0-9]{1,12}$/.test(end) || Number(start) >= Number(end)) {
  throw Error("bad usage window")
}
if (typeof secrets === "undefined" || !secrets.usageApiKey) throw Error("secret usageApiKey is missing")

const response = await Functions.makeHttpRequest({
  url: `${baseUrl.replace(/\/+$/, "")}/v1/usage`,
  method: "GET",
  params: { provider, model, payer, start, end },
  headers: { Authorization: `Bearer ${secrets.usageApiKey}`, Accept: "application/json" },
  timeout: 9000,
})
if (response.error) {
  const status = response.response && response.response.status
  throw Error(status ? `usage API answered HTTP ${status}` : "usage API unreachable")
}

const body = response.data
if (body === null || typeof body !== "object") throw Error("usage API answered no JSON object")
const echoed =
  body.provider === provider &&
  body.model === model &&
  String(body.payer).toLowerCase() === payer &&
  String(body.start) === start &&
  String(body.end) === end
if (!echoed) throw Error("usage API answered another query")

if (typeof body.tokens === "number" && !Number.isSafeInteger(body.tokens)) throw Error("tokens is not a safe integer")
const tokens = typeof body.tokens === "number" ? body.tokens.toString() : body.tokens
if (typeof tokens !== "string" || !/^(0|[1-9][0-9]{0,19})$/.test(tokens)) throw Error("tokens is not an integer")
const value = BigInt(tokens)
if (value >= 2n ** 64n) throw Error("tokens out of range")
return Functions.encodeUint256(value)
