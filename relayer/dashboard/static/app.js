// The dashboard page: fetches /api/report (same origin, the session cookie if any) and renders it; again every
// `refreshMs`. Amounts arrive as decimal strings of token units (pending: thousandths) and are formatted here with
// BigInt, exactly, as the CLI formats them. Charts (Chart.js, served by the relayer) plot the same figures.
// Text goes into the page through textContent only.
"use strict";

const GROUP_TITLE = { provider: "Provider", model: "Model", user: "User", route: "Route" };
const PALETTE = ["#2f5fd0", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const params = new URLSearchParams(location.search);
const state = {
  granularity: GROUP_TITLE[params.get("granularity")] ? params.get("granularity") : "provider",
  user: params.get("user") || "",
  charts: {},
  timer: null,
};

// ---------------------------------------------------------------- formatting (same rules as relayer/monitor/format-amount.ts)

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function formatUnits(text, decimals) {
  const value = BigInt(text);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, "");
  return `${negative ? "-" : ""}${group(whole)}${fraction === "" ? "" : `.${fraction}`}`;
}

// Pending amounts are estimates until their batch settles: rounded half up to DISPLAY_DECIMALS, as the CLI does.
const DISPLAY_DECIMALS = 6;

function formatMilliRounded(text, decimals) {
  const milli = BigInt(text);
  const shown = Math.min(DISPLAY_DECIMALS, decimals);
  const divisor = 10n ** BigInt(decimals + 3 - shown);
  const negative = milli < 0n;
  const magnitude = negative ? -milli : milli;
  const rounded = (magnitude + divisor / 2n) / divisor;
  if (rounded === 0n && magnitude > 0n) return `${negative ? ">-" : "<"}${formatUnits("1", shown)}`;
  return formatUnits(String(negative ? -rounded : rounded), shown);
}

function count(n) {
  return group(String(n));
}

function latency(requests, totalMs) {
  return requests === 0 ? "-" : `${count(Math.round(totalMs / requests))}ms`;
}

/** A float for plotting only (the tables show the exact figures). */
function plotValue(text, decimals) {
  return Number(formatUnits(text, decimals).replace(/,/g, ""));
}

