// pixelpipe dashboard: plain JS, no libraries, nothing loaded from elsewhere.
// It reads the query API with the tenant token kept in sessionStorage.
//
// Several content ids can be chosen; one of them, the selected one, is shown
// in the cards, chart, visits, funnel, email, quality and breakdown panels,
// and the tabs above them switch it. The URL keeps the choice:
// ?cid=a,b&sel=b&range=24h&dim=page.
//
// A campaign (?campaign=winter&range=24h) is shown instead in the cards,
// chart, visits, funnel, email and quality panels: the sum over its content
// ids, from the campaign routes. Breakdowns and live counts exist per
// content id only: with content ids chosen too (?campaign=winter&cid=a,b)
// the breakdown and today's table stay on them, else they say so. A
// campaign also shows its links and its recipients (who opened, clicked,
// converted), over the whole UTC days of the range, 50 recipients a page
// (?campaign=winter&recipients=clicked keeps the recipients' filter).
"use strict";

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat("en-US");
const pct = (x) => (x * 100).toFixed(x > 0 && x < 0.1 ? 2 : 1) + "%";
const state = {
  token: sessionStorage.getItem("pixelpipe.token") || "",
  cids: [], sel: "", campaign: "", range: "30d", dim: "country", topKind: "view",
  live: null, lastLive: null, tableKey: "", points: null, gran: "day",
  // The recipients' filter and page: cursor of the page shown ("" the
  // first), recipients before it (offset), and the answer's next cursor.
  rcpt: { filter: "all", scope: "", cursor: "", offset: 0, page: 1, shown: 0, next: "", loading: false },
};

// The kinds of events, in funnel order, and visits, by their field in a
// series point.
const KINDS = [
  ["impressions", "Impressions"], ["views", "Views"], ["clicks", "Clicks"],
  ["conversions", "Conversions"], ["opens", "Opens"], ["custom", "Custom events"],
  ["visits", "Visits"],
];

// Readable names of the bot, machine and unverified reasons.
const REASONS = {
  known_crawler: "known crawler", empty_user_agent: "no user agent", headless: "headless browser",
  prefetch: "prefetch", missing_headers: "missing browser headers", datacenter: "data-center address",
  rate: "too many hits", apple_mpp: "Apple Mail Privacy Protection", gmail_proxy: "Gmail image proxy",
  yahoo_proxy: "Yahoo Mail proxy", link_scanner: "link scanner", unsigned: "unsigned pixel",
  unknown_key: "unknown signing key", bad_signature: "bad signature", expired: "expired signature",
  unsigned_suffix: "unsigned suffix",
};
const reasonName = (r) => (Object.hasOwn(REASONS, r) ? REASONS[r] : r.replace(/_/g, " "));

// What each breakdown dimension counts; the first five count every human
// view, the others only the views that carry the value.
const DIMENSIONS = {
  country: ["country", "Every human view, by the visitor's country."],
  device: ["device", "Every human view, by device type."],
  browser: ["browser", "Every human view, by browser."],
  os: ["OS", "Every human view, by operating system."],
  source: ["source", "Every human view, by the referrer's class (search, social, email, ...); direct: no referrer."],
  referrer: ["referrer", "Only the human views with a referrer, by its domain.", true],
  utm_source: ["UTM source", "Only the human views whose page URL has utm_source.", true],
  utm_medium: ["UTM medium", "Only the human views whose page URL has utm_medium.", true],
  utm_campaign: ["UTM campaign", "Only the human views whose page URL has utm_campaign.", true],
  page: ["page", "Human views by the page's path.", true],
  landing: ["landing page", "The first view of each session, by the page's path.", true],
  destination: ["link", "Human clicks by the link's destination: the links of a page, an ad or a mail.", true, "click"],
  prop: ["custom property", "Human custom events (k=custom), by each of their properties (p.KEY=VALUE): an event with two properties counts under both.", true, "custom"],
};

// The two values of a breakdown that are not values: what they stand for.
const SPECIAL = {
  other: "every value past the first 50 of a day, together",
  unknown: "views for which it is not known",
};

// el builds an element: attributes, then children (nodes or text).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  e.append(...kids);
  return e;
}

// cidText is a content id that may break after its tenant ("acme:" and
// "article-7"), nowhere else.
function cidText(id) {
  const i = id.indexOf(":");
  if (i < 0 || i === id.length - 1) return el("span", { class: "cid" }, id);
  return el("span", {}, el("span", { class: "cid" }, id.slice(0, i + 1)), el("wbr"), el("span", { class: "cid" }, id.slice(i + 1)));
}

// latest returns a check that is true while no later call of latest(key)
// was made: an answer that arrives after a newer request is dropped.
const seq = {};
function latest(key) {
  const n = (seq[key] || 0) + 1;
  seq[key] = n;
  return () => seq[key] === n;
}

// A campaign is chosen: the panels above the breakdown show it.
const byCampaign = () => state.campaign !== "";
// shownName names what the panels show: "campaign winter" or a content id.
const shownName = () => (byCampaign() ? "campaign " + state.campaign : state.sel);

// scopePath is the path of a stats or series route of what is shown:
// /v1/campaigns/{campaign}/stats or /v1/stats/{cid}.
function scopePath(what) {
  if (byCampaign()) return "/v1/campaigns/" + encodeURIComponent(state.campaign) + "/" + what;
  return "/v1/" + what + "/" + encodeURIComponent(state.sel);
}

// campaignError says what is wrong with a campaign id, as the API checks
// it ("" when nothing is).
function campaignError(name) {
  if (/^[A-Za-z0-9._:-]{1,128}$/.test(name)) return "";
  if (name.length > 128) return "A campaign id has at most 128 characters; this one has " + name.length + ".";
  const bad = [...new Set([...name.replace(/[A-Za-z0-9._:-]/g, "")].map((c) => (/\s/.test(c) ? "a space" : "“" + c + "”")))];
  return "Not a campaign id: use A-Z a-z 0-9 . _ : - only (this one has " + (bad.length < 2 ? bad[0] : bad.slice(0, -1).join(", ") + " and " + bad[bad.length - 1]) + ").";
}

function showCampaignError(msg) {
  $("campaign-error").textContent = msg || "";
  $("campaign-error").hidden = !msg;
  if (msg) $("campaign").setAttribute("aria-invalid", "true");
  else $("campaign").removeAttribute("aria-invalid");
}

