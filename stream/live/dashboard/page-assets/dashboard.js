// driftline dashboard: polls /api/state once a second and draws it (uPlot for the charts).
"use strict";

const POLL_MS = 1000;
const RATE_WINDOW_S = 10;
const COLORS = ["#2f6fde", "#e07b1f", "#1f9d63", "#8e44ad", "#c0392b", "#16a0b5", "#7f8c8d", "#b7950b"];
const $ = (id) => document.getElementById(id);
const charts = { metric: null, rate: null, key: "" };
let incidentTimes = [];

function fmt(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const size = Math.abs(value);
  if (size >= 1e7) return value.toExponential(2);
  if (size >= 1000) return Math.round(value).toLocaleString("en-US");
  if (size >= 10) return value.toFixed(Math.min(digits, 2));
  return value.toFixed(digits);
}
const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const time = (ms) => (ms ? new Date(ms).toISOString().slice(11, 19) : "–");
function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Events per second over the last RATE_WINDOW_S seconds of a [t, value, rolling, events] series,
// from its complete buckets (the newest is still filling); 0 once nothing came for that long.
function rate(series, bucket) {
  if (!series.length) return null;
  const newest = series[series.length - 1][0];
  if (Date.now() / 1000 - (newest + bucket) > RATE_WINDOW_S) return 0;
  const complete = series.filter((p) => p[0] < newest && p[0] >= newest - RATE_WINDOW_S);
  if (!complete.length) return series[series.length - 1][3] / bucket;
  return complete.reduce((n, p) => n + p[3], 0) / (newest - complete[0][0]);
}

function setText(id, text) { const el = $(id); if (el) el.textContent = text; }

function render(s) {
  const name = s.metric_name || "metric";
  document.querySelectorAll(".metric-name").forEach((el) => (el.textContent = name));
  setText("metric-name", name);
  const o = s.overall;
  setText("metric-value", fmt(o.metric));
  setText("metric-rolling", fmt(o.rolling));
  setText("labels", int(o.labels));
  const b = s.baselines || {};
  $("baselines").textContent = (b.no_adaptation === null && b.no_change === null)
    ? "no-adaptation and no-change baselines: not computed live (driftline backtest reports them)"
    : `no adaptation ${fmt(b.no_adaptation)} · no-change ${fmt(b.no_change)}`;
  setText("events-total", int(o.events));
  setText("predictions", int(o.predictions));
  setText("events-rate", fmt(rate(o.series, s.bucket_s), 1));
  setText("rate-window", RATE_WINDOW_S);
  setText("lag", int(o.lag));
  setText("incident-count", int(s.incidents.length));
  setText("incidents-open", int(s.incidents.filter((i) => i.status === "open").length));
  setText("promotion-count", int(s.promotions.length));
  const reasons = Object.entries(s.dead_letters);
  setText("dead-total", int(reasons.reduce((n, [, c]) => n + c, 0)));
  setText("dead-top", reasons.length ? reasons.slice(0, 2).map(([r, c]) => `${r} ${int(c)}`).join(" · ") : "none");
  const a = s.about || {};
  const workers = s.workers || [];
  $("about").textContent = `group ${a.group || "?"}${s.group_state ? ` (${s.group_state.toLowerCase()})` : ""} · ` +
    `${workers.length} worker${workers.length === 1 ? "" : "s"} · ${Object.keys(s.partitions).length} partitions · broker ${a.bootstrap || "?"}`;
  const f = s.follower || {};
  $("status").textContent = `${f.status || ""} · ${int(f.records)} records · updated ${new Date().toISOString().slice(11, 19)}Z`;
  $("status").className = "status" + (String(f.status || "").startsWith("Kafka error") ? " bad" : "");
  renderPartitions(s);
  renderIncidents(s.incidents);
  renderPromotions(s.promotions);
  renderFeatures(s.features);
  renderSlices(s.slices || {}, name);
  renderDeadLetters(s);
  incidentTimes = s.incidents.map((i) => (i.opened_ts || 0) / 1000).filter((t) => t > 0);
  renderCharts(s, name);
}

