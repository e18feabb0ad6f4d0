// A tiny SVG line plot: series of numbers (null = gap) over shared x labels. Text goes in as textContent.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const short = (y) => (Math.abs(y) >= 1000 ? (y / 1000).toFixed(1) + "k" : Number(y.toPrecision(3)).toString());

// series: [{name, values: [number|null], cls}]; opts: {labels, height, width, baseline, points, format}
export function lineChart(series, opts = {}) {
  const width = opts.width || 480, height = opts.height || 150, pad = { l: 44, r: 8, t: 8, b: 34 };
  const format = opts.format || short;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  if (opts.baseline !== null && opts.baseline !== undefined) all.push(opts.baseline);
  let lo = Math.min(0, ...all), hi = Math.max(...all, 0);
  if (opts.fit && all.length) { lo = Math.min(...all); hi = Math.max(...all); }
  if (hi === lo) { hi = lo + 1; }
  const n = Math.max(1, ...series.map((s) => s.values.length));
  const x = (i) => pad.l + (n === 1 ? 0.5 : i / (n - 1)) * (width - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "plot", role: "img" });
  root.appendChild(svg("line", { x1: pad.l, y1: y(lo), x2: width - pad.r, y2: y(lo), class: "axis" }));
  root.appendChild(svg("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: y(lo), class: "axis" }));
  root.appendChild(svg("text", { x: pad.l - 4, y: pad.t + 8, class: "tick end" }, format(hi)));
  root.appendChild(svg("text", { x: pad.l - 4, y: y(lo), class: "tick end" }, format(lo)));
  const labels = opts.labels || [];
  if (labels.length) {
    root.appendChild(svg("text", { x: pad.l, y: height - pad.b + 14, class: "tick" }, labels[0]));
    if (labels.length > 1) root.appendChild(svg("text", { x: width - pad.r, y: height - pad.b + 14, class: "tick end" }, labels[labels.length - 1]));
  }
  if (opts.baseline !== null && opts.baseline !== undefined) {
    root.appendChild(svg("line", { x1: pad.l, y1: y(opts.baseline), x2: width - pad.r, y2: y(opts.baseline), class: "baseline" }));
  }
  series.forEach((s, k) => {
    const cls = s.cls || `s${k}`;
    let path = "", pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
      if (opts.points) {
        const dot = svg("circle", { cx: x(i), cy: y(v), r: 3.5, class: `dot ${cls}` });
        dot.appendChild(svg("title", {}, `${labels[i] ?? i}: ${v}`));
        root.appendChild(dot);
      }
    });
    if (path) root.appendChild(svg("path", { d: path.trim(), class: `line ${cls}` }));
  });
  let lx = pad.l;
  for (const [k, s] of series.entries()) {
    root.appendChild(svg("rect", { x: lx, y: height - 12, width: 10, height: 4, class: `key ${s.cls || "s" + k}` }));
    const label = svg("text", { x: lx + 14, y: height - 7, class: "tick" }, s.name);
    root.appendChild(label);
    lx += 24 + 7 * String(s.name).length;
  }
  return root;
}
