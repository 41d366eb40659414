// pixelpipe dashboard: plain JS, no libraries, nothing loaded from elsewhere.
// It reads the query API with the tenant token kept in sessionStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat("en-US");
const pct = (x) => (x * 100).toFixed(x > 0 && x < 0.1 ? 2 : 1) + "%";
const state = { token: sessionStorage.getItem("pixelpipe.token") || "", cids: [], range: "30d", live: null };

function setStatus(msg) {
  const el = $("status");
  el.textContent = msg || "";
  el.hidden = !msg;
}

function askToken() {
  const d = $("token-dialog");
  $("token-input").value = "";
  if (!d.open) d.showModal();
}

$("token-form").addEventListener("submit", () => {
  state.token = $("token-input").value.trim();
  sessionStorage.setItem("pixelpipe.token", state.token);
  refresh();
});
$("change-token").addEventListener("click", askToken);

const authHeaders = () => (state.token ? { Authorization: "Bearer " + state.token } : {});

async function api(path) {
  const res = await fetch(path, { headers: authHeaders() });
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: "answer is not JSON (" + res.status + ")" }; }
  if (res.status === 401) askToken();
  return { status: res.status, body };
}

function rangeParams() {
  const now = new Date();
  const hour = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours()));
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  if (state.range === "24h") {
    const to = new Date(hour.getTime() + 3600e3);
    return { from: new Date(to.getTime() - 24 * 3600e3), to, gran: "hour", label: "last 24 hours" };
  }
  const days = parseInt(state.range, 10);
  const to = new Date(day.getTime() + 86400e3);
  return { from: new Date(to.getTime() - days * 86400e3), to, gran: "day", label: "last " + days + " days" };
}

const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

function showFreshness(f) {
  const el = $("freshness");
  el.className = "fresh " + (f.status || "unknown");
  if (!f.complete_until) {
    el.textContent = "freshness: unknown (no watermark yet)";
    el.title = "The aggregators do not report a watermark yet; counts are read live from Redis.";
    return;
  }
  const lag = f.lag_seconds;
  const lagText = lag < 1 ? "<1 s" : lag < 120 ? Math.round(lag) + " s" : Math.round(lag / 60) + " min";
  el.textContent = "complete to " + new Date(f.complete_until).toISOString().slice(11, 19) + " UTC · lag " + lagText + (f.status === "partial" ? " (" + f.partitions + "/" + f.expected_partitions + " partitions)" : "");
  el.title = "Counts hold every event before " + f.complete_until;
}

function setNum(id, v) {
  const el = $(id);
  const txt = typeof v === "number" ? nf.format(v) : v;
  if (el.textContent !== txt) {
    el.textContent = txt;
    el.classList.remove("bump");
    void el.offsetWidth;
    el.classList.add("bump");
  }
}

