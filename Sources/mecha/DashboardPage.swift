/// The dashboard's pages (HTML with inline CSS and JS; no external assets, no CDN, works offline).
///
/// `graph` is served at `GET /` and draws the apps, topics and components with the traffic between
/// them from `GET /api/graph` (polled every 2 s). `sidecar` is served at `GET /sidecar?app=<app id>`
/// and shows one app's instances, health, subscriptions, circuit breakers and recent slow or failed
/// traces from `GET /api/sidecar?app=<app id>` (polled every 3 s). Both set `data-ready="true"` on
/// `<body>` after their first successful render. Data only ever reaches the DOM through
/// `textContent`, text nodes and attributes, never through `innerHTML`.
enum DashboardPage {
    /// What both pages start with: the document head, up to the shared colours.
    static let head: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mecha dashboard</title>
<style>
:root{--ok:#2da44e;--warn:#d29922;--bad:#cf222e;--unk:#8c959f;--bg:#f6f8fa;--fg:#1f2328;--mut:#656d76;--line:#d0d7de}
*{box-sizing:border-box}

"""#

    /// The graph of apps, topics and components, served at `GET /`.
    static let graph: String = #"""
\#(Self.head)html,body{margin:0;height:100%}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg);display:flex;flex-direction:column}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;padding:10px 16px;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
.meta{color:var(--mut);font-size:13px}
#status{margin-left:auto;color:var(--mut);font-size:13px}
#status.err{color:var(--bad);font-weight:600}
main{flex:1;position:relative;min-height:0}
#graph{width:100%;height:100%;display:block}
#empty{position:absolute;top:40%;width:100%;text-align:center;color:var(--mut);font-size:16px}
.legend{position:absolute;right:12px;bottom:12px;background:#fffffff0;border:1px solid var(--line);border-radius:6px;padding:8px 10px;font-size:12px;line-height:1.2}
.legend b{display:block;margin:4px 0 2px}
.legend div{display:flex;align-items:center;gap:6px;margin:2px 0}
.sw{width:12px;height:12px;border-radius:3px;display:inline-block}
.node text{font-size:13px;font-weight:600;fill:#fff;text-anchor:middle;dominant-baseline:central;pointer-events:none}
.node text.sub{font-size:10px;font-weight:400}
.node[data-health=degraded] text{fill:#1f2328}
.node .shape{stroke:#00000040;stroke-width:1.5}
.node[data-kind=app]{cursor:pointer}
.node[data-kind=app]:hover .shape{stroke:#000;stroke-width:2.5}
.edge path{fill:none}
.edge:hover path{stroke-width:4}
.edge-label{font-size:11px;fill:#333;text-anchor:middle;paint-order:stroke;stroke:#f6f8fa;stroke-width:4px;stroke-linejoin:round}
</style>
</head>
<body>
<header>
<h1>Mecha dashboard</h1>
<span class="meta" id="generated">generated –</span>
<span class="meta" id="counts">0 apps · 0 edges</span>
<span class="meta" id="counts-extra"></span>
<span id="status">loading…</span>
</header>
<main>
<svg id="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 400" preserveAspectRatio="xMidYMid meet">
<defs id="defs"></defs>
<g id="edges"></g>
<g id="nodes"></g>
</svg>
<div id="empty" hidden>No apps, topics or components yet.</div>
<div class="legend" id="legend">
<b>Nodes</b>
<div><span class="sw" style="background:#2da44e"></span>healthy</div>
<div><span class="sw" style="background:#d29922"></span>degraded</div>
<div><span class="sw" style="background:#cf222e"></span>unhealthy</div>
<div><span class="sw" style="background:#8c959f"></span>unknown</div>
<div><svg width="30" height="14"><rect x="1" y="1" width="28" height="12" rx="4" fill="#8c959f"/></svg>app</div>
<div><svg width="30" height="14"><rect x="1" y="2" width="28" height="10" rx="5" fill="#8c959f"/></svg>topic</div>
<div><svg width="30" height="14"><path d="M4,3 A11,2 0 0 1 26,3 V11 A11,2 0 0 1 4,11 Z" fill="#8c959f"/></svg>component</div>
<b>Edges</b>
<div><svg width="30" height="8"><line x1="0" y1="4" x2="30" y2="4" stroke="#555" stroke-width="2.5"/></svg>invoke</div>
<div><svg width="30" height="8"><line x1="0" y1="4" x2="30" y2="4" stroke="#555" stroke-width="2" stroke-dasharray="8 4"/></svg>publish</div>
<div><svg width="30" height="8"><line x1="0" y1="4" x2="30" y2="4" stroke="#555" stroke-width="2" stroke-dasharray="2 4" stroke-linecap="round"/></svg>deliver</div>
<div><svg width="30" height="8"><line x1="0" y1="4" x2="30" y2="4" stroke="#555" stroke-width="1.5" stroke-dasharray="12 3 2 3"/></svg>component</div>
<div><span class="sw" style="background:#2da44e"></span>healthy <span class="sw" style="background:#d29922"></span>warning</div>
<div><span class="sw" style="background:#cf222e"></span>failing <span class="sw" style="background:#8c959f"></span>idle (dashed)</div>
</div>
</main>
<script>
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const NODE_COLOR = {healthy: "#2da44e", degraded: "#d29922", unhealthy: "#cf222e", unknown: "#8c959f"};
const EDGE_COLOR = {healthy: "#2da44e", warning: "#d29922", failing: "#cf222e", idle: "#8c959f"};
const KIND_STYLE = {
  invoke: {w: 2.5, dash: ""},
  publish: {w: 2, dash: "8 4"},
  deliver: {w: 2, dash: "2 4", cap: "round"},
  component: {w: 1.5, dash: "12 3 2 3"}
};
const KIND_ORDER = {app: 0, topic: 1, component: 2};
const GAP_X = 270, GAP_Y = 36;

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  if (attrs) for (const k of Object.keys(attrs)) if (attrs[k] != null) e.setAttribute(k, String(attrs[k]));
  if (text != null) e.textContent = String(text);
  return e;
}
function num(v) { if (v == null || v === "") return null; const n = Number(v); return Number.isFinite(n) ? n : null; }
function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
function fmtRps(v) {
  const n = num(v) || 0;
  if (n === 0) return "0";
  if (Math.abs(n) < 0.1) return n.toFixed(2);
  return n.toFixed(1);
}
function fmtMs(v) { const n = num(v); return n == null ? "–" : n.toFixed(1) + " ms"; }
function fmtErr(v) {
  const p = (num(v) || 0) * 100;
  if (Number.isInteger(p)) return p + "%";
  return (p < 0.1 ? p.toFixed(2) : p.toFixed(1)) + "%";
}
function edgeLabel(e) {
  return fmtRps(e.rps) + " rps · p50 " + fmtMs(e.p50) + " · p99 " + fmtMs(e.p99) + " · " + fmtErr(e.errorRate) + " err";
}
function setStatus(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "err" : "";
}

function normalize(data) {
  const nodes = [], seen = new Set();
  for (const raw of Array.isArray(data && data.nodes) ? data.nodes : []) {
    if (!raw || raw.id == null) continue;
    const id = String(raw.id);
    if (seen.has(id)) continue;
    seen.add(id);
    const health = NODE_COLOR[raw.health] ? raw.health : "unknown";
    nodes.push({id, kind: String(raw.kind || "unknown"), label: String(raw.label != null ? raw.label : id), health,
      type: raw.type != null ? String(raw.type) : null, instances: num(raw.instances), rps: num(raw.rps)});
  }
  const edges = [];
  for (const raw of Array.isArray(data && data.edges) ? data.edges : []) {
    if (!raw || raw.from == null || raw.to == null) continue;
    const from = String(raw.from), to = String(raw.to);
    if (!seen.has(from) || !seen.has(to)) continue;
    const health = EDGE_COLOR[raw.health] ? raw.health : "idle";
    edges.push({from, to, kind: String(raw.kind || "invoke"), rps: num(raw.rps) || 0, p50: num(raw.p50), p99: num(raw.p99),
      errorRate: num(raw.errorRate) || 0, health});
  }
  edges.sort((a, b) => a.from < b.from ? -1 : a.from > b.from ? 1 : a.to < b.to ? -1 : a.to > b.to ? 1 : a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0);
  return {nodes, edges};
}

function nodeSize(n) {
  const len = n.label.length;
  if (n.kind === "app") return {w: Math.max(120, len * 8 + 32), h: 48};
  if (n.kind === "topic") return {w: Math.max(110, len * 8 + 36), h: 34};
  return {w: Math.max(110, len * 8 + 28, n.type ? n.type.length * 6.2 + 28 : 0), h: 50};
}

// Layered layout: back edges (found by a deterministic DFS) are ignored, every other node gets the
// longest path from a source as its column (so callers and publishers sit left of what they call,
// topics between publishers and subscribers, components right of the apps using them); a component
// nobody uses sits in the rightmost column.
function layout(nodes, edges) {
  const byId = new Map(nodes.map(n => [n.id, n]));
  const ids = nodes.map(n => n.id).sort();
  const out = new Map(ids.map(id => [id, []]));
  const indeg = new Map(ids.map(id => [id, 0]));
  for (const e of edges) {
    if (e.from === e.to) continue;
    out.get(e.from).push(e.to);
    indeg.set(e.to, indeg.get(e.to) + 1);
  }
  for (const l of out.values()) l.sort();
  const state = new Map(), dag = [];
  const dfs = u => {
    state.set(u, 1);
    for (const v of out.get(u)) {
      const s = state.get(v);
      if (s === 1) continue;
      dag.push([u, v]);
      if (!s) dfs(v);
    }
    state.set(u, 2);
  };
  for (const id of ids) if (indeg.get(id) === 0 && !state.has(id)) dfs(id);
  for (const id of ids) if (!state.has(id)) dfs(id);
  const rank = new Map();
  for (const id of ids) rank.set(id, 0);
  for (let pass = 0; pass <= ids.length; pass++) {
    let changed = false;
    for (const [u, v] of dag) if (rank.get(v) < rank.get(u) + 1) { rank.set(v, rank.get(u) + 1); changed = true; }
    if (!changed) break;
  }
  const maxRank = Math.max(0, ...rank.values());
  for (const id of ids) if (byId.get(id).kind === "component" && indeg.get(id) === 0) rank.set(id, maxRank + (ids.length > 1 ? 1 : 0));
  const distinct = [...new Set(rank.values())].sort((a, b) => a - b);
  const colOf = new Map();
  for (const [id, r] of rank) colOf.set(id, distinct.indexOf(r));
  const ncols = Math.max(...colOf.values(), -1) + 1;
  const cols = Array.from({length: ncols}, () => []);
  for (const id of ids) cols[colOf.get(id)].push(id);
  const preds = new Map(ids.map(id => [id, []]));
  for (const e of edges) if (e.from !== e.to) preds.get(e.to).push(e.from);
  const row = new Map();
  cols.forEach((col, c) => {
    const key = id => {
      const ps = preds.get(id).filter(p => row.has(p) && colOf.get(p) < c);
      return ps.length ? ps.reduce((s, p) => s + row.get(p), 0) / ps.length : 1e9;
    };
    const keys = new Map(col.map(id => [id, key(id)]));
    col.sort((a, b) => {
      const ka = keys.get(a), kb = keys.get(b);
      if (ka !== kb) return ka - kb;
      const na = byId.get(a), nb = byId.get(b);
      const oa = KIND_ORDER[na.kind] != null ? KIND_ORDER[na.kind] : 3, ob = KIND_ORDER[nb.kind] != null ? KIND_ORDER[nb.kind] : 3;
      if (oa !== ob) return oa - ob;
      return na.label < nb.label ? -1 : na.label > nb.label ? 1 : a < b ? -1 : a > b ? 1 : 0;
    });
    col.forEach((id, i) => row.set(id, i));
  });
  const pos = new Map(), colBox = [];
  let x = 0;
  cols.forEach((col, c) => {
    const sizes = col.map(id => nodeSize(byId.get(id)));
    const width = Math.max(...sizes.map(s => s.w));
    const height = sizes.reduce((s, z) => s + z.h, 0) + GAP_Y * (col.length - 1);
    let y = -height / 2;
    col.forEach((id, i) => {
      const s = sizes[i];
      pos.set(id, {x: x + width / 2, y: y + s.h / 2, w: s.w, h: s.h, col: c});
      y += s.h + GAP_Y;
    });
    colBox.push({left: x, right: x + width, top: -height / 2, bottom: height / 2});
    x += width + GAP_X;
  });
  return {pos, colBox};
}

function bez(p0, c1, c2, p3, t) {
  const u = 1 - t;
  return u * u * u * p0 + 3 * u * u * t * c1 + 3 * u * t * t * c2 + t * t * t * p3;
}

function routeEdges(edges, pos, colBox) {
  const pairCount = new Map();
  let above = 0, below = 0;
  return edges.map(e => {
    const s = pos.get(e.from), t = pos.get(e.to);
    const pk = e.from + "\u0000" + e.to;
    const k = pairCount.get(pk) || 0;
    pairCount.set(pk, k + 1);
    const bump = k * 20;
    if (e.from === e.to) {
      const top = s.y - s.h / 2;
      return {d: `M${s.x - 16},${top} C${s.x - 46},${top - 56 - bump} ${s.x + 46},${top - 56 - bump} ${s.x + 16},${top}`, lx: s.x, ly: top - 50 - bump};
    }
    if (t.col === s.col) {
      const x0 = s.x + s.w / 2, x3 = t.x + t.w / 2, off = 80 + bump;
      const cx = Math.max(x0, x3) + off;
      return {d: `M${x0},${s.y} C${cx},${s.y} ${cx},${t.y} ${x3},${t.y}`, lx: bez(x0, cx, cx, x3, 0.5) + 4, ly: (s.y + t.y) / 2, anchor: "start"};
    }
    const fwd = t.col > s.col;
    const x0 = fwd ? s.x + s.w / 2 : s.x - s.w / 2;
    const x3 = fwd ? t.x - t.w / 2 : t.x + t.w / 2;
    const y0 = s.y, y3 = t.y;
    const span = Math.abs(t.col - s.col);
    if (span === 1) {
      const b = fwd ? bump : 34 + bump;
      const mx = (x0 + x3) / 2;
      return {d: `M${x0},${y0} C${mx},${y0 + b} ${mx},${y3 + b} ${x3},${y3}`, lx: mx, ly: bez(y0, y0 + b, y3 + b, y3, 0.5) - 6};
    }
    // Spanning several columns: route above (forward) or below (backward) the columns in between.
    const lo = Math.min(s.col, t.col) + 1, hi = Math.max(s.col, t.col) - 1;
    let yr;
    if (fwd) {
      let top = Infinity;
      for (let c = lo; c <= hi; c++) top = Math.min(top, colBox[c].top);
      yr = Math.min(top, y0, y3) - 30 - 24 * above++;
    } else {
      let bottom = -Infinity;
      for (let c = lo; c <= hi; c++) bottom = Math.max(bottom, colBox[c].bottom);
      yr = Math.max(bottom, y0, y3) + 30 + 24 * below++;
    }
    const xa = fwd ? colBox[lo].left : colBox[hi].right;
    const xb = fwd ? colBox[hi].right : colBox[lo].left;
    const d1 = (xa - x0) / 2, d2 = (x3 - xb) / 2;
    return {d: `M${x0},${y0} C${x0 + d1},${y0} ${xa - d1},${yr} ${xa},${yr} L${xb},${yr} C${xb + d2},${yr} ${x3 - d2},${y3} ${x3},${y3}`,
      lx: (xa + xb) / 2, ly: yr - 6};
  });
}

function ensureMarkers() {
  const defs = document.getElementById("defs");
  if (defs.childNodes.length) return;
  for (const h of Object.keys(EDGE_COLOR)) {
    const m = svg("marker", {id: "arrow-" + h, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto"});
    m.append(svg("path", {d: "M0,0 L10,5 L0,10 z", fill: EDGE_COLOR[h]}));
    defs.append(m);
  }
}

function drawNode(n, p) {
  const g = svg("g", {"class": "node", "data-id": n.id, "data-kind": n.kind, "data-health": n.health, transform: `translate(${p.x},${p.y})`});
  const fill = NODE_COLOR[n.health];
  const w = p.w, h = p.h;
  let sub = null;
  if (n.kind === "app") {
    g.append(svg("rect", {"class": "shape", x: -w / 2, y: -h / 2, width: w, height: h, rx: 10, fill}));
    const bits = [];
    if (n.instances != null) bits.push(plural(n.instances, "instance"));
    if (n.rps != null) bits.push(fmtRps(n.rps) + " rps");
    sub = bits.join(" · ");
    g.addEventListener("click", () => { location.href = "/sidecar?app=" + encodeURIComponent(n.label); });
  } else if (n.kind === "topic") {
    g.append(svg("rect", {"class": "shape", x: -w / 2, y: -h / 2, width: w, height: h, rx: h / 2, fill}));
  } else if (n.kind === "component") {
    const ry = 6, top = -h / 2, bot = h / 2;
    g.append(svg("path", {"class": "shape", fill,
      d: `M${-w / 2},${top + ry} A${w / 2},${ry} 0 0 1 ${w / 2},${top + ry} V${bot - ry} A${w / 2},${ry} 0 0 1 ${-w / 2},${bot - ry} Z`}));
    g.append(svg("path", {d: `M${-w / 2},${top + ry} A${w / 2},${ry} 0 0 0 ${w / 2},${top + ry}`, fill: "none", stroke: "#00000040", "stroke-width": 1.5}));
    sub = n.type;
  } else {
    g.append(svg("rect", {"class": "shape", x: -w / 2, y: -h / 2, width: w, height: h, rx: 2, fill}));
  }
  g.append(svg("text", {"class": "label", x: 0, y: sub ? -7 : 0}, n.label));
  if (sub) g.append(svg("text", {"class": "sub", x: 0, y: n.kind === "component" ? 12 : 11}, sub));
  const tip = [n.kind + " " + n.label, "health: " + n.health];
  if (n.type) tip.push("type: " + n.type);
  if (n.instances != null) tip.push("instances: " + n.instances);
  if (n.rps != null) tip.push("rps: " + fmtRps(n.rps));
  if (n.kind === "app") tip.push("click for sidecar details");
  g.append(svg("title", null, tip.join("\n")));
  return g;
}

function drawEdge(e, r) {
  const g = svg("g", {"class": "edge", "data-from": e.from, "data-to": e.to, "data-kind": e.kind, "data-rps": String(e.rps), "data-health": e.health});
  const st = KIND_STYLE[e.kind] || {w: 2, dash: "6 2 1 2"};
  const idle = e.health === "idle";
  g.append(svg("path", {d: r.d, stroke: EDGE_COLOR[e.health], "stroke-width": st.w, "stroke-dasharray": idle ? "4 6" : (st.dash || null),
    "stroke-linecap": st.cap || null, opacity: idle ? 0.7 : null, "marker-end": `url(#arrow-${e.health})`}));
  const label = edgeLabel(e);
  g.append(svg("text", {"class": "edge-label", x: r.lx, y: r.ly, "text-anchor": r.anchor || null}, label));
  g.append(svg("title", null, `${e.kind}: ${e.from} → ${e.to}\n${label}\nhealth: ${e.health}`));
  return g;
}

let lastKey = null;
function render(data) {
  const {nodes, edges} = normalize(data);
  const gen = document.getElementById("generated");
  gen.textContent = "generated " + (data && data.generated ? String(data.generated) : "–");
  const count = k => nodes.filter(n => n.kind === k).length;
  document.getElementById("counts").textContent = plural(count("app"), "app") + " · " + plural(edges.length, "edge");
  document.getElementById("counts-extra").textContent = "(" + plural(count("topic"), "topic") + " · " + plural(count("component"), "component") + ")";
  document.getElementById("empty").hidden = nodes.length > 0;
  const key = JSON.stringify([nodes, edges]);
  if (key === lastKey) return;
  ensureMarkers();
  const {pos, colBox} = layout(nodes, edges);
  const routes = routeEdges(edges, pos, colBox);
  const ng = document.getElementById("nodes"), eg = document.getElementById("edges");
  const nodeEls = nodes.map(n => drawNode(n, pos.get(n.id)));
  const edgeEls = edges.map((e, i) => drawEdge(e, routes[i]));
  ng.replaceChildren(...nodeEls);
  eg.replaceChildren(...edgeEls);
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const grow = (ax, ay, bx, by) => { x0 = Math.min(x0, ax); y0 = Math.min(y0, ay); x1 = Math.max(x1, bx); y1 = Math.max(y1, by); };
  for (const p of pos.values()) grow(p.x - p.w / 2, p.y - p.h / 2, p.x + p.w / 2, p.y + p.h / 2);
  edges.forEach((e, i) => {
    const r = routes[i], lw = edgeLabel(e).length * 6.2;
    if (r.anchor === "start") grow(r.lx, r.ly - 14, r.lx + lw, r.ly + 14);
    else grow(r.lx - lw / 2, r.ly - 14, r.lx + lw / 2, r.ly + 14);
    const m = r.d.match(/-?\d+(\.\d+)?(e-?\d+)?/g) || [];
    for (let j = 0; j + 1 < m.length; j += 2) grow(+m[j], +m[j + 1], +m[j], +m[j + 1]);
  });
  if (!Number.isFinite(x0)) { x0 = 0; y0 = 0; x1 = 800; y1 = 400; }
  const pad = 40;
  document.getElementById("graph").setAttribute("viewBox", `${x0 - pad} ${y0 - pad} ${x1 - x0 + 2 * pad} ${y1 - y0 + 2 * pad + 60}`);
  lastKey = key;
}

let ready = false;
async function tick() {
  try {
    const r = await fetch("/api/graph", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status + (r.statusText ? " " + r.statusText : ""));
    const data = await r.json();
    render(data);
    setStatus("updated " + new Date().toLocaleTimeString(), false);
    if (!ready) { ready = true; document.body.setAttribute("data-ready", "true"); }
  } catch (err) {
    setStatus("fetch failed: " + (err && err.message ? err.message : String(err)), true);
  } finally {
    setTimeout(tick, 2000);
  }
}
tick();
</script>
</body>
</html>
"""#

    /// One app's sidecar details, served at `GET /sidecar?app=<app id>`.
    static let sidecar: String = #"""
\#(Self.head)body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;padding:10px 16px;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
header a{color:#0969da;text-decoration:none}
header a:hover{text-decoration:underline}
#app{font-weight:600;font-size:16px}
#status{margin-left:auto;color:var(--mut);font-size:13px}
#status.err{color:var(--bad);font-weight:600}
#error{margin:12px 16px 0;padding:8px 12px;border:1px solid var(--bad);border-radius:6px;background:#ffebe9;color:var(--bad)}
main{padding:8px 16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px;overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:14px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.04em;color:var(--mut)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{color:var(--mut);font-weight:600;white-space:nowrap}
td.mono,span.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.none{color:var(--mut);font-style:italic;margin:0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--unk)}
.badge.ok{background:var(--ok)}
.badge.warn{background:var(--warn);color:#1f2328}
.badge.bad{background:var(--bad)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}
dt{color:var(--mut)}
dd{margin:0}
</style>
</head>
<body>
<header>
<h1>Mecha dashboard</h1>
<a href="/" id="back">← graph</a>
<span id="app"></span>
<span id="status">loading…</span>
</header>
<div id="error" hidden></div>
<main>
<section id="instances" class="wide"><h2>Instances</h2><div class="body"><p class="none">none</p></div></section>
<section id="readiness"><h2>Readiness</h2><div class="body"><p class="none">none</p></div></section>
<section id="blocks"><h2>Blocks</h2><div class="body"><p class="none">none</p></div></section>
<section id="subscriptions"><h2>Subscriptions</h2><div class="body"><p class="none">none</p></div></section>
<section id="breakers"><h2>Open circuit breakers</h2><div class="body"><p class="none">none</p></div></section>
<section id="components" class="wide"><h2>Components</h2><div class="body"><p class="none">none</p></div></section>
<section id="traces" class="wide"><h2>Recent slow or failed traces</h2><div class="body"><p class="none">none</p></div></section>
</main>
<script>
"use strict";
function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) for (const k of Object.keys(props)) {
    const v = props[k];
    if (v == null) continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = String(v); else e.setAttribute(k, String(v));
  }
  for (const c of kids.flat()) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}
function list(v) { return Array.isArray(v) ? v : []; }
function val(v) { return v == null || v === "" ? "–" : String(v); }
function none(text) { return h("p", {"class": "none"}, text || "none"); }
function tone(status) {
  const s = String(status == null ? "" : status).toLowerCase();
  if (["ready", "healthy", "ok", "up", "closed", "true", "yes", "success", "reachable"].includes(s)) return "ok";
  if (["degraded", "warning", "half-open", "halfopen", "half_open", "slow", "initializing", "starting"].includes(s)) return "warn";
  if (["unhealthy", "notready", "not-ready", "not ready", "failing", "failed", "error", "open", "down", "false", "no", "unreachable"].includes(s)) return "bad";
  return "";
}
function badge(status, text) {
  return h("span", {"class": "badge " + tone(status), "data-status": val(status)}, text != null ? text : val(status));
}
function table(headers, rows) {
  if (!rows.length) return none();
  return h("table", null,
    h("thead", null, h("tr", null, headers.map(x => h("th", null, x)))),
    h("tbody", null, rows.map(r => h("tr", null, r.map(c => c instanceof Node && c.tagName === "TD" ? c : h("td", null, c == null ? "–" : c))))));
}
function td(cls, v) { return h("td", {"class": cls}, v); }
function fill(id, ...content) { document.querySelector("#" + id + " .body").replaceChildren(...content); }
function setStatus(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "err" : "";
}
function fmtMs(v) { const n = Number(v); return v == null || !Number.isFinite(n) ? "–" : n.toFixed(1) + " ms"; }

function render(d) {
  d = d || {};
  const err = document.getElementById("error");
  if (d.error != null && d.error !== "") {
    err.textContent = "error: " + (typeof d.error === "string" ? d.error : JSON.stringify(d.error));
    err.hidden = false;
  } else err.hidden = true;
  if (d.appID) document.getElementById("app").textContent = String(d.appID);

  fill("instances", table(["Instance", "Host", "HTTP port", "Metrics port", "PID", "Reachable"],
    list(d.instances).map(i => [td("mono", val(i && i.instanceID)), val(i && i.host), td("num", val(i && i.httpPort)),
      td("num", val(i && i.metricsPort)), td("num", val(i && i.pid)),
      i && i.reachable === true ? badge("ok", "yes") : i && i.reachable === false ? badge("bad", "no") : badge("", "unknown")])));

  const hl = d.health || {};
  const notReady = list(hl.notReady).map(String);
  const app = hl.app || null;
  let appText;
  if (!app) appText = badge("", "unknown");
  else if (!app.checked) appText = badge("", "not checked");
  else appText = app.healthy ? badge("ok", "healthy") : badge("bad", "unhealthy");
  fill("readiness", hl.status == null && !hl.app && !notReady.length ? none() :
    h("dl", null,
      h("dt", null, "Status"), h("dd", null, badge(hl.status)),
      h("dt", null, "Not ready"), h("dd", null, notReady.length ? notReady.join(", ") : "none"),
      h("dt", null, "App health"), h("dd", null, appText)));

  fill("blocks", table(["Block", "Status", "Unhealthy"],
    list(hl.blocks).map(b => [val(b && b.block), badge(b && b.status), list(b && b.unhealthy).length ? list(b.unhealthy).map(String).join(", ") : "none"])));

  fill("components", table(["Name", "Type", "Block", "Status", "Since", "Reason", "Failures", "Last success", "Last failure"],
    list(hl.components).map(c => {
      c = c || {};
      return [td("mono", val(c.name)), val(c.type) + (c.version ? " " + c.version : ""), val(c.block), badge(c.status),
        val(c.since), val(c.reason), td("num", val(c.consecutiveFailures)), val(c.lastSuccess), val(c.lastFailure)];
    })));

  fill("subscriptions", table(["Pub/sub", "Topic", "Routes", "Dead letter"],
    list(d.subscriptions).map(s => {
      s = s || {};
      const routes = list(s.rules).map(r => r ? (r.match ? String(r.match) + " → " : "") + val(r.path) : "–");
      return [val(s.pubsubname), td("mono", val(s.topic)), routes.length ? routes.join(", ") : "none", val(s.deadLetterTopic)];
    })));

  const all = list(d.breakers);
  const open = all.filter(b => b && String(b.state || "").toLowerCase() !== "closed");
  fill("breakers", open.length ? table(["Target", "State"], open.map(b => [td("mono", val(b.target)), badge(b.state)]))
    : none(all.length ? "none (" + all.length + " closed)" : "none"));

  fill("traces", table(["Time", "Name", "Duration", "Status", "Message", "Trace ID"],
    list(d.traces).map(t => {
      t = t || {};
      return [val(t.time), td("mono", val(t.name)), td("num", fmtMs(t.durationMs)), badge(t.status), val(t.message), td("mono", val(t.traceID))];
    })));
}

const appID = new URLSearchParams(location.search).get("app");
let ready = false;
function markReady() { if (!ready) { ready = true; document.body.setAttribute("data-ready", "true"); } }
async function tick() {
  try {
    const r = await fetch("/api/sidecar?app=" + encodeURIComponent(appID), {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status + (r.statusText ? " " + r.statusText : ""));
    render(await r.json());
    setStatus("updated " + new Date().toLocaleTimeString(), false);
    markReady();
  } catch (err) {
    setStatus("fetch failed: " + (err && err.message ? err.message : String(err)), true);
  } finally {
    setTimeout(tick, 3000);
  }
}
if (appID) {
  document.getElementById("app").textContent = appID;
  tick();
} else {
  setStatus("no app given: open /sidecar?app=<app id>", true);
  markReady();
}
</script>
</body>
</html>
"""#
}