function utc(seconds, withDate) {
  const iso = new Date(seconds * 1000).toISOString();
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

function ago(ms) {
  if (ms === null) return "-";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function setCard(name, value, sub) {
  const card = document.querySelector(`[data-figure="${name}"]`);
  card.querySelector(".value").textContent = value;
  card.querySelector(".sub").textContent = sub;
}

function fillList(id, entries) {
  const list = document.getElementById(id);
  list.replaceChildren(...entries.flatMap(([key, label, value]) => [el("dt", {}, label), el("dd", { [`data-${id}`]: key }, value)]));
}

function link(template, placeholder, value, text, cls) {
  if (!template || !value) return document.createTextNode(text || "-");
  const href = template.replace(placeholder, encodeURIComponent(value));
  if (!/^https?:\/\//.test(href)) return document.createTextNode(text);
  return el("a", { href, class: cls, target: "_blank", rel: "noopener noreferrer" }, text);
}

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex;
}

// ---------------------------------------------------------------- rendering

function render(body) {
  const report = body.report;
  const { decimals, symbol } = report.token;
  const units = (text) => formatUnits(text, decimals);
  const milli = (text) => formatMilliRounded(text, decimals);
  const title = GROUP_TITLE[report.granularity];

  document.getElementById("date").textContent = `LLM USAGE ${report.date}`;
  const hours = report.windowMs / 3_600_000;
  document.getElementById("window").textContent =
    `settled in the last ${Number.isInteger(hours) ? `${hours}h` : `${Math.round(report.windowMs / 60_000)}m`} on ${report.chains.map((c) => c.name).join(", ")}` +
    (report.user ? ` · payer ${report.user}` : "");
  document.getElementById("status").textContent = `updated ${new Date(report.generatedAt).toISOString().slice(11, 19)} UTC`;
  for (const node of document.querySelectorAll(".group-title")) node.textContent = node.tagName === "TH" ? title : title.toLowerCase();
  for (const node of document.querySelectorAll(".group-name")) node.textContent = title.toLowerCase();
  document.querySelector(".cost-title").textContent = `${symbol} Cost`;
  for (const button of document.querySelectorAll("#granularity button")) button.setAttribute("aria-pressed", String(button.dataset.granularity === report.granularity));

  const alerts = [];
  for (const chain of report.chains) {
    if (chain.error) alerts.push(`chain ${chain.name} could not be read (${chain.error}): its settled figures are missing`);
    else if (chain.offline) alerts.push(`chain ${chain.name} has no rpc_urls: only what the relayer holds for it is shown`);
  }
  if (report.unattributedBatches > 0) alerts.push(`${report.unattributedBatches} settled batch(es) have no file in the archive: shown under "(no batch file)"`);
  if (!report.queue.complete) alerts.push("more ingest chunks wait than were read: pending figures are a lower bound");
  document.getElementById("alerts").replaceChildren(...alerts.map((text) => el("p", {}, text)));

  const t = report.total;
  setCard("settled", `${units(t.settled.amount)} ${symbol}`, `${report.groups.filter((g) => g.settled.requests > 0).length} ${title.toLowerCase()}(s)`);
  setCard("requests", count(t.settled.requests), `mean duration ${latency(t.settled.requests, t.settled.latencyMsTotal)}`);
  setCard("pending", `${milli(t.pending.amountMilli)} ${symbol}`, `${count(t.pending.requests)} requests not yet settled`);
  setCard("in-dispute", `${units(t.inDispute.amount)} ${symbol}`, `${count(t.inDispute.rows)} row(s); refunded ${units(t.refunded)} ${symbol}`);
  const reasons = Object.entries(t.rejected.reasons).map(([reason, n]) => `${reason} ${n}`).join(", ");
  setCard("rejected", `${units(t.rejected.amount)} ${symbol}`, `${count(t.rejected.rows)} row(s)${reasons ? `: ${reasons}` : ""}`);
  const budget = report.budget;
  if (budget.kind === "user") setCard("budget", `${units(budget.remaining)} ${symbol}`, `payer ${short(budget.user)}, today`);
  else setCard("budget", budget.remaining === null ? "no model budget" : `${units(budget.remaining)} ${symbol}`, "governed model budgets left today");

  const row = (g, cls) =>
    el(
      "tr",
      { "data-key": g.key, class: cls },
      el("td", { class: "key" }, g.key),
      el("td", { class: "requests" }, count(g.settled.requests)),
      el("td", { class: "cost" }, units(g.settled.amount)),
      el("td", { class: "latency" }, latency(g.settled.requests, g.settled.latencyMsTotal)),
      el("td", { class: "pending" }, g.pending.requests === 0 ? "-" : `${milli(g.pending.amountMilli)} · ${count(g.pending.requests)} req`),
      el("td", { class: "dispute" }, g.inDispute.rows === 0 ? "-" : `${units(g.inDispute.amount)} · ${count(g.inDispute.rows)} row(s)`),
      el("td", { class: "rejected" }, g.rejected.rows === 0 ? "-" : `${units(g.rejected.amount)} · ${count(g.rejected.rows)} row(s)`),
      el("td", { class: "refunded" }, g.refunded === "0" ? "-" : units(g.refunded)),
    );
  document.querySelector("#usage tbody").replaceChildren(...report.groups.map((g) => row(g)));
  const totalRow = row(t, "total");
  totalRow.querySelector(".cost").textContent = `${units(t.settled.amount)} ${symbol}`;
  document.querySelector("#usage tfoot").replaceChildren(totalRow);

  const e = report.escrow;
  fillList("escrow", [
    ["escrowed", "Escrowed by settlement", `${units(e.escrowed)} ${symbol}`],
    ["held", "Held (dispute window)", units(e.held)],
    ["released", "Released to providers", units(e.released)],
    ["inDispute", "In dispute", units(e.inDispute)],
    ["disputePaid", "Disputes: to providers", units(e.disputePaid)],
    ["refunded", "Disputes: refunded", units(e.refunded)],
  ]);
  // where the charged money stands, per chain's token (the CLI's "Payouts" table)
  document.querySelector("#payouts tbody").replaceChildren(
    ...(report.payouts || []).map((p) =>
      el(
        "tr",
        { "data-payouts": p.chain },
        el("td", {}, `${p.token} on ${p.chain}`),
        el("td", { class: "escrowed" }, units(p.escrowed)),
        el("td", { class: "releasable" }, p.releasableBatches === 0 ? units(p.releasable) : `${units(p.releasable)} · ${count(p.releasableBatches)} batch(es)`),
        el("td", { class: "released" }, units(p.released)),
        el("td", { class: "withdrawn" }, units(p.withdrawn)),
      ),
    ),
  );

  const q = report.queue;
  fillList("queue", [
    ["ingestRequests", "Ingest queue (requests)", count(q.ingestRequests)],
    ["ingestChunks", "Ingest chunks", count(q.ingestChunks)],
    ["ingestAge", "Oldest in ingest queue", ago(q.ingestOldestAt)],
    ["poolRequests", "Batcher pool (requests)", count(q.poolRequests)],
    ["poolAge", "Oldest in pool", ago(q.poolOldestAt)],
    ["batches", "Sealed batches not settled", count(q.batches)],
    ["batchRequests", "Requests in them", count(q.batchRequests)],
    ["batchAge", "Oldest unsettled batch", ago(q.oldestBatchAt)],
    ["blocked", "Blocked batches", count(q.blocked)],
    ["refused", "Refused batches (receipts root settled by another batch)", `${count(q.refused.batches)} (${count(q.refused.receipts)} requests)`],
  ]);

  const models = budget.kind === "models" ? budget.models : [];
  const multiChain = new Set(models.map((m) => m.chain)).size > 1;
  const modelName = (m) => (multiChain ? `${m.chain}/${m.name}` : m.name);
  document.querySelector("#budgets tbody").replaceChildren(
    ...models.map((m) =>
      el(
        "tr",
        { "data-model": modelName(m) },
        el("td", {}, modelName(m)),
        el("td", { class: "limit" }, m.dailyLimit === "0" ? "none" : units(m.dailyLimit)),
        el("td", { class: "spent" }, units(m.spentToday)),
        el("td", { class: "left" }, m.left === null ? "unlimited" : units(m.left)),
      ),
    ),
  );

  const batchRow = (b) => {
    const explorer = body.links.explorers[b.chain];
    const time = b.settledAt !== null ? utc(b.settledAt, true) : b.since !== null ? `${utc(Math.floor(b.since / 1000), true)} (sealed)` : "-";
    return el(
      "tr",
      { "data-batch": b.batchId },
      el("td", { class: "mono", title: b.batchId }, short(b.batchId)),
      el("td", {}, b.chain),
      el("td", { class: "state" }, b.state),
      el("td", {}, time),
      el("td", { class: "requests" }, b.requests === null ? "-" : count(b.requests)),
      el("td", { class: "rows" }, b.rows === null ? "-" : b.acceptedRows === null ? count(b.rows) : `${b.acceptedRows} / ${b.rejectedRows} rejected`),
      el("td", { class: "amount" }, units(b.amount)),
      el("td", { class: "dispute" }, b.inDispute === "0" ? "-" : units(b.inDispute)),
      el("td", { class: "mono" }, b.txHash && /^0x[0-9a-fA-F]{64}$/.test(b.txHash) ? link(explorer, "{tx}", b.txHash, short(b.txHash), "tx") : "-"),
      el("td", { class: "mono" }, b.cid ? link(body.links.ipfsGateway, "{cid}", b.cid, short(b.cid), "cid") : "-"),
    );
  };
  document.querySelector("#batches tbody").replaceChildren(...report.batches.map(batchRow));

  renderCharts(report);
}

function renderCharts(report) {
  if (typeof Chart === "undefined") return;
  const { decimals, symbol } = report.token;
  const series = report.series;
  const withDate = series.starts.length > 0 && series.starts[series.starts.length - 1] - series.starts[0] > 2 * 86_400;
  const labels = series.starts.map((s) => utc(s, withDate));
  const base = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } };

  draw("cost", {
    type: "bar",
    data: {
      labels,
      datasets: series.groups.map((g, i) => ({
        label: g.key,
        data: g.amount.map((a) => plotValue(a, decimals)),
        backgroundColor: PALETTE[i % PALETTE.length],
        stack: "cost",
      })),
    },
    options: { ...base, scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: symbol } } } },
  });

  draw("requests", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { type: "bar", label: "requests", data: series.total.requests, backgroundColor: "#9db4ea", yAxisID: "y", order: 2 },
        {
          type: "line",
          label: "mean call duration (ms)",
          data: series.total.requests.map((n, i) => (n === 0 ? null : Math.round(series.total.latencyMsTotal[i] / n))),
          borderColor: "#e15759",
          backgroundColor: "#e15759",
          spanGaps: true,
          pointRadius: 4,
          order: 1,
          yAxisID: "y1",
        },
      ],
    },
    options: {
      ...base,
      scales: {
        y: { position: "left", title: { display: true, text: "requests" } },
        y1: { position: "right", title: { display: true, text: "ms" }, grid: { drawOnChartArea: false } },
      },
    },
  });

  const e = report.escrow;
  draw("escrow", {
    type: "doughnut",
    data: {
      labels: ["held", "released", "in dispute", "dispute → provider", "refunded"],
      datasets: [
        {
          data: [e.held, e.released, e.inDispute, e.disputePaid, e.refunded].map((a) => plotValue(a, decimals)),
          backgroundColor: ["#2f5fd0", "#59a14f", "#f28e2b", "#76b7b2", "#e15759"],
        },
      ],
    },
    options: { ...base, plugins: { legend: { position: "right" } } },
  });

  const models = report.budget.kind === "models" ? report.budget.models.filter((m) => m.left !== null) : [];
  draw("budget", {
    type: "bar",
    data: {
      labels: models.map((m) => m.name),
      datasets: [
        { label: "spent today", data: models.map((m) => plotValue(m.spentToday, decimals)), backgroundColor: "#f28e2b", stack: "b" },
        { label: "left", data: models.map((m) => plotValue(m.left, decimals)), backgroundColor: "#59a14f", stack: "b" },
      ],
    },
    options: { ...base, indexAxis: "y", scales: { x: { stacked: true }, y: { stacked: true } } },
  });
}