function showLive(ev) {
  showFreshness(ev.freshness);
  const c = ev.contents[0];
  if (c) {
    setNum("live-uniques", c.uniques);
    $("live-uniques-bound").textContent = c.uniques_bound ? "± " + nf.format(c.uniques_bound) + " (HyperLogLog bound)" : "exact · human views";
    setNum("live-views", c.views);
    setNum("live-clicks", c.clicks);
    $("live-ctr").textContent = c.impressions ? pct(c.ctr) : "–";
    setNum("live-nonhuman", c.non_human);
  }
  $("live-age").textContent = "live · updated " + new Date().toLocaleTimeString();
  const tb = $("live-table");
  tb.replaceChildren(...ev.contents.map((x) => {
    const tr = document.createElement("tr");
    for (const v of [x.content_id, nf.format(x.uniques) + bound(x.uniques_bound), nf.format(x.views), nf.format(x.clicks)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
}

// startLive reads /v1/live with fetch (EventSource cannot send a token).
async function startLive() {
  const key = state.token + "|" + state.cids.join(",");
  if (state.live && state.liveKey === key) return;
  if (state.live) state.live.abort();
  state.liveKey = key;
  const ctl = new AbortController();
  state.live = ctl;
  const qs = state.cids.map((c) => "cid=" + encodeURIComponent(c)).join("&");
  while (!ctl.signal.aborted) {
    try {
      const res = await fetch("/v1/live?" + qs, { headers: authHeaders(), signal: ctl.signal });
      if (!res.ok) {
        const b = await res.json().catch(() => ({}));
        setStatus("live: " + (b.error || res.status));
        if (res.status === 401 || res.status === 403 || res.status === 400) {
          state.live = null;
          if (res.status === 401) askToken();
          return;
        }
      } else {
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (event === "counts" && data) showLive(JSON.parse(data));
          }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function svg(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(points, gran) {
  const el = $("chart");
  const W = 960, H = 280, L = 48, R = 12, T = 12, B = 28;
  const n = Math.max(points.length, 1);
  const max = Math.max(1, ...points.map((p) => Math.max(p.views, p.uniques)));
  const step = Math.pow(10, Math.floor(Math.log10(max)));
  let top = Math.ceil(max / step) * step;
  if (top % 4) top = Math.ceil(top / 4) * 4;
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const bw = (W - L - R) / n;
  const kids = [];
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    kids.push(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    kids.push(svg("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, nf.format(Math.round(v))));
  }
  const every = Math.ceil(n / 8);
  points.forEach((p, i) => {
    const x = L + i * bw;
    kids.push(svg("rect", { class: "bar", x: x + bw * 0.15, width: Math.max(bw * 0.7, 1), y: y(p.views), height: Math.max(y(0) - y(p.views), 0) }, undefined));
    kids[kids.length - 1].appendChild(svg("title", {}, p.start + ": " + nf.format(p.views) + " views, " + nf.format(p.uniques) + bound(p.uniques_bound) + " unique visitors"));
    if (i % every === 0) {
      const d = new Date(p.start);
      const label = gran === "hour" ? d.toISOString().slice(11, 16) : d.toISOString().slice(5, 10);
      kids.push(svg("text", { class: "axis", x: x + bw / 2, y: H - 8, "text-anchor": "middle" }, label));
    }
  });
  const path = points.map((p, i) => (i ? "L" : "M") + (L + i * bw + bw / 2).toFixed(1) + " " + y(p.uniques).toFixed(1)).join(" ");
  if (points.length) kids.push(svg("path", { class: "line", d: path }));
  points.forEach((p, i) => kids.push(svg("circle", { class: "pt", cx: L + i * bw + bw / 2, cy: y(p.uniques), r: points.length > 60 ? 1.5 : 3 })));
  el.replaceChildren(...kids);
}

function drawFunnel(h) {
  const steps = [["Impressions", h.impressions.total], ["Views", h.views.total], ["Clicks", h.clicks.total], ["Conversions", h.conversions.total]];
  const max = Math.max(1, ...steps.map((s) => s[1]));
  $("funnel").replaceChildren(...steps.map(([name, v]) => {
    const row = document.createElement("div");
    row.className = "step";
    const label = document.createElement("span");
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = ((100 * v) / max).toFixed(1) + "%";
    track.appendChild(fill);
    const val = document.createElement("span");
    val.className = "val";
    val.textContent = nf.format(v);
    row.append(label, track, val);
    return row;
  }));
  $("ctr").textContent = h.impressions.total ? pct(h.ctr) : "–";
  $("cvr").textContent = h.clicks.total ? pct(h.conversion_rate) : "–";
  $("orders").textContent = nf.format(h.orders);
  const rev = Object.entries(h.revenue || {}).map(([c, v]) => new Intl.NumberFormat("en-US", { style: "currency", currency: c }).format(v));
  $("revenue").textContent = rev.length ? rev.join(" · ") : "–";
}

function drawQuality(st) {
  const total = (c) => c.views.total + c.impressions.total + c.clicks.total + c.conversions.total + c.opens.total + c.custom.total;
  const parts = [["human", total(st.human)], ["bot", total(st.bot)], ["machine", total(st.machine)]];
  const sum = parts.reduce((a, p) => a + p[1], 0) || 1;
  $("quality").replaceChildren(...parts.map(([k, v]) => {
    const s = document.createElement("span");
    s.className = "q-" + k;
    s.style.width = ((100 * v) / sum).toFixed(2) + "%";
    s.title = k + ": " + nf.format(v) + " events";
    return s;
  }));
  const items = [["people", parts[0][1]], ["bots", parts[1][1]], ["machine opens", parts[2][1]]];
  for (const cls of ["bot", "machine"]) {
    for (const [r, v] of Object.entries(st[cls].reasons || {})) items.push([cls + ": " + r, v]);
  }
  $("reasons").replaceChildren(...items.map(([k, v]) => {
    const li = document.createElement("li");
    const b = document.createElement("b");
    b.textContent = nf.format(v);
    li.append(b, " " + k);
    return li;
  }));
}

// bound is the error bar written after a unique count: " ±b", or nothing
// when the count is exact.
function bound(b) {
  return b ? " ±" + nf.format(b) : "";
}

// shares fills a list panel: one row per entry, its share of the first
// entry as a bar, uniques and total.
async function shares(id, path) {
  const r = await api(path);
  const el = $(id);
  el.textContent = "";
  if (r.status !== 200) { el.textContent = r.body.error; return; }
  if (!r.body.items.length) { el.textContent = "nothing counted yet"; return; }
  const max = Math.max(1, r.body.items[0].uniques, r.body.items[0].total);
  const ol = document.createElement("ol");
  ol.className = "shares";
  for (const it of r.body.items) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = it.key;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round((100 * Math.max(it.uniques, 0)) / max) + "%";
    const num = document.createElement("span");
    num.className = "count";
    num.textContent = nf.format(it.uniques) + bound(it.uniques_bound) + " uniques · " + nf.format(it.total) + " views";
    li.append(name, bar, num);
    ol.append(li);
  }
  el.append(ol);
  el.classList.remove("pending");
}

// refreshAudit fills the audit panel: per edge node, the hits it accepted
// in the last hour and what became of them (GET /v1/audit, operators only).
async function refreshAudit() {
  const r = await api("/v1/audit");
  const el = $("audit"), sum = $("audit-summary");
  el.textContent = "";
  sum.textContent = "";
  sum.className = "audit-summary";
  if (r.status === 403) { el.textContent = "The audit spans every tenant's hits: it needs an operator token."; return; }
  if (r.status !== 200) { el.textContent = r.body.error; return; }
  el.classList.remove("pending");
  const a = r.body;
  if (!a.nodes.length) { el.textContent = "no hits in the last hour"; return; }
  if (a.missing > 0) {
    sum.textContent = nf.format(a.missing) + " of " + nf.format(a.accepted) + " accepted hits missing (never reached the processors, or still in an edge's spool)";
    sum.classList.add("bad");
  } else {
    sum.textContent = "all " + nf.format(a.accepted) + " accepted hits accounted for" + (a.not_yet_counted ? " (" + nf.format(a.not_yet_counted) + " not yet counted)" : "");
    sum.classList.add("good");
  }
  const table = document.createElement("table");
  table.className = "live-table";
  const cols = ["node", "accepted", "counted", "not yet", "dead-lettered", "missing", "duplicates"];
  const head = document.createElement("tr");
  for (const c of cols) { const th = document.createElement("th"); th.textContent = c; head.append(th); }
  const tbody = document.createElement("tbody");
  for (const n of a.nodes) {
    const tr = document.createElement("tr");
    for (const [i, v] of [n.node, n.accepted, n.counted, n.not_yet_counted, n.dead_lettered, n.missing, n.duplicates_dropped].entries()) {
      const td = document.createElement("td");
      td.textContent = i === 0 ? v : nf.format(v);
      if (i === 5 && v > 0) td.className = "bad";
      tr.append(td);
    }
    tbody.append(tr);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  table.append(thead, tbody);
  el.append(table);
}

async function refresh() {
  if (!state.cids.length) return;
  setStatus("");
  const rp = rangeParams();
  const cid = encodeURIComponent(state.cids[0]);
  const q = "from=" + iso(rp.from) + "&to=" + iso(rp.to);
  $("range-label").textContent = state.cids[0] + " · " + rp.label;
  $("chart-title").textContent = "Views and unique visitors · " + state.cids[0] + " · " + (rp.gran === "hour" ? "per hour" : "per day");
  startLive();
  const [st, se] = await Promise.all([api("/v1/stats/" + cid + "?" + q), api("/v1/series/" + cid + "?" + q + "&granularity=" + rp.gran)]);
  if (st.status !== 200) { setStatus("stats: " + st.body.error); return; }
  if (se.status !== 200) { setStatus("series: " + se.body.error); return; }
  showFreshness(st.body.freshness);
  drawFunnel(st.body.human);
  drawQuality(st.body);
  drawChart(se.body.points, rp.gran);
  shares("top", "/v1/top?" + q + "&by=uniques&limit=10");
  refreshAudit();
  shares("breakdowns", "/v1/breakdowns/" + cid + "?" + q + "&dimension=" + $("dimension").value);
}

$("dimension").addEventListener("change", () => {
  if (!state.cids.length) return;
  const rp = rangeParams();
  shares("breakdowns", "/v1/breakdowns/" + encodeURIComponent(state.cids[0]) + "?from=" + iso(rp.from) + "&to=" + iso(rp.to) + "&dimension=" + $("dimension").value);
});

$("scope").addEventListener("submit", (e) => {
  e.preventDefault();
  state.cids = $("cids").value.split(",").map((s) => s.trim()).filter(Boolean);
  state.range = $("range").value;
  const u = new URL(location.href);
  u.searchParams.set("cid", state.cids.join(","));
  u.searchParams.set("range", state.range);
  history.replaceState(null, "", u);
  refresh();
});

// The chart and funnel refresh every 30 s; the counters live.
setInterval(() => { if (state.cids.length) refresh(); }, 30000);

(function init() {
  const u = new URL(location.href);
  if (u.searchParams.get("range")) { state.range = u.searchParams.get("range"); $("range").value = state.range; }
  if (u.searchParams.get("cid")) {
    $("cids").value = u.searchParams.get("cid");
    state.cids = $("cids").value.split(",").map((s) => s.trim()).filter(Boolean);
  }
  // Servers without tokens (pixelpipe dev) answer at once; others answer
  // 401 and the token prompt opens (api asks for a token on 401 only).
  if (state.cids.length) refresh(); else refreshAudit();
})();