function setStatus(msg) {
  const s = $("status");
  s.textContent = msg || "";
  s.hidden = !msg;
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

// api asks the query API; only a 401 opens the token prompt, so a server
// without tokens never shows it.
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
const rangeQuery = (rp) => "from=" + iso(rp.from) + "&to=" + iso(rp.to);
// todayQuery is the range of today (UTC), the cards' range.
function todayQuery() {
  const now = new Date();
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  return "from=" + iso(day) + "&to=" + iso(new Date(day.getTime() + 86400e3));
}

// The URL keeps the campaign, the content ids, the selected one, the range,
// the breakdown dimension and the recipients' filter (ids are plain: A-Z a-z
// 0-9 . _ : -); a campaign alone keeps no content ids and no dimension.
const enc = (s) => encodeURIComponent(s).replace(/%3A/gi, ":").replace(/%2C/gi, ",");
function writeURL() {
  const perCid = state.cids.length || !byCampaign();
  const qs = (byCampaign() ? "?campaign=" + enc(state.campaign) + (perCid ? "&" : "") : "?") +
    (perCid ? "cid=" + enc(state.cids.join(",")) + "&sel=" + enc(state.sel) : "") + "&range=" + enc(state.range) +
    (perCid ? "&dim=" + enc(state.dim) : "") + (state.topKind !== "view" ? "&top=" + enc(state.topKind) : "") +
    (byCampaign() && state.rcpt.filter !== "all" ? "&recipients=" + enc(state.rcpt.filter) : "");
  history.replaceState(null, "", location.pathname + qs);
}

// setCids reads comma-separated content ids and keeps sel selected when
// it is one of them (else the current selection, else the first).
function setCids(text, sel) {
  state.cids = [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];
  if (state.cids.includes(sel)) state.sel = sel;
  else if (!state.cids.includes(state.sel)) state.sel = state.cids[0] || "";
  $("cids").value = state.cids.join(", ");
}

// drawPicker draws one tab per chosen content id (or the campaign's) and
// writes the selected one into every panel heading.
function drawPicker() {
  drawPerCid();
  $("mail").hidden = !byCampaign();
  if (byCampaign()) {
    const b = el("button", { type: "button", role: "tab", id: "tab-campaign", "aria-controls": "selected", "aria-selected": "true", tabindex: "0", class: "campaign-tab" },
      el("span", { class: "what" }, "campaign"), " " + state.campaign);
    $("picker").replaceChildren(b);
    $("selected").setAttribute("aria-labelledby", "tab-campaign");
    $("picker-hint").textContent = "the sum over its content ids · " + (state.cids.length ? "the breakdown and today's table stay on the content ids"
      : "breakdowns and live counts are per content id: enter content ids above too");
    for (const s of document.querySelectorAll(".sel-id")) s.textContent = shownName();
    $("bd-sel").textContent = state.cids.length ? state.sel : "per content id";
    return;
  }
  const tabs = state.cids.map((c, i) => {
    const on = c === state.sel;
    const b = el("button", { type: "button", role: "tab", id: "tab-" + i, "aria-controls": "selected", "aria-selected": String(on), tabindex: on ? "0" : "-1", "data-cid": c }, c);
    b.addEventListener("click", () => select(c));
    return b;
  });
  $("picker").replaceChildren(...tabs);
  const i = state.cids.indexOf(state.sel);
  if (i >= 0) $("selected").setAttribute("aria-labelledby", "tab-" + i);
  $("picker-hint").textContent = !state.cids.length ? "enter content ids above"
    : state.cids.length === 1 ? "enter several content ids, comma-separated, to switch between them"
    : "the panels below show the selected one";
  for (const s of document.querySelectorAll(".sel-id")) s.textContent = state.sel;
}

// drawPerCid shows, with a campaign, what stays per content id: the
// breakdown's content id (a choice of the chosen ones) and today's table,
// or one line each on how to see them.
function drawPerCid() {
  const many = byCampaign() && state.cids.length > 1;
  $("bd-cid-label").hidden = !many;
  $("bd-cid").hidden = !many;
  if (many) {
    $("bd-cid").replaceChildren(...state.cids.map((c) => el("option", { value: c }, c)));
    $("bd-cid").value = state.sel;
  }
  $("cards-live").textContent = byCampaign() ? "" : ", live";
  const none = byCampaign() && !state.cids.length;
  $("live-table-box").hidden = none;
  $("live-table-note").hidden = !none;
  $("live-table-note").textContent = none ? "Live counts are kept per content id: enter content ids next to the campaign above to follow them here." : "";
}

$("bd-cid").addEventListener("change", () => select($("bd-cid").value));

// Arrow keys, Home and End move between the tabs.
$("picker").addEventListener("keydown", (e) => {
  if (byCampaign()) return;
  const n = state.cids.length;
  const i = state.cids.indexOf(state.sel);
  const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: n - 1 }[e.key];
  if (j === undefined || !n) return;
  e.preventDefault();
  const k = (j + n) % n;
  select(state.cids[k]);
  $("picker").children[k].focus();
});

function select(cid) {
  if (cid === state.sel || !state.cids.includes(cid)) return;
  state.sel = cid;
  writeURL();
  drawPicker();
  if (state.lastLive) showLive(state.lastLive);
  // With a campaign, only the breakdown (and the marks) follow the content id.
  if (byCampaign()) {
    refreshBreakdown();
    refreshTop({});
  } else refresh();
}

function showFreshness(f) {
  const b = $("freshness");
  b.className = "fresh " + (f.status || "unknown");
  if (!f.complete_until) {
    b.textContent = "freshness: unknown (no watermark yet)";
    b.title = "The aggregators do not report a watermark yet; counts are read live from Redis.";
    return;
  }
  const lag = f.lag_seconds;
  const lagText = lag < 1 ? "<1 s" : lag < 120 ? Math.round(lag) + " s" : Math.round(lag / 60) + " min";
  b.textContent = "complete to " + new Date(f.complete_until).toISOString().slice(11, 19) + " UTC · lag " + lagText + (f.status === "partial" ? " (" + f.partitions + "/" + f.expected_partitions + " partitions)" : "");
  b.title = "Counts hold every event before " + f.complete_until;
}

function setNum(id, v) {
  const e = $(id);
  const txt = typeof v === "number" ? nf.format(v) : v;
  if (e.textContent !== txt) {
    e.textContent = txt;
    e.classList.remove("bump");
    void e.offsetWidth;
    e.classList.add("bump");
  }
}

