// The perso dashboard: each page polls its JSON endpoint and redraws in place. Plain DOM and Chart.js (vendored).
"use strict";

const POLL_MS = 3000;
const COLOURS = ["#2f6db5", "#d9822b", "#3a9d5d", "#b8405e", "#7b5ea7", "#8c6d31", "#4aa3a3", "#777777"];
const charts = {};

// --- small helpers -------------------------------------------------------------------------------------------
async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.assign("/dashboard/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("signed out");
  }
  if (!response.ok && response.status !== 404) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function el(id) { return document.getElementById(id); }

function escape(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function pct(x, digits = 1) { return x == null ? "–" : (100 * x).toFixed(digits) + "%"; }
function num(x, digits = 0) { return x == null ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: digits }); }
function pp(x) { return x == null ? "–" : (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pp"; }
function interval(pair, fmt) { return pair ? `[${fmt(pair[0])}, ${fmt(pair[1])}]` : ""; }
function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }
function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

function table(headers, rows) {
  const head = headers.map((h) => `<th>${escape(h)}</th>`).join("");
  const body = rows.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

// Draw or update a chart on canvas `id`; the canvas records how many points it shows (data-points), which the
// browser tests read to know a chart rendered with data.
function chart(id, type, data, options = {}) {
  const canvas = el(id);
  if (!canvas) return;
  const points = data.datasets.reduce((n, d) => n + d.data.filter((v) => v != null).length, 0);
  canvas.dataset.points = String(points);
  if (charts[id]) {
    charts[id].data = data;
    charts[id].update("none");
    return;
  }
  charts[id] = new Chart(canvas, {
    type, data,
    options: { animation: false, responsive: true, maintainAspectRatio: false, ...options },
  });
}

function card(id, title, note = "") {
  return `<section class="card"><h2>${escape(title)}</h2>${note ? `<p class="note">${note}</p>` : ""}` +
    `<div class="chart"><canvas id="${id}"></canvas></div></section>`;
}

function tiles(items) {
  return items.map(([label, value]) => `<div class="tile"><span>${escape(label)}</span><b>${value}</b></div>`).join("");
}

// Rates from consecutive cumulative points: a drop (a worker restarted) reads as no progress.
function rates(points, value) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = points[i].t - points[i - 1].t;
    const a = value(points[i - 1]), b = value(points[i]);
    out.push(a == null || b == null || dt <= 0 ? null : Math.max(0, b - a) / dt);
  }
  return out;
}

// --- pages ---------------------------------------------------------------------------------------------------
const pages = {};

pages.overview = {
  layout: () => `<div id="tiles" class="tiles"></div>
    <div class="grid">${card("c-events", "Events per second and lag", "lag: input events not yet committed by the workers")}
    ${card("c-offers", "Offers per second by policy", "decided offers (the holdout's are decided and never sent)")}
    ${card("c-dead", "Dead letters by reason", "since each worker started")}
    <section class="card"><h2>Workers</h2><div id="workers"></div></section></div>`,
  async refresh() {
    const d = await api("/dashboard/api/overview");
    const now = d.now, history = d.history.concat([now]);
    el("tiles").innerHTML = tiles([["events/s", num(now.events_per_s, 1)], ["lag (events waiting)", num(now.lag)],
      ["workers alive", `${now.workers_alive} of ${now.workers_known}`], ["events applied", num(now.accepted)],
      ["offers", num(now.offers)], ["dead letters", num(now.dead_letters)]]);
    const labels = history.map((p) => clock(p.t));
    chart("c-events", "line", { labels, datasets: [
      { label: "events/s", data: history.map((p) => p.events_per_s), borderColor: COLOURS[0], yAxisID: "y" },
      { label: "lag", data: history.map((p) => p.lag), borderColor: COLOURS[1], yAxisID: "lag" },
    ] }, { scales: { y: { beginAtZero: true }, lag: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } });
    const policies = [...new Set(history.flatMap((p) => Object.keys(p.offers_by_policy || {})))];
    chart("c-offers", "line", { labels: labels.slice(1), datasets: policies.map((policy, i) => ({
      label: policy, borderColor: COLOURS[i % COLOURS.length],
      data: rates(history, (p) => (p.offers_by_policy || {})[policy]),
    })) }, { scales: { y: { beginAtZero: true } } });
    const reasons = Object.entries(now.dead_letter_reasons).sort((a, b) => b[1] - a[1]);
    chart("c-dead", "bar", { labels: reasons.map((r) => r[0]), datasets: [
      { label: "dead letters", data: reasons.map((r) => r[1]), backgroundColor: COLOURS[3] }] },
      { indexAxis: "y", plugins: { legend: { display: false } } });
    el("workers").innerHTML = table(["worker", "state", "health", "events/s", "partitions", "waiting", "stats age"],
      d.workers.map((w) => [escape(w.name), w.alive ? "alive" : "<span class=bad>silent</span>", escape(w.health),
        num(w.events_per_s, 1), num(w.partitions), num(w.waiting), `${w.age_s}s`]));
  },
};

