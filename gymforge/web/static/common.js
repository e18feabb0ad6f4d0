// Shared helpers. Every piece of data reaches the page as text (textContent / createTextNode) or as an
// attribute value set through the DOM: model-written text is never parsed as markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k === "href") node.setAttribute("href", safeHref(v));
    else if (k.startsWith("on")) throw new Error("no inline handlers");
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function safeHref(v) {
  const s = String(v);
  return s.startsWith("/") && !s.startsWith("//") ? s : "#";  // only our own pages
}

export function link(path, text) {
  return el("a", { href: path, text });
}

export const taskPath = (id) => "/tasks/" + encodeURIComponent(id);
export const trajPath = (id) => "/trajectories/" + encodeURIComponent(id);

export async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

export function fmt(x, digits = 4) {
  if (x === null || x === undefined) return "–";
  if (typeof x === "number") {
    if (Number.isInteger(x)) return x.toLocaleString("en-US");
    return Number(x.toPrecision(digits)).toString();
  }
  return String(x);
}

export const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(0) + "%");
export const usd = (x) => (x === null || x === undefined ? "–" : "$" + Number(x).toFixed(4));
export const shortTime = (t) => (t ? String(t).slice(11, 19) : "");

// columns: [{label, value: row => Node|string|number, cls?}]
export function table(columns, rows, empty = "nothing yet") {
  const head = el("tr", {}, columns.map((c) => el("th", { text: c.label })));
  const body = rows.length
    ? rows.map((r) => el("tr", {}, columns.map((c) => {
        const v = c.value(r);
        return el("td", { class: c.cls }, v instanceof Node ? v : fmt(v));
      })))
    : [el("tr", {}, el("td", { colspan: columns.length, class: "empty", text: empty }))];
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

export function dl(pairs) {
  return el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : fmt(v))]));
}

export function replace(id, ...nodes) {
  const target = document.getElementById(id);
  target.replaceChildren(...nodes);
  return target;
}

export function showError(err) {
  const box = document.getElementById("error");
  if (box) box.textContent = String(err && err.message ? err.message : err);
}
