// The dashboard: funnel, plots, consumer lag, dead letters, budget; live events over server-sent events.
import { dl, el, fmt, getJSON, link, pct, replace, shortTime, showError, table, trajPath, usd } from "/static/common.js";
import { lineChart } from "/static/plot.js";

const LIVE_MAX = 200;
const state = { events: {}, total: 0, refreshTimer: null };

function renderFunnel(summary) {
  if (!summary || !summary.funnel) {
    replace("funnel", el("p", { class: "empty", text: "no store yet: run the sink (gymforge agent sink, or gymforge run)" }));
    return;
  }
  const f = summary.funnel;
  state.events = { ...f.events };
  state.total = Object.values(f.events).reduce((a, b) => a + b, 0);
  replace("total-events", fmt(state.total));
  replace("funnel", table([
    { label: "stage", value: (s) => s.stage },
    { label: "count", value: (s) => el("span", { class: "count", "data-type": s.type, text: fmt(s.count) }), cls: "num" },
    { label: "of previous", value: (s) => (s.of ? pct(s.conversion) : ""), cls: "num" },
    { label: "rejected", value: (s) => (s.rejected_type ? fmt(s.rejected) : ""), cls: "num" },
    { label: `per min (last ${f.rate_window_min})`, value: (s) => s.per_min.toFixed(1), cls: "num" },
  ], f.stages));
  const u = summary.usage;
  replace("usage", `${fmt(u.calls)} model calls, ${fmt(u.tokens)} tokens, ${usd(u.usd)}`);
  const b = summary.breadth;
  replace("breadth", `${fmt(b.datasets)} datasets, ${fmt(b.task_types)} task types, ${fmt(b.domains)} domains`);
}

function renderSeries(s) {
  if (!s) return;
  const labels = s.minutes.map((m) => m.slice(11));
  replace("plot-throughput", lineChart([
    { name: "all events", values: s.throughput["all"] },
    { name: "trajectories", values: s.throughput["trajectory.completed"] },
    { name: "accepted", values: s.throughput["trajectory.accepted"] },
    { name: "tasks", values: s.throughput["task.validated"] },
  ], { labels }));
  replace("plot-tokens", lineChart([{ name: "tokens/min", values: s.tokens }], { labels }));
  replace("plot-cost", lineChart([{ name: "USD/min", values: s.cost_usd }], { labels, format: (y) => "$" + y.toPrecision(2) }));
}

function renderBus(b) {
  replace("bus-state", b.connected ? "connected" : "not connected");
  if (!b.connected) {
    replace("lag", el("p", { class: "empty", text: `NATS not reachable${b.url ? " at " + b.url : ""}` }));
    replace("dead-subjects", "");
    return;
  }
  replace("lag", table([
    { label: "role", value: (c) => c.role },
    { label: "pending", value: (c) => c.pending, cls: "num" },
    { label: "ack pending", value: (c) => c.ack_pending, cls: "num" },
    { label: "redelivered", value: (c) => c.redelivered, cls: "num" },
  ], b.consumers, "no consumers yet"));
  const dead = Object.entries(b.dead_letters);
  replace("dead-subjects", dead.length ? dead.map(([k, v]) => `${k}: ${v}`).join(", ") : "no dead letters on the stream");
}

function renderDead(d) {
  replace("dead", table([
    { label: "time", value: (r) => shortTime(r.time) },
    { label: "role", value: (r) => r.role },
    { label: "subject", value: (r) => r.subject },
    { label: "reason", value: (r) => r.reason, cls: "wrap" },
    { label: "replayed", value: (r) => (r.replayed ? "yes" : "") },
  ], d.letters, "no dead letters"));
}

function renderBudget(b) {
  const lim = b.limit || {};
  replace("budget", dl([
    ["limit", lim.usd === null && lim.tokens === null ? "none" :
      [lim.usd !== null ? usd(lim.usd) : null, lim.tokens !== null ? fmt(lim.tokens) + " tokens" : null].filter(Boolean).join(" / ")],
    ["set in", b.source === "kv" ? "KV gf-config/budget" : "settings"],
    ["spent", `${usd(b.spent.usd)} / ${fmt(b.spent.tokens)} tokens`],
    ["state", b.exhausted || "available"],
  ]));
}

async function refresh(which = ["summary", "series", "bus", "dead", "budget"]) {
  const jobs = {
    summary: () => getJSON("/api/summary").then(renderFunnel),
    series: () => getJSON("/api/series?minutes=60").then(renderSeries),
    bus: () => getJSON("/api/bus").then(renderBus),
    dead: () => getJSON("/api/dead").then(renderDead),
    budget: () => getJSON("/api/budget").then(renderBudget),
  };
  try {
    await Promise.all(which.map((k) => jobs[k]()));
    document.body.dataset.loaded = "yes";
  } catch (err) {
    showError(err);
  }
}

function eventLink(ev) {
  if (ev.type === "trajectory.completed" && ev.id) return link(trajPath(ev.id), "view");
  return null;
}

function onEvent(ev) {
  const list = document.getElementById("live");
  const item = el("li", { class: "event " + String(ev.type).split(".")[0], "data-id": ev.id || "", "data-type": ev.type },
    el("span", { class: "time", text: shortTime(ev.time) }),
    el("span", { class: "type", text: ev.type }),
    el("span", { class: "summary", text: ev.summary || "" }),
    el("span", { class: "subject", text: ev.subject }),
    eventLink(ev));
  list.prepend(item);
  document.getElementById("live-empty").hidden = true;
  while (list.children.length > LIVE_MAX) list.lastElementChild.remove();
  state.events[ev.type] = (state.events[ev.type] || 0) + 1;
  state.total += 1;
  replace("total-events", fmt(state.total));
  for (const cell of document.querySelectorAll("#funnel .count")) {
    if (cell.dataset.type === ev.type) cell.textContent = fmt(state.events[ev.type]);
  }
  if (state.refreshTimer === null) {  // the sink writes the store right behind the bus: re-read it soon
    state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refresh(); }, 1500);
  }
}

function connectLive() {
  const stream = new EventSource("/api/events");
  const badge = document.getElementById("live-state");
  stream.onopen = () => { document.body.dataset.live = "open"; badge.textContent = "live"; badge.className = "pill on"; };
  stream.onerror = () => { document.body.dataset.live = "retrying"; badge.textContent = "reconnecting…"; badge.className = "pill off"; };
  stream.addEventListener("gf", (msg) => onEvent(JSON.parse(msg.data)));
}

refresh();
connectLive();
setInterval(() => refresh(["bus", "budget"]), 5000);
