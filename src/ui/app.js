/*
 * Muninn built-in web UI (plain ES2017, no build step).
 *
 * - Header: version and role of this process, from GET /ui/status.
 * - Tenant field (#tenant), remembered in localStorage; every API call sends
 *   it as the X-Scope-OrgID header.
 * - Cluster section (#cluster): members, ring and per-tenant usage tables (usage over all
 *   ingesters where this process queries them, else this process's own ingester)
 *   rendered from GET /ui/status, refreshed every 10 s; errors shown inline.
 * - PromQL box (#expr, #range, #run): GET /prometheus/api/v1/query_range,
 *   drawn with uPlot into #graph. Errors go to #error.
 * - URL parameters ?expr=&tenant=&range= fill the fields and run on load.
 * - For tests: document.body.dataset.graph is "loading", "drawn" or "error";
 *   document.body.dataset.series is the number of series drawn.
 *
 * All data is put into the DOM with textContent, never innerHTML.
 */
'use strict';

const RANGES = { '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400 };
const $ = (id) => document.getElementById(id);
let plot = null;
let querySeq = 0;

function tenant() {
  return $('tenant').value.trim() || 'anonymous';
}

async function api(url) {
  const resp = await fetch(url, { headers: { 'X-Scope-OrgID': tenant() } });
  const text = await resp.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
  if (!resp.ok || (body && body.status && body.status !== 'success')) {
    const msg = (body && body.error) || text.trim() || resp.statusText;
    throw new Error('HTTP ' + resp.status + ': ' + msg);
  }
  if (body === null) throw new Error('invalid JSON response from ' + url);
  return body;
}

function showError(el, msg) {
  el.textContent = msg || '';
  el.hidden = !msg;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// Fills a <table> with a header row and one row per item. Each column is
// [title, fn(item) -> value, optional class or fn(item) -> class].
function fillTable(table, columns, items, emptyText) {
  table.textContent = '';
  const head = el('tr');
  columns.forEach((c) => head.appendChild(el('th', c[0])));
  table.appendChild(head);
  if (!items || items.length === 0) {
    const td = el('td', emptyText, 'empty');
    td.colSpan = columns.length;
    table.appendChild(el('tr')).appendChild(td);
    return;
  }
  items.forEach((item) => {
    const tr = el('tr');
    columns.forEach((c) => {
      const cls = typeof c[2] === 'function' ? c[2](item) : c[2];
      tr.appendChild(el('td', c[1](item), cls));
    });
    table.appendChild(tr);
  });
}

async function refreshStatus() {
  try {
    const s = await api('/ui/status');
    $('version').textContent = 'v' + (s.version || '?');
    $('role').textContent = 'role: ' + (s.role || '?') + (s.instance ? ' · ' + s.instance : '');
    fillTable($('members'), [
      ['ID', (m) => m.id],
      ['Role', (m) => m.role],
      ['Version', (m) => m.version],
    ], s.members, 'no members (gossip disabled?)');
    fillTable($('ring'), [
      ['ID', (i) => i.id],
      ['Address', (i) => i.addr],
      ['Zone', (i) => i.zone || '-'],
      ['State', (i) => i.state],
      ['Healthy', (i) => (i.healthy ? 'yes' : 'no'), (i) => (i.healthy ? 'good' : 'bad')],
      ['Tokens', (i) => i.tokens, 'num'],
    ], s.ring && s.ring.instances, 'no ring instances');
    fillTable($('tenants'), [
      ['Tenant', (t) => t.tenant],
      ['Series', (t) => t.series, 'num'],
      ['Samples/s', (t) => Number(t.samples_per_second || 0).toFixed(2), 'num'],
    ], s.tenants, 'no tenants');
    $('tenants-title').textContent = s.usage_scope === 'cluster'
      ? 'Tenants (all ingesters, replicas counted once)'
      : 'Tenants on this ingester';
    showError($('tenants-error'), (s.usage_errors || []).length
      ? 'Ingesters that did not answer (their share is missing): ' + s.usage_errors.join('; ')
      : '');
    $('cluster-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    showError($('cluster-error'), '');
  } catch (e) {
    showError($('cluster-error'), 'Cluster status failed: ' + e.message);
  }
}

// Formats a Prometheus label set as name{a="b", c="d"}.
function seriesName(metric) {
  const name = metric.__name__ || '';
  const labels = Object.keys(metric).filter((k) => k !== '__name__').sort()
    .map((k) => k + '=' + JSON.stringify(String(metric[k])));
  return labels.length ? name + '{' + labels.join(', ') + '}' : (name || '{}');
}

// Converts a matrix result into uPlot's columnar data over the union of all
// timestamps. Where a series has no sample at a timestamp the cell is left
// undefined (uPlot draws the line across it, so series with misaligned
// timestamps still render as lines); a real gap (no sample for more than
// 1.5 steps) and NaN/Inf values become null, which uPlot draws as a break.
function toColumns(result, step) {
  const tsSet = new Set();
  result.forEach((r) => (r.values || []).forEach((v) => tsSet.add(Number(v[0]))));
  const xs = Array.from(tsSet).sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const cols = result.map((r) => {
    const ys = new Array(xs.length).fill(undefined);
    let prevT = null;
    let prevI = -1;
    (r.values || []).forEach((v) => {
      const t = Number(v[0]);
      const i = index.get(t);
      const y = parseFloat(v[1]);
      if (prevT !== null && t - prevT > 1.5 * step) ys.fill(null, prevI + 1, i);
      ys[i] = Number.isFinite(y) ? y : null;
      prevT = t;
      prevI = i;
    });
    return ys;
  });
  return [xs].concat(cols);
}

function color(i) {
  return 'hsl(' + ((i * 137.508) % 360).toFixed(0) + ', 65%, 45%)';
}

function graphWidth() {
  return Math.max(300, $('graph').clientWidth || (window.innerWidth - 80));
}

function draw(result, step) {
  if (plot) { plot.destroy(); plot = null; }
  $('graph').textContent = '';
  if (result.length === 0) {
    $('info').textContent = 'No data.';
    return;
  }
  const series = [{}].concat(result.map((r, i) => ({
    label: seriesName(r.metric || {}),
    stroke: color(i),
    width: 1.5,
    points: { show: false },
  })));
  const opts = {
    width: graphWidth(),
    height: 360,
    scales: { x: { time: true } },
    series: series,
    legend: { live: true },
  };
  plot = new uPlot(opts, toColumns(result, step), $('graph'));
}

async function runQuery() {
  const expr = $('expr').value.trim();
  const rangeKey = $('range').value;
  const body = document.body;
  showError($('error'), '');
  $('info').textContent = '';
  if (!expr) {
    showError($('error'), 'Enter a PromQL expression.');
    body.dataset.graph = 'error';
    return;
  }
  const seq = ++querySeq;
  const range = RANGES[rangeKey] || 3600;
  const end = Math.floor(Date.now() / 1000);
  const start = end - range;
  const step = Math.max(1, Math.floor(range / 250));
  const params = new URLSearchParams({ query: expr, start: start, end: end, step: step });
  history.replaceState(null, '', '?' + new URLSearchParams({ expr: expr, tenant: tenant(), range: rangeKey }));
  body.dataset.graph = 'loading';
  $('run').disabled = true;
  try {
    const resp = await api('/prometheus/api/v1/query_range?' + params);
    if (seq !== querySeq) return; // a newer query was started
    const data = resp.data || {};
    if (data.resultType !== 'matrix') throw new Error('unexpected result type: ' + data.resultType);
    const result = data.result || [];
    draw(result, step);
    if (result.length) {
      $('info').textContent = result.length + ' series, step ' + step + 's';
    }
    body.dataset.series = String(result.length);
    body.dataset.graph = 'drawn';
  } catch (e) {
    if (seq !== querySeq) return;
    if (plot) { plot.destroy(); plot = null; }
    $('graph').textContent = '';
    showError($('error'), e.message);
    body.dataset.series = '0';
    body.dataset.graph = 'error';
  } finally {
    if (seq === querySeq) $('run').disabled = false;
  }
}

function init() {
  const params = new URLSearchParams(location.search);
  const saved = localStorage.getItem('muninn.tenant');
  $('tenant').value = params.get('tenant') || saved || 'anonymous';
  localStorage.setItem('muninn.tenant', tenant());
  if (params.get('expr')) $('expr').value = params.get('expr');
  if (RANGES[params.get('range')]) $('range').value = params.get('range');

  $('tenant').addEventListener('change', () => {
    localStorage.setItem('muninn.tenant', tenant());
  });
  $('run').addEventListener('click', runQuery);
  $('expr').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      runQuery();
    }
  });
  window.addEventListener('resize', () => {
    if (plot) plot.setSize({ width: graphWidth(), height: 360 });
  });

  refreshStatus();
  setInterval(refreshStatus, 10000);
  if ($('expr').value.trim()) runQuery();
}

init();