pages.segments = {
  layout: () => `<p class="note" id="seg-note"></p><div class="grid">
    ${card("c-seg-size", "Segment sizes", "customers per segment in the profiles read")}
    ${card("c-rfm", "RFM groups", "customers per group, as of their last visit (all workers)")}</div>
    <section class="card wide"><h2>How the segments differ: their centres in real values</h2><div id="seg-table"></div></section>`,
  async refresh() {
    const d = await api("/dashboard/api/segments");
    el("seg-note").textContent = `${num(d.profiles_sampled)} profiles read` + (d.sample_complete ? " (all of them)" : " (a sample)") +
      "; centres and labels from this worker's segment model";
    chart("c-seg-size", "bar", { labels: d.segments.map((s) => `segment ${s.segment}`), datasets: [
      { label: "customers", data: d.segments.map((s) => s.size), backgroundColor: d.segments.map((_, i) => COLOURS[i % COLOURS.length]) }] },
      { plugins: { legend: { display: false } } });
    const groups = Object.entries(d.rfm_groups);
    chart("c-rfm", "bar", { labels: groups.map((g) => g[0].replaceAll("_", " ")), datasets: [
      { label: "customers", data: groups.map((g) => g[1]), backgroundColor: COLOURS[2] }] },
      { indexAxis: "y", plugins: { legend: { display: false } } });
    const features = [...new Set(d.segments.flatMap((s) => Object.keys(s.centre)))];
    el("seg-table").innerHTML = table(["segment", "size", "label", ...features], d.segments.map((s) =>
      [s.segment, num(s.size), escape(s.label ?? "–"), ...features.map((f) => num(s.centre[f], f.startsWith("share") ? 2 : 1))]));
  },
};

