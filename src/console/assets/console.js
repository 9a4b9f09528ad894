// The xfed console's only script. It polls the console's JSON every two seconds and builds
// the live tables with textContent: no string from the network is ever parsed as HTML.
'use strict';

const POLL_MS = 2000;
// Samples kept for the charts: ten minutes at one every two seconds.
const SAMPLES = 300;
const csrf = document.querySelector('meta[name="csrf"]')?.content || '';

// An element: `attrs` as attributes (`text` sets textContent), `kids` appended.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

// A table of rows of cells (strings or elements); `empty` when there are none.
function table(id, head, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'empty', id, text: empty });
  const body = el('tbody');
  for (const r of rows) {
    const tr = el('tr', r.attrs || {});
    for (const c of r.cells || r) tr.append(c instanceof Node ? el('td', {}, c) : el('td', { text: String(c) }));
    body.append(tr);
  }
  return el('table', { id }, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))), body);
}

function replace(id, node) {
  const old = document.getElementById(id);
  if (old) old.replaceChildren(node);
}

async function get(url) {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) { location.assign('/console/login'); throw new Error('signed out'); }
  return r.json();
}

async function post(url) {
  const r = await fetch(url, { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } });
  let body = null;
  try { body = await r.json(); } catch (_) { body = { error: `HTTP ${r.status}` }; }
  return { ok: r.ok, status: r.status, body };
}

// Runs `f` now and every POLL_MS, never two at once.
function poll(f) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await f(); } catch (e) { console.warn(e); } finally { busy = false; }
  };
  tick();
  setInterval(tick, POLL_MS);
}

function duration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60;
  return (d ? `${d}d ` : '') + `${h}h ${m}m ${secs % 60}s`;
}

function dl(id, pairs) {
  const d = el('dl', { id });
  for (const [k, v] of pairs) d.append(el('dt', { text: k }), el('dd', { text: v }));
  document.getElementById(id).replaceWith(d);
}

// A line chart of `values` in the SVG `id`, its maximum written in the corner.
function chart(id, values) {
  const svg = document.getElementById(id);
  const ns = 'http://www.w3.org/2000/svg';
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, 'polyline');
  // The samples so far span the width; with one, a flat line.
  const step = 300 / Math.max(1, values.length - 1);
  const points = values.length === 1 ? [values[0], values[0]] : values;
  line.setAttribute('points', points.map((v, i) => `${(i * step).toFixed(1)},${(58 - (v / max) * 44).toFixed(1)}`).join(' '));
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '2');
  label.setAttribute('y', '9');
  label.textContent = `max ${Math.round(max * 10) / 10}, now ${values.length ? Math.round(values[values.length - 1] * 10) / 10 : 0}`;
  svg.replaceChildren(line, label);
}

function schedule(r) {
  if (!r) { dl('schedule', [['Restarts', 'no restart scheduler on this node']]); return; }
  dl('schedule', [
    ['Changes apply', r.delayed ? 'delayed, on the schedule or by a restart' : 'at once'],
    ['Schedule (UTC)', r.schedule],
    ['Next run', r.next_run || 'none'],
    ['Last run', r.last_run ? `${r.last_run.at}: ${r.last_run.outcome}` : 'never'],
  ]);
  replace('stale', table('stale-table', ['INSTANCE', 'RUNS', 'LATEST', 'WHAT CHANGED'],
    r.stale.map((s) => [s.instance, s.applied, s.latest, s.pending.join('; ')]), 'nothing staged: every instance runs the latest version'));
}

