// One task: its facts, every debug round with its error, the bundle's files, its trajectories.
import { dl, el, fmt, getJSON, link, pct, replace, shortTime, showError, table, trajPath } from "/static/common.js";

const taskId = decodeURIComponent(location.pathname.split("/").pop());

function files(map) {
  const names = Object.keys(map).sort();
  if (!names.length) return el("p", { class: "muted", text: "no files" });
  return el("div", { class: "files" }, names.map((name) =>
    el("details", { class: "file" }, el("summary", { text: `${name} (${map[name].length} chars)` }), el("pre", { text: map[name] }))));
}

function rounds(list) {
  if (!list.length) return el("p", { class: "muted", text: "no drafts recorded (only the validated bundle)" });
  return el("ol", { class: "rounds" }, list.map((r) => el("li", { class: "round", "data-revision": r.revision },
    el("h3", { text: `revision ${r.revision} — ${r.outcome}` }),
    el("p", { class: "muted", text: shortTime(r.time) }),
    r.fixing ? el("div", {}, el("h4", { text: "written to fix" }), el("pre", { class: "error-text", text: r.fixing })) : null,
    r.error ? el("div", {}, el("h4", { text: "error" }), el("pre", { class: "error-text round-error", text: r.error })) : null,
    el("h4", { text: `files changed (${Object.keys(r.changed_files).length})` }),
    files(r.changed_files))));
}

async function main() {
  const t = await getJSON("/api/tasks/" + encodeURIComponent(taskId));
  if (!t) { replace("page", el("h1", { text: "No such task" }), el("p", { text: taskId })); return; }
  const rate = t.solve_rate !== null ? pct(t.solve_rate) : t.solve_rate_so_far !== null ? pct(t.solve_rate_so_far) + " so far" : "–";
  replace("page",
    el("h1", { id: "task-title", text: t.name || t.task_id }),
    dl([
      ["task id", t.task_id], ["status", t.status], ["type", t.task_type], ["dataset", t.dataset],
      ["metric", t.metric ? `${t.metric} (${t.direction})` : null], ["baseline", t.baseline_score],
      ["baseline runtime", t.runtime_s !== null ? fmt(t.runtime_s) + " s" : null], ["debug rounds", t.rounds],
      ["solve rate", el("span", { id: "solve-rate", text: rate })],
      ["attempts / accepted", t.attempts !== null ? `${t.attempts} / ${t.accepted}` : null],
      ["best score", t.best_score], ["reason", t.reason],
    ]),
    el("h2", { text: "Trajectories" }),
    table([
      { label: "attempt", value: (r) => link(trajPath(r.id), `attempt ${r.attempt}`) },
      { label: "status", value: (r) => el("span", { class: "status " + r.status, text: r.status }) },
      { label: "exit", value: (r) => r.exit_status || "" },
      { label: "score", value: (r) => r.score, cls: "num" },
      { label: "steps", value: (r) => r.steps, cls: "num" },
      { label: "tokens", value: (r) => r.tokens, cls: "num" },
      { label: "reasons", value: (r) => r.reasons || "", cls: "wrap" },
    ], t.trajectories, "no trajectories yet"),
    el("h2", { text: "Debug rounds" }), rounds(t.rounds_detail),
    el("h2", { text: "Bundle files" }), files(t.files),
    t.description ? el("details", {}, el("summary", { text: "description" }), el("pre", { text: t.description })) : null);
  document.body.dataset.loaded = "yes";
}

main().catch(showError);
