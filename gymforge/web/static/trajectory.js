// One trajectory: every step's thought, command and observation, the validate scores, the exit status.
import { dl, el, fmt, getJSON, link, replace, showError, taskPath, usd } from "/static/common.js";
import { lineChart } from "/static/plot.js";

const trajId = decodeURIComponent(location.pathname.split("/").pop());

function step(s) {
  return el("li", { class: "step", "data-step": s.step },
    el("h3", {}, `step ${s.step}`, s.score !== null ? el("span", { class: "score", text: ` score ${fmt(s.score)}` }) : null,
      el("span", { class: "muted", text: s.execution_time !== null ? ` · ${fmt(s.execution_time, 3)} s` : "" }),
      s.format_corrections ? el("span", { class: "muted", text: ` · ${s.format_corrections} format correction(s)` }) : null),
    el("p", { class: "thought", text: s.thought }),
    el("pre", { class: "command", text: s.action }),
    el("pre", { class: "observation", text: s.observation }));
}

function scoresPlot(t) {
  const scored = t.trajectory.filter((s) => s.score !== null);
  if (!scored.length) return el("p", { class: "muted", text: "no validate scores" });
  return lineChart([{ name: `${t.info.metric || "score"} (${t.info.direction || ""})`, values: scored.map((s) => s.score) }],
    { labels: scored.map((s) => `step ${s.step}`), baseline: t.baseline_score, points: true, fit: true, height: 170 });
}

async function main() {
  const t = await getJSON("/api/trajectories/" + encodeURIComponent(trajId));
  if (!t) { replace("page", el("h1", { text: "No such trajectory" }), el("p", { text: trajId })); return; }
  const stats = t.info.model_stats || {};
  replace("page",
    el("h1", { text: `${t.task_id ?? "?"} — attempt ${t.attempt ?? "?"}` }),
    el("p", {}, "task: ", t.task_id ? link(taskPath(t.task_id), t.task_id) : "unknown"),
    dl([
      ["status", el("span", { class: "status " + t.status, text: t.status })],
      ["exit status", el("span", { id: "exit-status", text: t.info.exit_status || t.exit_status || "–" })],
      ["exit detail", t.info.exit_detail || null], ["score", t.score], ["baseline", t.baseline_score],
      ["metric", t.info.metric ? `${t.info.metric} (${t.info.direction})` : null],
      ["steps", t.steps], ["tokens", t.tokens], ["gain", t.gain], ["verdict reasons", t.reasons || null],
      ["model", t.info.model || null],
      ["model calls", stats.api_calls !== undefined ? `${stats.api_calls} calls, ${fmt(stats.tokens_sent)} sent, ${fmt(stats.tokens_received)} received, ${usd(stats.instance_cost)}` : null],
      ["environment", t.environment],
    ]),
    el("h2", { text: "Validate scores" }), el("div", { id: "scores" }, scoresPlot(t)),
    el("h2", { text: `Steps (${t.trajectory.length})` }),
    t.recorded ? el("ol", { class: "steps", start: 0 }, t.trajectory.map(step)) : el("p", { class: "muted", text: "the trajectory itself has not reached the store yet" }));
  document.body.dataset.loaded = "yes";
}

main().catch(showError);