pages.experiments = {
  layout: () => `<div class="bar"><label>experiment <select id="exp-pick"></select></label><span id="exp-status"></span></div>
    <div id="srm"></div><section class="card wide"><h2>Arms</h2><div id="arms"></div></section>
    <section class="card wide"><h2>Arm against arm: the difference of their lifts</h2><div id="comparisons"></div></section><div class="grid">
    ${card("c-conv", "Conversion per arm, 95% interval", "customers who converted an offer (holdout: bought the item they would have been offered)")}
    ${card("c-rev", "Revenue per customer, 95% interval")}
    ${card("c-lift", "Lift over the holdout over time (conversion, percentage points)", "estimate and 95% interval at each point of the series")}</div>`,
  selected: null,
  async refresh() {
    const d = await api("/dashboard/api/experiments");
    const pick = el("exp-pick");
    if (!d.experiments.length) { el("arms").innerHTML = "<p>No experiments yet: <code>perso experiment start</code>.</p>"; return; }
    const names = d.experiments.map((e) => e.name);
    if (pick.options.length !== names.length) {
      pick.innerHTML = names.map((n) => `<option>${escape(n)}</option>`).join("");
      pick.onchange = () => { this.selected = pick.value; this.refresh(); };
    }
    const exp = d.experiments.find((e) => e.name === this.selected) || d.experiments[0];
    pick.value = exp.name;
    const report = exp.report;
    el("exp-status").textContent = ` ${exp.status}, started ${new Date(exp.started_at).toLocaleString()}, ${num(report.total_customers)} customers`;
    el("srm").innerHTML = report.srm_warning
      ? `<p class="warning">Sample-ratio mismatch: the arms' sizes differ from their shares (p = ${report.srm_p_value.toExponential(2)}). Trust no lift until the cause is found.</p>`
      : `<p class="note">Sample ratio: consistent with the configured shares${report.srm_p_value == null ? " (not checkable yet)" : ` (p = ${report.srm_p_value.toFixed(3)})`}.</p>`;
    el("arms").innerHTML = table(["arm", "policy", "share", "customers", "offers", "sent", "converted", "conversion [95%]", "revenue/customer [95%]", "lift over holdout [95%]", "p"],
      report.arms.map((a) => {
        const lift = a.offers_comparable ? a.conversion_lift : a.buyer_lift;
        return [escape(a.arm), escape(a.policy), pct(a.share, 0), num(a.customers), num(a.offers), num(a.published), num(a.converted_customers),
          `${pct(a.conversion_rate)} ${interval(a.conversion_interval, pct)}`, `${num(a.revenue_per_customer, 2)} ${interval(a.revenue_interval, (x) => num(x, 2))}`,
          lift ? `${pp(lift.estimate)} ${interval(lift.interval, pp)}${a.offers_comparable ? "" : " (buyers)"}` : "–",
          lift && lift.p_value != null ? lift.p_value.toFixed(4) : "–"];
      }));
    const comparisons = report.comparisons || [];
    el("comparisons").innerHTML = comparisons.length ? table(["arm vs arm", "conversion lift difference [95%]", "p", "buyers difference [95%]", "revenue/customer difference [95%]"],
      comparisons.map((c) => {
        const d = c.conversion_lift_difference;
        const how = c.paired ? "" : " (unpaired: conservative)";
        return [`${escape(c.arm)} vs ${escape(c.other)}`, d ? `${pp(d.estimate)} ${interval(d.interval, pp)}${how}` : "– (offers not comparable)",
          d && d.p_value != null ? d.p_value.toFixed(4) : "–", `${pp(c.buyer_difference.estimate)} ${interval(c.buyer_difference.interval, pp)}`,
          `${num(c.revenue_difference.estimate, 2)} ${interval(c.revenue_difference.interval, (x) => num(x, 2))}`];
      })) : "<p>One arm besides the reference: nothing to compare.</p>";
    const labels = report.arms.map((a) => a.arm);
    const band = (key) => report.arms.map((a) => a[key] || null);
    chart("c-conv", "bar", { labels, datasets: [
      { label: "95% interval", data: band("conversion_interval"), backgroundColor: "rgba(47,109,181,0.35)" },
      { label: "conversion", type: "line", showLine: false, pointRadius: 6, data: report.arms.map((a) => a.conversion_rate), borderColor: COLOURS[1], backgroundColor: COLOURS[1] },
    ] }, { scales: { y: { beginAtZero: true, ticks: { callback: (v) => pct(v, 0) } } } });
    chart("c-rev", "bar", { labels, datasets: [
      { label: "95% interval", data: band("revenue_interval"), backgroundColor: "rgba(58,157,93,0.35)" },
      { label: "revenue per customer", type: "line", showLine: false, pointRadius: 6, data: report.arms.map((a) => a.revenue_per_customer), borderColor: COLOURS[3], backgroundColor: COLOURS[3] },
    ] }, { scales: { y: { beginAtZero: true } } });
    const points = d.history.filter((p) => p.experiment === exp.name);
    const others = report.arms.filter((a) => a.arm !== report.reference).map((a) => a.arm);
    const series = [];
    others.forEach((arm, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const at = (p) => p.arms.find((a) => a.arm === arm) || {};
      series.push({ label: `${arm} lift`, data: points.map((p) => at(p).lift ?? null), borderColor: colour, backgroundColor: colour });
      series.push({ label: `${arm} 95% low`, data: points.map((p) => (at(p).lift_interval || [null])[0]), borderColor: colour, borderDash: [4, 4], pointRadius: 0 });
      series.push({ label: `${arm} 95% high`, data: points.map((p) => (at(p).lift_interval || [null, null])[1]), borderColor: colour, borderDash: [4, 4], pointRadius: 0 });
    });
    chart("c-lift", "line", { labels: points.map((p) => clock(p.t)), datasets: series },
      { scales: { y: { ticks: { callback: (v) => pp(v) } } }, plugins: { legend: { labels: { filter: (item) => !item.text.includes("95%") } } } });
  },
};