// bound is the error bar written after a unique count: " ±b", or nothing
// when the count is exact.
function bound(b) {
  return b ? " ±" + nf.format(b) : "";
}

const CARDS = ["live-uniques", "live-views", "live-impressions", "live-clicks", "live-opens", "live-nonhuman"];
function resetCards() {
  for (const id of CARDS) $(id).textContent = "–";
  $("live-ctr").textContent = "–";
}

// showLive fills the cards with the selected content id's counts of today
// and the table with every chosen one's.
function showLive(ev) {
  state.lastLive = ev;
  showFreshness(ev.freshness);
  const c = ev.contents.find((x) => x.content_id === state.sel);
  // With a campaign the cards are the campaign's (showCampaignToday).
  if (!byCampaign()) {
    if (!c) resetCards();
    else {
      setNum("live-uniques", c.uniques);
      $("live-uniques-bound").textContent = c.uniques_bound ? "± " + nf.format(c.uniques_bound) + " (HyperLogLog bound)" : "exact · human views";
      setNum("live-views", c.views);
      setNum("live-impressions", c.impressions);
      setNum("live-clicks", c.clicks);
      $("live-ctr").textContent = c.impressions ? pct(c.ctr) : "–";
      setNum("live-opens", c.opens);
      setNum("live-nonhuman", c.non_human);
    }
    $("live-age").textContent = "live · updated " + new Date().toLocaleTimeString();
  }
  // Redrawn only when something changed, so a focused button stays.
  const key = state.sel + "|" + JSON.stringify(ev.contents);
  if (key === state.tableKey) return;
  state.tableKey = key;
  $("live-table").replaceChildren(...ev.contents.map((x) => {
    const on = x.content_id === state.sel;
    const pick = el("button", { type: "button", class: "link", "aria-pressed": String(on), title: "show " + x.content_id }, cidText(x.content_id));
    pick.addEventListener("click", () => select(x.content_id));
    const cells = [nf.format(x.uniques) + bound(x.uniques_bound), nf.format(x.views), nf.format(x.impressions), nf.format(x.clicks), nf.format(x.opens)];
    return el("tr", { class: on ? "selected" : undefined }, el("td", { class: "name" }, pick), ...cells.map((v) => el("td", { class: "n" }, v)));
  }));
}

// showCampaignToday fills the cards with the campaign's counts of today
// (GET /v1/campaigns/{campaign}/stats over today, read at every refresh: the
// live stream is per content id).
function showCampaignToday(st) {
  const h = st.human;
  setNum("live-uniques", h.views.uniques);
  $("live-uniques-bound").textContent = h.views.uniques_bound ? "± " + nf.format(h.views.uniques_bound) + " (HyperLogLog bound)" : "exact · human views";
  setNum("live-views", h.views.total);
  setNum("live-impressions", h.impressions.total);
  setNum("live-clicks", h.clicks.total);
  $("live-ctr").textContent = h.impressions.total ? pct(h.ctr) : "–";
  setNum("live-opens", h.opens.total);
  setNum("live-nonhuman", eventTotal(st.bot) + eventTotal(st.machine) + eventTotal(st.unverified));
  $("live-age").textContent = "today so far · updated " + new Date().toLocaleTimeString();
}

// startLive reads /v1/live with fetch (EventSource cannot send a token);
// with no content ids chosen (a campaign alone) it stops.
async function startLive() {
  if (!state.cids.length) {
    if (state.live) state.live.abort();
    state.live = null;
    state.liveKey = "";
    return;
  }
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
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceTop is the top of a y axis: max rounded up to 1, 1.2, 1.5, 2, 2.5, 3,
// 4, 5, 6 or 8 times a power of ten (at least 2).
function niceTop(max) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(max, 1))));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (m * p >= max) return Math.max(2, Math.round(m * p));
  }
  return 10 * p;
}

const listText = (xs) => (xs.length < 2 ? xs.join("") : xs.slice(0, -1).join(", ") + " or " + xs[xs.length - 1]);
const bucketText = (start, gran) => (gran === "hour" ? start.slice(11, 16) : start.slice(5, 10));

// drawChart draws one strip per kind that has events in the range, each on
// its own scale (an ad's clicks are a few percent of its impressions), at
// the chart's width in pixels so that text is never stretched.
function drawChart() {
  const points = state.points;
  const box = $("chart");
  if (!points) return;
  const W = Math.max(240, Math.floor(box.clientWidth));
  const strips = [], none = [];
  for (const [k, name] of KINDS) {
    const sum = points.reduce((a, p) => a + p[k], 0);
    if (sum) strips.push(drawStrip(points, k, name, sum, W));
    else if (k !== "custom") none.push(name.toLowerCase());
  }
  if (!strips.length) {
    $("chart-none").textContent = "";
    box.replaceChildren(el("p", { class: "pending" }, "No human events of " + shownName() + " in this range."));
    return;
  }
  $("chart-none").textContent = none.length ? "no " + listText(none) + " in this range" : "";
  box.replaceChildren(...strips);
}

