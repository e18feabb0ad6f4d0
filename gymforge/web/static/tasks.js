// The task browser: every task in the store, newest first.
import { el, getJSON, link, pct, replace, showError, table, taskPath } from "/static/common.js";

async function main() {
  const data = await getJSON("/api/tasks");
  replace("page",
    el("h1", { text: `Tasks (${data.tasks.length})` }),
    table([
      { label: "task", value: (t) => link(taskPath(t.task_id), t.task_id) },
      { label: "name", value: (t) => t.name || "" },
      { label: "status", value: (t) => el("span", { class: "status " + t.status, text: t.status }) },
      { label: "type", value: (t) => t.task_type || "" },
      { label: "metric", value: (t) => (t.metric ? `${t.metric} (${t.direction})` : "") },
      { label: "baseline", value: (t) => t.baseline_score, cls: "num" },
      { label: "debug rounds", value: (t) => t.rounds, cls: "num" },
      { label: "trajectories", value: (t) => t.trajectories, cls: "num" },
      { label: "solve rate", value: (t) => (t.solve_rate !== null ? pct(t.solve_rate) : t.solve_rate_so_far !== null ? pct(t.solve_rate_so_far) + " so far" : "–"), cls: "num" },
    ], data.tasks, "no tasks yet"));
  document.body.dataset.loaded = "yes";
}

main().catch(showError);