pages.models = {
  layout: () => `<p class="note" id="model-note"></p><div class="grid">
    ${card("c-rel-propensity", "Propensity: reliability", "per bin of the classifier's ranking score (before calibration): observed rate of its settled labels; the line is the calibrated score the bin maps to")}
    ${card("c-rel-churn", "Churn risk: reliability", "the same for the churn learner")}
    ${card("c-hist-propensity", "Propensity in the profiles", "what readers of the profiles see")}
    ${card("c-hist-churn_risk", "Churn risk in the profiles")}
    ${card("c-quality", "Quality over time (self-measured)", "progressive ROC AUC on each label as it settles, before it is learned: the learners' own figure; docs/model-quality.md measures against baselines")}
    <section class="card"><h2>Items most often bought or viewed together</h2><div id="pairs"></div></section></div>`,
  async refresh() {
    const d = await api("/dashboard/api/models");
    const q = d.quality;
    el("model-note").textContent = Object.entries(q).map(([name, v]) =>
      `${name}: ${num(v.labelled)} labels settled (horizon ${num(v.horizon_days, 4)} days in stream time)`).join("; ") +
      "; from this worker's learners";
    for (const [name, v] of Object.entries(q)) {
      const rows = v.reliability;
      chart(`c-rel-${name}`, "scatter", { datasets: [
        { label: "observed rate", data: rows.map((r) => ({ x: r.raw, y: r.observed })), backgroundColor: COLOURS[0],
          pointRadius: rows.map((r) => Math.min(14, 3 + Math.sqrt(r.count))) },
        { label: "calibrated score", data: rows.map((r) => ({ x: r.raw, y: r.calibrated })), showLine: true, borderColor: COLOURS[1], pointRadius: 0 },
        { label: "perfectly calibrated", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderColor: "#bbb", borderDash: [4, 4], pointRadius: 0 },
      ] }, { scales: { x: { min: 0, max: 1, title: { display: true, text: "ranking score" } }, y: { min: 0, max: 1, title: { display: true, text: "observed rate" } } } });
    }
    for (const [name, h] of Object.entries(d.histograms)) {
      chart(`c-hist-${name}`, "bar", { labels: h.counts.map((_, i) => (i / h.counts.length).toFixed(2)), datasets: [
        { label: `${name} (${h.n} profiles)`, data: h.counts, backgroundColor: COLOURS[2] }] });
    }
    const hist = d.history;
    chart("c-quality", "line", { labels: hist.map((p) => clock(p.t)), datasets: [
      { label: "propensity AUC", data: hist.map((p) => (p.propensity_labelled > 1 ? p.propensity_self_measured_roc_auc : null)), borderColor: COLOURS[0], yAxisID: "y" },
      { label: "churn AUC", data: hist.map((p) => (p.churn_labelled > 1 ? p.churn_self_measured_roc_auc : null)), borderColor: COLOURS[3], yAxisID: "y" },
      { label: "propensity labels", data: hist.map((p) => p.propensity_labelled), borderColor: COLOURS[4], borderDash: [3, 3], yAxisID: "n" },
    ] }, { scales: { y: { min: 0, max: 1 }, n: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } } } });
    el("pairs").innerHTML = d.pairs.length ? table(["item", "item", "similarity"], d.pairs.map((p) =>
      [`${escape(p.a)} <small>${escape(p.a_category)}</small>`, `${escape(p.b)} <small>${escape(p.b_category)}</small>`, p.similarity.toFixed(3)]))
      : "<p>No items seen together yet.</p>";
  },
};