function renderPartitions(s) {
  const rows = Object.entries(s.partitions).map(([p, v]) => {
    const snap = v.snapshot ? `#${v.snapshot.sequence} v${v.snapshot.model_version}` : "–";
    const share = v.fallback_share === null ? "–" : `${(100 * v.fallback_share).toFixed(1)}%`;
    return `<tr><td>${esc(p)}</td><td class="worker">${esc(v.worker ?? "–")}</td><td>${int(v.events)}</td><td>${fmt(rate(v.series, s.bucket_s), 1)}</td>
      <td>${int(v.lag)}</td><td>${int(v.labels)}</td><td>${fmt(v.metric)}</td><td>${fmt(v.rolling)}</td>
      <td>v${esc(v.model_version ?? "–")}</td><td>${share}</td><td>${int(v.incidents)}</td>
      <td>${int(v.promotions)}</td><td>${int(v.dead_letters)}</td><td>${snap}</td></tr>`;
  });
  document.querySelector("#partitions tbody").innerHTML = rows.join("");
}

function signalText(sig) {
  const d = sig.effect === null ? "" : ` d ${sig.effect > 0 ? "+" : ""}${fmt(sig.effect, 2)}`;
  const cls = sig.effect > 0 ? "up" : "down";
  return `<span class="signal"><b>${esc(sig.signal)}</b> <span class="${cls}">${d}</span>
    <span class="muted">${fmt(sig.before, 3)} → ${fmt(sig.after, 3)}</span></span>`;
}

function renderIncidents(incidents) {
  if (!incidents.length) return;
  $("incidents").innerHTML = incidents.slice(0, 12).map((i) => `<div class="incident">
    <div><span class="id">${esc(i.id)}</span><span class="badge ${esc(i.status)}">${esc(i.status)}</span><br>
      <span class="muted">partition ${esc(i.partition)} · ${time(i.opened_ts)}${i.closed_ts ? " → " + time(i.closed_ts) : ""}</span></div>
    <div>${i.signals.map(signalText).join("")}<br>
      <span class="muted">action: ${esc(i.actions.join(", ") || "none")}</span></div></div>`).join("");
}

function renderPromotions(promotions) {
  $("promotions-empty").style.display = promotions.length ? "none" : "";
  document.querySelector("#promotions tbody").innerHTML = promotions.slice(0, 6).map((p) => `<tr>
    <td>${time(p.ts)}</td><td>${esc(p.partition)}</td><td>v${esc(p.from_version)} → v${esc(p.to_version)}</td>
    <td>${fmt(p.champion.window_loss, 3)}</td><td>${fmt(p.challenger.window_loss, 3)}</td>
    <td>${p.p_value === null ? "–" : p.p_value.toExponential(1)}</td></tr>`).join("");
}

function renderFeatures(features) {
  $("features-empty").style.display = features.length ? "none" : "";
  document.querySelector("#features tbody").innerHTML = features.slice(0, 12).map((f) => `<tr>
    <td>${esc(f.feature)}</td><td class="${f.effect > 0 ? "up" : "down"}">${fmt(f.effect, 2)}</td>
    <td>${fmt(f.before, 4)} → ${fmt(f.after, 4)}</td><td title="${esc(f.incidents.join(", "))}">${f.incidents.length > 2 ? `${f.incidents.length}: … ` : ""}${esc(f.incidents.slice(-2).join(", "))}</td></tr>`).join("");
}

function renderSlices(slices, name) {
  const features = Object.entries(slices);
  if (!features.length) return;
  $("slices").innerHTML = features.map(([feature, rows]) => `<table class="slices"><thead><tr>
    <th>${esc(feature)}</th><th>events</th><th>labels</th><th>${esc(name)}</th><th>drifts</th></tr></thead><tbody>
    ${rows.map((r) => `<tr class="${r.alerts ? "drifted" : ""}"><td>${esc(r.value)}</td><td>${int(r.events)}</td>
      <td>${int(r.labelled)}</td><td>${fmt(r.metric)}</td><td>${int(r.alerts)}</td></tr>`).join("")}
    </tbody></table>`).join("");
}