const pages = {
  status() {
    const stanzas = [], streams = [];
    let last = null;
    poll(async () => {
      const o = await get('/console/data/status');
      const s = o.status;
      const fed = document.getElementById('federation');
      fed.className = `reach ${s.federation.state === 'active' ? 'on' : 'off'}`;
      fed.replaceChildren(el('p', {},
        el('strong', { class: s.federation.state, id: 'federation-state', text: `Federation ${s.federation.state}` }),
        ` (${s.federation.security_mode}): `, el('span', { id: 'federation-why', text: s.federation.why })));
      dl('node', [['Node', s.node], ['Uptime', duration(o.uptime_secs)], ['Configuration version', String(s.config_version)],
        ['s2s streams', String(o.streams)]]);
      const now = { t: Date.now(), n: o.stanzas };
      if (last) stanzas.push(Math.max(0, (now.n - last.n) / ((now.t - last.t) / 1000)));
      last = now;
      streams.push(o.streams);
      for (const a of [stanzas, streams]) while (a.length > SAMPLES) a.shift();
      chart('chart-stanzas', stanzas);
      chart('chart-streams', streams);
      replace('reach', table('reach-table', ['TENANT', 'FEDERATION', 'WHY', 'VERSION', 'LINKS', 'S2S IN', 'S2S OUT'],
        s.tenants.map((t) => [t.name, t.federation.state, t.federation.why, `${t.version} ${t.state}`, t.links.length, t.streams_in, t.streams_out]),
        'no tenants'));
      schedule(s.restart);
      if (s.cluster) {
        replace('cluster', el('div', {}, el('h2', { text: 'Cluster' }), el('pre', { class: 'details', text: JSON.stringify(s.cluster, null, 2) })));
      }
    });
  },

  connections() {
    const f = (id) => document.getElementById(id);
    const refresh = async () => {
      const q = new URLSearchParams();
      if (f('f-tenant').value) q.set('tenant', f('f-tenant').value);
      if (f('f-domain').value.trim()) q.set('domain', f('f-domain').value.trim());
      const c = await get(`/console/data/connections?${q}`);
      if (!c.connections) { replace('connections', el('p', { class: 'problem', text: c.error || 'refused' })); return; }
      const dir = f('f-direction').value;
      const rows = c.connections.filter((r) => !dir || r.direction === dir).map((r) => {
        const close = el('button', { type: 'button', class: 'danger', 'data-close': String(r.id), text: 'close' });
        close.addEventListener('click', () => closeStream(r, refresh));
        return {
          attrs: { id: `conn-${r.id}`, 'data-id': String(r.id) },
          cells: [String(r.id), `${r.peer_ip.includes(':') ? `[${r.peer_ip}]` : r.peer_ip}:${r.peer_port}`, r.direction,
            r.pairs.map((p) => `${p.local} ↔ ${p.remote} (${p.auth})`).join('\n') || '(not yet authenticated)',
            r.tls_version ? `${r.tls_version} ${r.tls_cipher || ''}` : 'none',
            `${r.idle_secs} s`, `${r.stanzas_in} / ${r.stanzas_out}`, `${r.bytes_in} / ${r.bytes_out}`,
            document.querySelector('header span').textContent, close],
        };
      });
      replace('connections', table('connections-table',
        ['ID', 'PEER', 'DIRECTION', 'DOMAIN PAIRS (AUTH)', 'TLS', 'IDLE', 'STANZAS IN/OUT', 'BYTES IN/OUT', 'NODE', ''], rows,
        'no federated connections'));
      replace('failures', table('failures-table', ['AT', 'LOCAL', 'REMOTE', 'CONDITION', 'REASON'],
        c.failures.map((x) => [x.at, x.local, x.remote, x.condition, x.reason]), 'none'));
    };
    for (const id of ['f-tenant', 'f-domain', 'f-direction']) f(id).addEventListener('input', refresh);
    f('filters').addEventListener('submit', (e) => e.preventDefault());
    poll(refresh);
  },

  events() {
    const f = (id) => document.getElementById(id);
    const refresh = async () => {
      const q = new URLSearchParams({ limit: '500' });
      if (f('f-tenant').value) q.set('tenant', f('f-tenant').value);
      if (f('f-since').value) q.set('since', new Date(Date.now() - Number(f('f-since').value) * 60000).toISOString());
      const e = await get(`/console/data/events?${q}`);
      if (!e.events) { replace('events', el('p', { class: 'problem', text: e.error || 'refused' })); return; }
      const kind = f('f-kind').value.trim();
      const fixed = new Set(['seq', 'time', 'module', 'event', 'tenant', 'domains']);
      const rows = e.events.filter((x) => !kind || x.event.includes(kind)).reverse().map((x) => ({
        attrs: { 'data-event': x.event },
        cells: [x.time, x.event, x.tenant || '', x.domains.join(', '),
          el('pre', { class: 'details', text: Object.entries(x).filter(([k]) => !fixed.has(k)).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n') })],
      }));
      replace('events', table('events-table', ['TIME (UTC)', 'EVENT', 'TENANT', 'DOMAINS', 'DETAILS'], rows, 'no events'));
    };
    for (const id of ['f-tenant', 'f-kind', 'f-since']) f(id).addEventListener('input', refresh);
    f('filters').addEventListener('submit', (e) => e.preventDefault());
    poll(refresh);
  },

  changes() {
    const f = (id) => document.getElementById(id);
    poll(async () => schedule((await get('/console/data/status')).status.restart));
    const act = async (what, dry) => {
      const tenant = f('a-tenant').value;
      const whom = tenant ? `tenant ${tenant}` : 'every stale instance';
      let url;
      if (what === 'reload') {
        if (!confirm('Read the configuration again? Changes apply or are staged as [restart] says.')) return;
        url = '/console/action/reload';
      } else {
        if (!dry && !confirm(`Restart ${whom} now? Its component links and s2s streams reconnect.`)) return;
        const q = new URLSearchParams();
        if (tenant) q.set('tenant', tenant);
        if (dry) q.set('dry_run', 'true');
        url = `/console/action/restart?${q}`;
      }
      const r = await post(url);
      showOutcome(what, dry, r);
    };
    f('dry-run').addEventListener('click', () => act('restart', true));
    f('restart').addEventListener('click', () => act('restart', false));
    f('reload').addEventListener('click', () => act('reload', false));
  },

  'log-level'() {
    document.getElementById('set-level').addEventListener('click', async () => {
      const level = document.getElementById('l-level').value;
      const r = await post(`/console/action/log-level/${encodeURIComponent(level)}`);
      const out = document.getElementById('outcome');
      if (r.ok) {
        out.textContent = `Federation log level is now ${r.body.federation} (filter ${r.body.filter}).`;
        document.getElementById('level').textContent = r.body.federation;
      } else {
        out.textContent = `Refused: ${r.body.error}`;
      }
    });
  },
};

async function closeStream(r, refresh) {
  const pairs = r.pairs.map((p) => `${p.local} ↔ ${p.remote}`).join(', ') || 'no pairs';
  if (!confirm(`Close stream ${r.id} (${r.direction}, ${pairs})? It closes gracefully; the next stanza opens another.`)) return;
  const res = await post(`/console/action/close/${r.id}`);
  document.getElementById('outcome').textContent = res.ok ? `Stream ${r.id} is closing.` : `Refused: ${res.body.error}`;
  refresh();
}

function showOutcome(what, dry, r) {
  const out = el('div', { id: 'outcome-body' });
  if (!r.ok) {
    out.append(el('p', { class: 'problem', id: 'outcome-refused', text: `Refused (HTTP ${r.status}): ${r.body.error}` }));
    if (r.body.problems) out.append(el('pre', { class: 'details', text: r.body.problems.join('\n') }));
  } else if (what === 'reload') {
    const b = r.body;
    out.append(el('p', { id: 'outcome-summary', text: `Configuration version ${b.version}: ${b.changes.length ? (b.applied ? 'applied' : 'staged') : 'nothing changed'}.` }));
    out.append(table('outcome-table', ['INSTANCE', 'ACTION', 'WHAT'], b.changes.map((c) => [c.instance, c.action, c.what.join('; ')]), 'no changes'));
  } else {
    const b = r.body;
    const verb = dry ? 'would restart' : 'restarted';
    out.append(el('p', { id: 'outcome-summary', text: b.restarted.length ? `${dry ? 'Dry run: ' : ''}${b.restarted.length} instance(s) ${verb}${b.node_restarting ? '; the node restarts' : ''}.` : 'Nothing was stale.' }));
    out.append(table('outcome-table', ['INSTANCE', 'ACTION', 'WHAT', 'LINKS DROPPED', 'STREAMS DROPPED'],
      b.restarted.map((c) => [c.instance, c.action, c.what.join('; '), c.links, c.streams]), 'nothing'));
  }
  document.getElementById('outcome').replaceChildren(out);
}

const page = pages[document.body.dataset.page];
if (page) page();