function drawStrip(points, k, name, sum, W) {
  const H = 120, L = 44, R = 6, T = 8, B = 20;
  const per = state.gran === "hour" ? "hour" : "day";
  const withUniques = k === "views";
  const n = Math.max(points.length, 1);
  const peak = Math.max(...points.map((p) => p[k]));
  const top = niceTop(Math.max(1, ...points.map((p) => (withUniques ? Math.max(p[k], p.uniques) : p[k]))));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const bw = (W - L - R) / n;
  const kids = [];
  for (const v of [0, top / 2, top]) {
    if (!Number.isInteger(v)) continue;
    kids.push(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    kids.push(svg("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, nf.format(v)));
  }
  const every = Math.ceil(n / Math.max(1, Math.floor((W - L - R) / 56)));
  points.forEach((p, i) => {
    const x = L + i * bw, v = p[k];
    const bar = svg("rect", { class: "bar k-" + k, x: x + bw * 0.15, width: Math.max(bw * 0.7, 1), y: y(v), height: Math.max(y(0) - y(v), 0), "data-v": v });
    bar.appendChild(svg("title", {}, p.start + ": " + nf.format(v) + " " + name.toLowerCase() + (withUniques ? ", " + nf.format(p.uniques) + bound(p.uniques_bound) + " unique visitors" : "")));
    kids.push(bar);
    if (i % every === 0) kids.push(svg("text", { class: "axis", x: x + bw / 2, y: H - 5, "text-anchor": "middle" }, bucketText(p.start, state.gran)));
  });
  const head = el("div", { class: "strip-head" }, el("span", { class: "key k-" + k, "aria-hidden": "true" }), el("b", {}, name), el("b", {}, nf.format(sum)),
    el("span", { class: "hint" }, "at most " + nf.format(peak) + " in one " + per));
  if (withUniques) {
    const path = points.map((p, i) => (i ? "L" : "M") + (L + i * bw + bw / 2).toFixed(1) + " " + y(p.uniques).toFixed(1)).join(" ");
    kids.push(svg("path", { class: "line", d: path }));
    if (points.length <= 60) points.forEach((p, i) => kids.push(svg("circle", { class: "pt", cx: L + i * bw + bw / 2, cy: y(p.uniques), r: 2.5 })));
    head.append(el("span", { class: "hint nowrap" }, el("span", { class: "key k-uniques", "aria-hidden": "true" }), " unique visitors per " + per));
  }
  const chart = svg("svg", { role: "img", width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-kind": k,
    "aria-label": name + " per " + per + ", " + rangeParams().label + ": " + nf.format(sum) + " in all, at most " + nf.format(peak) + " in one " + per });
  chart.append(...kids);
  return el("div", { class: "strip", "data-kind": k }, head, chart);
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawChart, 150);
});

function drawFunnel(h) {
  const steps = [["Impressions", h.impressions.total], ["Views", h.views.total], ["Clicks", h.clicks.total], ["Conversions", h.conversions.total]];
  const max = Math.max(1, ...steps.map((s) => s[1]));
  $("funnel").replaceChildren(...steps.map(([name, v]) => {
    const fill = el("div", { class: "fill" });
    fill.style.width = ((100 * v) / max).toFixed(1) + "%";
    return el("div", { class: "step" }, el("span", {}, name), el("div", { class: "track", "aria-hidden": "true" }, fill), el("span", { class: "val" }, nf.format(v)));
  }));
  $("ctr").textContent = h.impressions.total ? pct(h.ctr) : "–";
  $("cvr").textContent = h.clicks.total ? pct(h.conversion_rate) : "–";
  $("orders").textContent = nf.format(h.orders);
  const rev = Object.entries(h.revenue || {}).map(([c, v]) => money(v, c));
  $("revenue").textContent = rev.length ? rev.join(" · ") : "–";
}

// duration writes a visit's length in seconds: 4.2 s, 45 s, 3 min 05 s,
// 1 h 02 min.
function duration(s) {
  if (s < 10) return s.toFixed(1) + " s";
  const t = Math.round(s);
  if (t < 60) return t + " s";
  if (t < 3600) return Math.floor(t / 60) + " min " + String(t % 60).padStart(2, "0") + " s";
  return Math.floor(t / 3600) + " h " + String(Math.floor(t / 60) % 60).padStart(2, "0") + " min";
}

// drawVisits fills the visits panel with the visits of people that landed
// on the selected content id or the campaign's (v: human.visits of GET
// /v1/stats or /v1/campaigns/{campaign}/stats): visits,
// distinct visitors, bounce rate, mean duration and pages per visit. A
// visit is counted when it ends, so a new content id has none for a while.
function drawVisits(v) {
  const none = !v.visits;
  $("visits-body").hidden = none;
  $("visits-empty").hidden = !none;
  $("visits-empty").textContent = "No visits of " + shownName() + " in this range yet. Visits appear when a visit ends: after 30 minutes without a hit, by default.";
  $("visits-total").textContent = nf.format(v.visits);
  $("visits-visitors").textContent = nf.format(v.visitors) + bound(v.visitors_bound);
  $("visits-visitors-bound").textContent = v.visitors_bound ? "distinct people (HyperLogLog bound)" : "distinct people";
  $("visits-bounce").textContent = none ? "–" : pct(v.bounce_rate);
  $("visits-bounces").textContent = nf.format(v.bounces) + (v.bounces === 1 ? " visit" : " visits") + " of one page";
  $("visits-duration").textContent = none ? "–" : duration(v.mean_duration_s);
  $("visits-pages").textContent = none ? "–" : v.pages_per_visit.toFixed(2);
}

// shareBar is a bar of width v/max in a segmented bar (.quality).
function shareBar(cls, v, sum, title) {
  const s = el("span", { class: cls, title });
  s.style.width = ((100 * v) / sum).toFixed(2) + "%";
  return s;
}

// reasonItem is one line of a reasons list: a swatch, a count and a text.
function reasonItem(cls, n, text) {
  return el("li", {}, el("span", { class: "swatch " + cls, "aria-hidden": "true" }), el("b", {}, nf.format(n)), " " + text);
}

// drawEmail: opens by people and by machines (mail privacy proxies, link
// scanners: the machine class), people's clicks, and the click-through
// rate over human opens. st is the answer of GET /v1/stats with
// kind=open&class=machine, so its reasons are the machine opens'.
function drawEmail(st) {
  const h = st.human.opens, m = st.machine.opens, clicks = st.human.clicks.total;
  const all = h.total + m.total;
  $("email-body").hidden = !all;
  $("email-empty").hidden = !!all;
  $("email-empty").textContent = "No email opens of " + shownName() + " in this range.";
  $("email-bar").replaceChildren(...(all ? [shareBar("q-human", h.total, all, "human opens"), shareBar("q-machine", m.total, all, "machine opens")] : []));
  $("email-human").textContent = nf.format(h.total);
  $("email-human-uniques").textContent = all ? "by " + nf.format(h.uniques) + bound(h.uniques_bound) + " people · " + pct(h.total / all) + " of all opens" : "by people";
  $("email-machine").textContent = nf.format(m.total);
  $("email-clicks").textContent = nf.format(clicks);
  $("email-ctr").textContent = h.total ? pct(clicks / h.total) : "–";
  const items = Object.entries(st.reasons || {}).sort((a, b) => b[1] - a[1]).map(([r, n]) => reasonItem("q-machine", n, reasonName(r)));
  if (st.machine.clicks.total) items.push(reasonItem("q-machine", st.machine.clicks.total, "machine clicks (scanners), not in the rate"));
  $("email-reasons").replaceChildren(...items);
}

// eventTotal is a class's events of every kind (visits are not events).
const eventTotal = (c) => c.views.total + c.impressions.total + c.clicks.total + c.conversions.total + c.opens.total + c.custom.total;

function drawQuality(st) {
  const total = eventTotal;
  const parts = [["human", "people", total(st.human)], ["bot", "bots", total(st.bot)], ["machine", "machines (mail proxies, scanners)", total(st.machine)], ["unverified", "unverified (signed pixels)", total(st.unverified)]];
  const sum = parts.reduce((a, p) => a + p[2], 0);
  $("quality").replaceChildren(...(sum ? parts.map(([k, name, v]) => shareBar("q-" + k, v, sum, name + ": " + nf.format(v) + " events")) : []));
  const items = parts.filter(([k, , v]) => v || k !== "unverified").map(([k, name, v]) => reasonItem("q-" + k, v, name));
  for (const cls of ["bot", "machine", "unverified"]) {
    for (const [r, v] of Object.entries(st[cls].reasons || {}).sort((a, b) => b[1] - a[1])) items.push(reasonItem("q-" + cls, v, reasonName(r) + " (" + cls + ")"));
  }
  $("reasons").replaceChildren(...items);
}

// shareTable is a table of a top list or a breakdown: name, a bar of the
// row's uniques against max, uniques and views. rows: {rank, key, name
// (a node), uniques, uniques_bound, total, cls} or {gap: text}.
function shareTable(head, rows, max) {
  const cols = head.length;
  const ths = head.map(([text, cls]) => el("th", { scope: "col", class: cls }, text));
  const body = rows.map((r) => {
    if (r.gap) return el("tr", { class: "gap" }, el("td", { colspan: cols }, r.gap));
    const bar = el("span", { class: "bar" });
    bar.style.width = Math.round((100 * Math.max(r.uniques, 0)) / Math.max(1, max)) + "%";
    const cells = [];
    if (r.rank !== undefined) cells.push(el("td", { class: "n" }, r.rank));
    cells.push(el("td", { class: "name" }, r.name), el("td", { class: "bar-cell", "aria-hidden": "true" }, bar));
    cells.push(el("td", { class: "n" }, r.error || nf.format(r.uniques) + bound(r.uniques_bound)), el("td", { class: "n" }, r.error ? "" : nf.format(r.total)));
    return el("tr", { class: r.cls }, ...cells);
  });
  return el("div", { class: "scroll" }, el("table", { class: "table" }, el("thead", {}, el("tr", {}, ...ths)), el("tbody", {}, ...body)));
}

// breakdownName shows a breakdown value; "other" and "unknown" say what
// they stand for. Long values (page paths) wrap, with the whole in a title.
function breakdownName(key) {
  if (Object.hasOwn(SPECIAL, key)) return el("span", { class: "special" }, key, el("span", { class: "why" }, SPECIAL[key]));
  return el("span", { title: key }, key);
}

async function refreshBreakdown() {
  const current = latest("breakdown");
  const [label, hint, optional, kind = "view"] = DIMENSIONS[state.dim];
  $("dimension-hint").textContent = hint;
  // A campaign alone: breakdowns are kept per content id only.
  const alone = byCampaign() && !state.cids.length;
  $("bd-head").hidden = alone;
  $("dimension-hint").hidden = alone;
  if (alone) {
    $("breakdowns").classList.add("pending");
    $("breakdowns").textContent = "Breakdowns are kept per content id, not per campaign: enter content ids next to the campaign above to see theirs.";
    return;
  }
  const sel = state.sel;
  // What the breakdown counts: views, or the custom events of a property.
  const what = { custom: "custom events", click: "clicks" }[kind] || "views";
  const r = await api("/v1/breakdowns/" + encodeURIComponent(sel) + "?" + rangeQuery(rangeParams()) + "&dimension=" + state.dim + "&kind=" + kind + "&limit=15");
  if (!current()) return;
  const box = $("breakdowns");
  box.classList.remove("pending");
  if (r.status !== 200) { box.textContent = r.body.error; return; }
  const items = r.body.items;
  if (!items.length) {
    box.textContent = optional ? "No human " + what + " of " + sel + " carry a " + label + " in this range."
      : "No human " + what + " of " + sel + " in this range (breakdowns split human " + what + ").";
    return;
  }
  const max = Math.max(...items.map((it) => it.uniques));
  box.replaceChildren(shareTable([[label], ["share", "bar-cell"], ["uniques", "n"], [{ custom: "events", click: "clicks" }[kind] || "views", "n"]],
    items.map((it) => ({ ...it, name: breakdownName(it.key) })), max));
}

// Top content follows the chosen ids: the list is the tenant's top 10 by
// unique visitors of human events of the chosen kind (GET /v1/top; views by
// default, custom events by name), the chosen ids marked in it, and every
// chosen id that is not in it comes after it, under "chosen, outside the top
// 10", with the same two numbers (human events of that kind and their unique
// visitors over the same range, from GET /v1/stats). So the ranking stays the
// real one, and each chosen id shows where it stands.
const TOP_N = 10;
// TOP_KINDS: the stats field and the column heading of each kind.
const TOP_KINDS = {
  view: ["views", "views"], custom: ["custom", "events"], click: ["clicks", "clicks"],
  conversion: ["conversions", "conversions"], open: ["opens", "opens"], impression: ["impressions", "impressions"],
};
async function refreshTop(known) {
  const current = latest("top");
  const q = rangeQuery(rangeParams());
  const kind = state.topKind;
  const [field, column] = TOP_KINDS[kind];
  const r = await api("/v1/top?" + q + "&kind=" + kind + "&by=uniques&limit=" + TOP_N);
  if (!current()) return;
  const box = $("top");
  box.classList.remove("pending");
  if (r.status !== 200) { box.textContent = r.body.error; return; }
  const items = r.body.items;
  const ranked = new Set(items.map((it) => it.key));
  const outside = await Promise.all(state.cids.filter((c) => !ranked.has(c)).map(async (c) => {
    let st = known[c];
    if (!st) {
      const s = await api("/v1/stats/" + encodeURIComponent(c) + "?" + q);
      if (s.status !== 200) return { key: c, error: s.body.error, uniques: 0 };
      st = s.body;
    }
    const v = st.human[field];
    return { key: c, total: v.total, uniques: v.uniques, uniques_bound: v.uniques_bound };
  }));
  if (!current()) return;
  const row = (it, rank) => {
    const chosen = state.cids.includes(it.key), on = !byCampaign() && it.key === state.sel;
    let name = cidText(it.key);
    if (chosen) {
      name = el("button", { type: "button", class: "link", "aria-pressed": String(on), title: "show " + it.key }, cidText(it.key));
      name.addEventListener("click", () => select(it.key));
    }
    const cell = el("span", {}, name, chosen ? el("span", { class: "mark" }, on ? "shown" : "chosen") : "");
    return { ...it, rank, name: cell, cls: on ? "chosen selected" : chosen ? "chosen" : undefined };
  };
  const rows = items.map((it, i) => row(it, String(i + 1)));
  if (!items.length) rows.push({ gap: "nothing ranked in this range yet" });
  if (outside.length) rows.push({ gap: "chosen, outside the top " + TOP_N }, ...outside.map((it) => row(it, "–")));
  const max = Math.max(1, ...items.map((it) => it.uniques), ...outside.map((it) => it.uniques));
  box.replaceChildren(shareTable([["#", "n"], ["content id"], ["share", "bar-cell"], ["uniques", "n"], [column, "n"]], rows, max));
}

// refreshAudit fills the audit panel: per edge node, the hits it accepted
// in the last hour and what became of them (GET /v1/audit, operators only).
async function refreshAudit() {
  const current = latest("audit");
  const r = await api("/v1/audit");
  if (!current()) return;
  const box = $("audit"), sum = $("audit-summary");
  box.textContent = "";
  sum.textContent = "";
  sum.className = "audit-summary";
  if (r.status === 403) { box.textContent = "The audit spans every tenant's hits: it needs an operator token."; return; }
  if (r.status !== 200) { box.textContent = r.body.error; return; }
  box.classList.remove("pending");
  const a = r.body;
  if (!a.nodes.length) { box.textContent = "no hits in the last hour"; return; }
  if (a.missing > 0) {
    sum.textContent = nf.format(a.missing) + " of " + nf.format(a.accepted) + " accepted hits missing (never reached the processors, or still in an edge's spool)";
    sum.classList.add("bad");
  } else {
    sum.textContent = "all " + nf.format(a.accepted) + " accepted hits accounted for" + (a.not_yet_counted ? " (" + nf.format(a.not_yet_counted) + " not yet counted)" : "");
    sum.classList.add("good");
  }
  const cols = ["node", "accepted", "counted", "not yet", "dead-lettered", "missing", "duplicates"];
  const head = el("tr", {}, ...cols.map((c, i) => el("th", { scope: "col", class: i ? "n" : undefined }, c)));
  const rows = a.nodes.map((n) => el("tr", {}, ...[n.node, n.accepted, n.counted, n.not_yet_counted, n.dead_lettered, n.missing, n.duplicates_dropped].map((v, i) =>
    el("td", { class: i === 0 ? "name" : i === 5 && v > 0 ? "n bad" : "n" }, i === 0 ? v : nf.format(v)))));
  box.append(el("table", { class: "table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// The campaign's links and recipients (GET /v1/campaigns/{campaign}/links
// and .../recipients): these routes count whole UTC days.
const RCPT_PAGE = 50;
// RCPT_CSV_PAGE: recipients per request of the CSV download (the API's
// largest page); the download follows the pages to the last.
const RCPT_CSV_PAGE = 10000;
// RECIPIENT_FILTERS: what no recipient did when a filter selects none.
const RECIPIENT_FILTERS = {
  all: "", opened: "opened a mail (machine opens aside)", clicked: "clicked a link", converted: "converted",
  "machine-only": "was reached by machines only (mail privacy proxies, scanners)", none: "is without a person's open, click or conversion",
};
const mailPath = (what) => "/v1/campaigns/" + encodeURIComponent(state.campaign) + "/" + what;

// mailRange is the range of the recipient and link routes: the whole UTC
// days that the chosen range touches (for the last 24 hours, yesterday and
// today, or today alone in its last hour).
function mailRange() {
  const rp = rangeParams();
  const from = new Date(Math.floor(rp.from.getTime() / 86400e3) * 86400e3);
  const to = new Date(Math.ceil(rp.to.getTime() / 86400e3) * 86400e3);
  const ymd = (d) => d.toISOString().slice(0, 10);
  const one = to - from === 86400e3;
  return {
    query: "from=" + ymd(from) + "&to=" + ymd(to),
    label: rp.gran === "day" ? rp.label : one ? "today (UTC)" : "yesterday and today (UTC)",
    title: one ? "the UTC day " + ymd(from) : "the UTC days " + ymd(from) + " to " + ymd(new Date(to - 86400e3)),
  };
}

// drawMailRange writes the range into the two panels' headings.
function drawMailRange(mr) {
  for (const s of document.querySelectorAll(".mail-range")) {
    s.textContent = mr.label;
    s.title = mr.title;
  }
}

// money writes an amount of a currency ("€12.50"); an unknown currency
// code after the number.
function money(v, cur) {
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: cur }).format(v);
  } catch (e) {
    return nf.format(v) + (cur ? " " + cur : "");
  }
}

// timeFmt writes a time in this browser's time zone and language.
const timeFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
function timeCell(t) {
  if (!t) return el("td", { class: "t" }, "–");
  const d = new Date(t);
  return el("td", { class: "t" }, el("time", { datetime: t, title: d.toString() }, timeFmt.format(d)));
}

// shortKey shortens a recipient key (32 hex digits) for a table.
const shortKey = (k) => k.slice(0, 8) + "…" + k.slice(-4);
// destText is a link's destination without its scheme.
const destText = (d) => d.replace(/^https?:\/\//, "");

async function refreshLinks() {
  const current = latest("links");
  const mr = mailRange();
  drawMailRange(mr);
  const r = await api(mailPath("links") + "?" + mr.query);
  if (!current()) return;
  const links = r.status === 200 ? r.body.links : [];
  $("links-box").hidden = !links.length;
  $("links-empty").hidden = !!links.length;
  $("links-empty").textContent = r.status !== 200 ? r.body.error : "No clicks on links of " + shownName() + " in this range.";
  $("links-rows").replaceChildren(...links.map((l) => el("tr", {},
    el("td", { class: "name" }, el("span", { title: l.destination }, l.destination)),
    ...[l.clicks, l.unique_clickers, l.machine_clicks].map((v) => el("td", { class: "n" }, nf.format(v))))));
}

// recipientRow is a recipient's row: who (the uid, else the key
// shortened), opens by people and machines, the first and last of a
// person's, clicks with the links clicked, conversions and revenue.
function recipientRow(x) {
  // A uid may break before its "@" on a narrow screen (.uid > span).
  const uid = x.uid || "", at = uid.lastIndexOf("@");
  const who = uid ? el("span", { class: "uid", title: uid + " · recipient key " + x.key }, ...(at > 0 ? [el("span", {}, uid.slice(0, at)), el("span", {}, uid.slice(at))] : [uid]))
    : el("span", { class: "rkey", title: "recipient key " + x.key + " (no uid kept)" }, shortKey(x.key));
  const machineTitle = x.first_machine_open ? "first " + timeFmt.format(new Date(x.first_machine_open)) + ", last " + timeFmt.format(new Date(x.last_machine_open)) : undefined;
  const links = (x.links || []).map((l) => el("li", {}, el("span", { class: "dest", title: l.destination }, destText(l.destination)), " ", el("b", {}, nf.format(l.clicks))));
  if (x.machine_clicks) links.push(el("li", { class: "machine" }, "link scanners ", el("b", {}, nf.format(x.machine_clicks))));
  const orders = (x.orders || []).map((o) => o.order_id + ": " + money(o.value, o.currency));
  const revenue = Object.entries(x.revenue || {}).map(([c, v]) => money(v, c));
  return el("tr", {},
    el("th", { scope: "row", class: "who" }, who),
    el("td", { class: "n" }, nf.format(x.opens)),
    el("td", { class: "n", title: machineTitle }, nf.format(x.machine_opens)),
    timeCell(x.first_open), timeCell(x.last_open),
    el("td", { class: "n" }, nf.format(x.clicks)),
    el("td", { class: "links" }, links.length ? el("ul", { class: "rlinks" }, ...links) : "–"),
    el("td", { class: "n", title: orders.length ? "orders " + orders.join(", ") : undefined }, nf.format(x.conversions)),
    el("td", { class: "n" }, revenue.length ? revenue.join(" · ") : "–"));
}

// recipientsEmpty says why a page of recipients is empty.
function recipientsEmpty() {
  const r = state.rcpt;
  if (r.next) return "No recipients on this page; the list goes on: Next.";
  if (r.offset) return "No more recipients.";
  if (r.filter === "all") return "No recipient activity of " + shownName() + " in this range: recipients appear when the pixels and links of its mails carry a uid.";
  return "No recipient of " + shownName() + " " + RECIPIENT_FILTERS[r.filter] + " in this range.";
}

// drawPager writes which recipients are shown and enables First page and
// Next; a button that gets disabled while focused hands the focus on.
function drawPager(error) {
  const r = state.rcpt;
  const paged = r.page > 1 || !!r.next;
  $("recipients-pager").hidden = !paged && (error || !r.shown);
  $("recipients-first").hidden = !paged;
  $("recipients-next").hidden = !paged;
  const focused = document.activeElement;
  $("recipients-first").disabled = r.page === 1;
  $("recipients-next").disabled = !r.next;
  if (focused && focused.disabled) {
    const other = focused.id === "recipients-next" ? $("recipients-first") : $("recipients-next");
    if (!other.disabled && !other.hidden) other.focus();
  }
  const range = r.shown ? "recipients " + nf.format(r.offset + 1) + "–" + nf.format(r.offset + r.shown) : "";
  $("recipients-page").textContent = error ? "" : paged ? "page " + r.page + (range ? " · " + range : "") : r.shown === 1 ? "1 recipient" : r.shown ? nf.format(r.shown) + " recipients" : "";
}

// refreshRecipients reads the page of recipients shown (the first after a
// change of campaign, range or filter).
async function refreshRecipients() {
  const current = latest("recipients");
  const r = state.rcpt, mr = mailRange();
  drawMailRange(mr);
  const q = mr.query + "&filter=" + r.filter;
  const scope = state.campaign + "|" + q;
  if (scope !== r.scope) Object.assign(r, { scope, cursor: "", offset: 0, page: 1, next: "" });
  $("recipients-csv").href = mailPath("recipients") + "?" + q + "&format=csv&limit=" + RCPT_CSV_PAGE;
  r.loading = true;
  $("recipients-box").setAttribute("aria-busy", "true");
  const res = await api(mailPath("recipients") + "?" + q + "&limit=" + RCPT_PAGE + (r.cursor ? "&cursor=" + encodeURIComponent(r.cursor) : ""));
  if (!current()) return;
  r.loading = false;
  $("recipients-box").removeAttribute("aria-busy");
  const ok = res.status === 200;
  const rows = ok ? res.body.recipients : [];
  r.next = ok ? res.body.next_cursor || "" : "";
  r.shown = rows.length;
  $("recipients-box").hidden = !rows.length;
  $("recipients-empty").hidden = !!rows.length;
  $("recipients-empty").textContent = ok ? recipientsEmpty() : res.body.error;
  $("recipients-rows").replaceChildren(...rows.map(recipientRow));
  drawPager(!ok);
}

$("recipients-filter").addEventListener("change", () => {
  state.rcpt.filter = $("recipients-filter").value;
  if (!byCampaign()) return;
  writeURL();
  refreshRecipients();
});

$("recipients-next").addEventListener("click", () => {
  const r = state.rcpt;
  if (r.loading || !r.next) return;
  Object.assign(r, { cursor: r.next, offset: r.offset + r.shown, page: r.page + 1 });
  refreshRecipients();
});

$("recipients-first").addEventListener("click", () => {
  const r = state.rcpt;
  if (r.page === 1 && !r.loading) return;
  Object.assign(r, { cursor: "", offset: 0, page: 1 });
  refreshRecipients();
});

// recipientsCSV reads the CSV of href (the Download CSV link's: the
// recipients the filter selects), every page of it (X-Next-Cursor), with
// the token, which a plain link cannot send. It resolves to {name, text}.
async function recipientsCSV(href) {
  let name = "recipients.csv", text = "", cursor = "";
  for (let page = 0; ; page++) {
    const res = await fetch(href + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), { headers: authHeaders() });
    if (!res.ok) {
      if (res.status === 401) askToken();
      const b = await res.json().catch(() => ({}));
      throw new Error(b.error || "status " + res.status);
    }
    const body = await res.text();
    if (page === 0) {
      text = body;
      const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
      if (m) name = m[1];
    } else text += body.slice(body.indexOf("\n") + 1); // without its header
    cursor = res.headers.get("X-Next-Cursor") || "";
    if (!cursor) return { name, text };
  }
}

$("recipients-csv").addEventListener("click", async (e) => {
  e.preventDefault();
  const a = $("recipients-csv"), err = $("recipients-csv-error");
  if (a.getAttribute("aria-busy") === "true") return;
  a.setAttribute("aria-busy", "true");
  a.textContent = "Preparing CSV…";
  err.hidden = true;
  try {
    const { name, text } = await recipientsCSV(a.getAttribute("href"));
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const save = el("a", { href: url, download: name, hidden: "" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (x) {
    err.textContent = "The CSV could not be read: " + x.message;
    err.hidden = false;
  } finally {
    a.removeAttribute("aria-busy");
    a.textContent = "Download CSV";
  }
});

// clearSelected empties the selected content id's (or campaign's) panels
// when its counts cannot be read, so none shows another id's numbers.
function clearSelected(msg) {
  state.points = null;
  if (byCampaign()) resetCards();
  $("chart").replaceChildren(el("p", { class: "pending" }, msg));
  $("chart-none").textContent = "";
  for (const id of ["funnel", "quality", "reasons", "email-bar", "email-reasons", "breakdowns"]) $(id).replaceChildren();
  for (const id of ["ctr", "cvr", "orders", "revenue", "email-human", "email-machine", "email-clicks", "email-ctr",
    "visits-total", "visits-visitors", "visits-bounce", "visits-duration", "visits-pages"]) $(id).textContent = "–";
  $("visits-body").hidden = false;
  $("visits-empty").hidden = true;
}

async function refresh() {
  if (!state.cids.length && !byCampaign()) return;
  const current = latest("main");
  setStatus("");
  const rp = rangeParams();
  for (const s of document.querySelectorAll(".range-label")) s.textContent = rp.label;
  $("chart-gran").textContent = rp.gran === "hour" ? "per hour" : "per day";
  startLive();
  refreshAudit();
  if (byCampaign()) {
    refreshLinks();
    refreshRecipients();
  }
  const sel = state.sel, name = shownName(), q = rangeQuery(rp);
  const [st, se, td] = await Promise.all([api(scopePath("stats") + "?" + q + "&kind=open&class=machine"), api(scopePath("series") + "?" + q + "&granularity=" + rp.gran),
    byCampaign() ? api(scopePath("stats") + "?" + todayQuery()) : null]);
  if (!current()) return;
  for (const [what, r] of [["stats", st], ["series", se], ["today's stats", td]]) {
    if (r && r.status !== 200) {
      setStatus(what + " of " + name + ": " + r.body.error);
      clearSelected("No counts of " + name + ": " + r.body.error);
      refreshTop({});
      return;
    }
  }
  if (td) showCampaignToday(td.body);
  showFreshness(st.body.freshness);
  drawFunnel(st.body.human);
  drawVisits(st.body.human.visits);
  drawEmail(st.body);
  drawQuality(st.body);
  state.points = se.body.points;
  state.gran = rp.gran;
  drawChart();
  refreshTop(byCampaign() ? {} : { [sel]: st.body });
  refreshBreakdown();
}

$("top-kind").addEventListener("change", () => {
  state.topKind = $("top-kind").value;
  if (!state.cids.length && !byCampaign()) return;
  writeURL();
  refreshTop({});
});

$("dimension").addEventListener("change", () => {
  state.dim = $("dimension").value;
  if (!state.cids.length) return;
  writeURL();
  refreshBreakdown();
});

// Content ids are required unless a campaign is given.
$("campaign").addEventListener("input", () => {
  const c = $("campaign").value.trim();
  $("cids").required = !c;
  if (!c || !campaignError(c)) showCampaignError("");
});

$("scope").addEventListener("submit", (e) => {
  e.preventDefault();
  const campaign = $("campaign").value.trim();
  const bad = campaign ? campaignError(campaign) : "";
  showCampaignError(bad);
  if (bad) {
    $("campaign").focus();
    return;
  }
  const before = state.cids.join(","), beforeCampaign = state.campaign;
  state.campaign = campaign;
  $("campaign").value = campaign;
  setCids($("cids").value, state.sel);
  if (state.cids.join(",") !== before) {
    state.lastLive = null;
    resetCards();
  }
  if (state.campaign !== beforeCampaign) {
    // The cards change from the campaign's to the selected content id's
    // (or back): nothing of the other may stay.
    resetCards();
    $("live-age").textContent = "waiting for the live stream";
    $("live-uniques-bound").textContent = "human views";
    state.tableKey = "";
    if (state.lastLive) showLive(state.lastLive);
  }
  state.range = $("range").value;
  writeURL();
  drawPicker();
  refresh();
});

// The chart and panels refresh every 30 s; the counters live.
setInterval(() => { if (state.cids.length || byCampaign()) refresh(); }, 30000);

(function init() {
  const p = new URLSearchParams(location.search);
  const range = p.get("range");
  if ([...$("range").options].some((o) => o.value === range)) state.range = range;
  $("range").value = state.range;
  if (Object.hasOwn(DIMENSIONS, p.get("dim") || "")) state.dim = p.get("dim");
  $("dimension").value = state.dim;
  if (Object.hasOwn(TOP_KINDS, p.get("top") || "")) state.topKind = p.get("top");
  $("top-kind").value = state.topKind;
  if (Object.hasOwn(RECIPIENT_FILTERS, p.get("recipients") || "")) state.rcpt.filter = p.get("recipients");
  $("recipients-filter").value = state.rcpt.filter;
  const campaign = (p.get("campaign") || "").trim();
  if (campaign) {
    $("campaign").value = campaign;
    const bad = campaignError(campaign);
    showCampaignError(bad);
    if (!bad) state.campaign = campaign;
  }
  $("cids").required = !campaign;
  if (p.get("cid")) setCids(p.get("cid"), p.get("sel"));
  drawPicker();
  // Servers without tokens (pixelpipe dev) answer at once; others answer
  // 401 and the token prompt opens (api asks for a token on 401 only).
  if (state.cids.length || byCampaign()) { writeURL(); refresh(); } else refreshAudit();
})();