pages.customer = {
  layout: () => `<div id="customer"><p>Find a customer with the search box above.</p></div>`,
  async refresh() {
    const id = new URLSearchParams(location.search).get("id");
    if (!id) return;
    const d = await api("/dashboard/api/customers/" + encodeURIComponent(id));
    if (d.error) { el("customer").innerHTML = `<p class="warning">No customer ${escape(id)}.</p>`; return; }
    if (!el("c-affinity")) {
      el("customer").innerHTML = `<h2 id="customer-title"></h2><div id="customer-tiles" class="tiles"></div><div class="grid">
        <section class="card"><h2>Scores and why</h2><div id="scores"></div></section>
        ${card("c-affinity", "Category affinity")}
        <section class="card"><h2>Recently</h2><div id="recent"></div></section>
        <section class="card"><h2>Offers</h2><div id="offers"></div></section></div>`;
    }
    const p = d.profile;
    el("customer-title").textContent = `Customer ${d.customer_id}`;
    el("customer-tiles").innerHTML = tiles([["events", num(p.events)], ["orders", num(p.frequency)], ["spent", num(p.monetary, 2)],
      ["sessions", num(p.sessions)], ["RFM", `${escape(p.rfm_code || "–")} ${escape(p.rfm_group || "")}`], ["segment", escape(p.segment ?? "–")]]);
    el("scores").innerHTML = table(["", "value", "leans on"], [
      ["propensity", pct(Number(p.propensity)), escape(p.propensity_reason)], ["churn risk", pct(Number(p.churn_risk)), escape(p.churn_risk_reason)],
      ["segment", escape(p.segment), escape(p.segment_label)], ["scored at", when(p.scored_at), ""],
      ["experiment", d.experiment ? `${escape(d.experiment.name)}` : "–", d.experiment ? `arm ${escape(d.experiment.arm)}${d.experiment.converted ? ", converted" : ""}` : ""]]);
    const affinity = Object.entries(JSON.parse(p.category_affinity || "{}")).sort((a, b) => b[1] - a[1]);
    chart("c-affinity", "bar", { labels: affinity.map((a) => a[0]), datasets: [
      { label: "share of interest", data: affinity.map((a) => a[1]), backgroundColor: COLOURS[4] }] },
      { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { min: 0, max: 1 } } });
    const r = d.recent;
    el("recent").innerHTML = `<p>last event: ${escape(r.last_event_type)} at ${when(r.last_event_at)}</p>` +
      `<p>viewed lately: ${r.viewed_items.map(escape).join(", ") || "–"}</p>` +
      table(["bought", "at"], r.purchased.map((x) => [escape(x.item_id), when(x.at)]));
    const last = d.last_offer;
    el("offers").innerHTML = (last ? `<p>last offer: <b>${escape(last.item)}</b> (score ${num(last.score, 3)}) — ${escape(last.reason)}</p>` : "<p>no offer yet</p>") +
      table(["item", "decided", "open until", "arm", "sent", "feedback", "outcome so far"], d.open_offers.filter((o) => !o.ghost).map((o) =>
        [escape(o.item_id), when(o.decided_at), when(o.open_until), escape(o.arm || "–"), o.sent ? "yes" : "held out",
          escape(o.feedback.join(", ") || "–"), escape(o.converted ? `converted (${num(o.revenue, 2)})` : o.outcome_so_far)]));
  },
};

// --- search box and start-up -------------------------------------------------------------------------------
function setUpSearch() {
  const input = el("search-input");
  let timer = null;
  input.value = new URLSearchParams(location.search).get("id") || "";
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (input.value.length < 2) return;
      const d = await api("/dashboard/api/customers?q=" + encodeURIComponent(input.value));
      el("search-hits").innerHTML = d.customers.map((c) => `<option value="${escape(c)}">`).join("");
      el("search").dataset.hits = String(d.customers.length);
    }, 250);
  });
}

async function start() {
  const page = pages[document.body.dataset.page];
  el("content").innerHTML = page.layout();
  setUpSearch();
  api("/dashboard/api/whoami").then((w) => { el("whoami").textContent = `${w.name} (${w.role})`; });
  const tick = async () => {
    try {
      await page.refresh();
      document.body.dataset.updated = String(Date.now());
      document.body.classList.remove("stale");
    } catch (error) {
      document.body.classList.add("stale");
      console.warn("refresh failed:", error.message);  // a warning, not an error: the next poll tries again
    }
  };
  await tick();
  setInterval(tick, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