function renderDeadLetters(s) {
  const reasons = Object.entries(s.dead_letters);
  if (!reasons.length) return;
  const top = Math.max(...reasons.map(([, c]) => c));
  const bars = reasons.map(([r, c]) => `<div class="bar"><span>${esc(r)}</span>
    <div class="fill" style="width:${(100 * c / top).toFixed(1)}%"></div><span>${int(c)}</span></div>`);
  const recent = s.recent_dead_letters.slice(0, 3).map((d) =>
    `<div class="muted">${time(d.ts)} partition ${esc(d.partition ?? "–")} ${esc(d.source ?? "")}@${esc(d.position ?? "–")}: <b>${esc(d.reason)}</b> ${esc(d.detail)}</div>`);
  $("dead-letters").innerHTML = bars.join("") + recent.join("");
}

// Charts: one x axis (seconds); per partition one line, plus the overall line. A partition with
// no record in a bucket gets `missing(last value)`; a stretch with no record at all (more than
// GAP_BUCKETS buckets) is a gap in every line, never a line drawn across it.
const GAP_BUCKETS = 3;
function columns(s, pick, missing) {
  const xs = [];
  const rows = [];
  for (const p of s.overall.series) {
    const last = xs.length ? xs[xs.length - 1] : null;
    if (last !== null && p[0] - last > GAP_BUCKETS * s.bucket_s) {
      xs.push(last + s.bucket_s);
      rows.push(null);
    }
    xs.push(p[0]);
    rows.push(p);
  }
  const index = new Map(xs.map((x, i) => [x, i]));
  const data = [xs, rows.map((p) => (p === null ? null : pick(p, s.bucket_s)))];
  for (const v of Object.values(s.partitions)) {
    const col = new Array(xs.length).fill(undefined);
    for (const p of v.series) if (index.has(p[0])) col[index.get(p[0])] = pick(p, s.bucket_s);
    let last = null;
    let started = false;
    for (let i = 0; i < col.length; i++) {
      if (rows[i] === null) { col[i] = null; last = null; continue; }
      if (col[i] === undefined) col[i] = started ? missing(last) : null;
      else { started = true; last = col[i]; }
    }
    data.push(col);
  }
  return data;
}

function drawIncidents(u) {
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = "rgba(214,69,69,.8)";
  ctx.setLineDash([5, 4]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  for (const t of incidentTimes) {
    const x = Math.round(u.valToPos(t, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
  }
  ctx.restore();
}

function makeChart(el, label, s, overallLabel, hooks) {
  const width = el.clientWidth || 600;
  const series = [{}, { label: overallLabel, stroke: "#18212f", width: 2.5 }];
  Object.keys(s.partitions).forEach((p, i) => series.push({
    label: `partition ${p}`, stroke: COLORS[i % COLORS.length], width: 1.3,
  }));
  return new uPlot({ width, height: 240, series, hooks, axes: [{}, { label, size: 60 }],
    legend: { live: false }, cursor: { drag: { x: false, y: false } } }, [[]], el);
}

function renderCharts(s, name) {
  const key = `${name}|${Object.keys(s.partitions).join(",")}`;
  if (charts.key !== key) {
    for (const c of [charts.metric, charts.rate]) if (c) c.destroy();
    charts.metric = makeChart($("chart-metric"), `rolling ${name}`, s, "overall", { draw: [drawIncidents] });
    charts.rate = makeChart($("chart-rate"), "events/s", s, "all partitions", {});
    charts.key = key;
  }
  if (!s.overall.series.length) return;
  charts.metric.setData(columns(s, (p) => p[2], (last) => last));
  charts.rate.setData(columns(s, (p, bucket) => p[3] / bucket, () => 0));
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (err) {
    $("status").textContent = `dashboard unreachable: ${err.message}`;
    $("status").className = "status bad";
  }
  setTimeout(poll, POLL_MS);
}
poll();