function draw(name, config) {
  const existing = state.charts[name];
  if (existing && existing.config.type === config.type) {
    existing.data = config.data;
    existing.options = config.options;
    existing.update("none");
    return;
  }
  if (existing) existing.destroy();
  state.charts[name] = new Chart(document.getElementById(`${name}-chart`), config);
}

// ---------------------------------------------------------------- loading

async function load() {
  clearTimeout(state.timer);
  let refreshMs = 5000;
  try {
    const query = new URLSearchParams({ granularity: state.granularity });
    if (state.user) query.set("user", state.user);
    const response = await fetch(`/api/report?${query}`, { cache: "no-store", credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.reason || `HTTP ${response.status}`);
    refreshMs = body.refreshMs;
    render(body);
    document.body.dataset.generatedAt = String(body.report.generatedAt);
    document.body.dataset.state = "ready";
  } catch (error) {
    document.getElementById("status").textContent = `not updated: ${error.message}`;
    if (document.body.dataset.state !== "ready") document.body.dataset.state = "error";
  }
  state.timer = setTimeout(load, refreshMs);
}

function setup() {
  const nav = document.getElementById("granularity");
  nav.replaceChildren(
    ...Object.entries(GROUP_TITLE).map(([key, title]) => {
      const button = el("button", { type: "button", "data-granularity": key, "aria-pressed": String(key === state.granularity) }, title);
      button.addEventListener("click", () => {
        state.granularity = key;
        const next = new URLSearchParams(location.search);
        next.set("granularity", key);
        history.replaceState(null, "", `?${next}`);
        void load();
      });
      return button;
    }),
  );
  void load();
}

document.addEventListener("DOMContentLoaded", setup);
