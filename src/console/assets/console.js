// The xfed console's script, part 3 of 3: each page's behaviour, by the body's data-page.
'use strict';

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
    // Points {t, v} on the page's clock: the node's history first, then the page's samples.
    const stanzas = [], streams = [];
    let last = null;
    const history = get('/console/data/history').then((h) => {
      const skew = Date.now() - h.now_ms;
      for (const x of h.samples) {
        if (x.rate !== null) stanzas.push({ t: x.at_ms + skew, v: x.rate });
        streams.push({ t: x.at_ms + skew, v: x.streams });
      }
    }).catch((e) => console.warn(e));
    poll(async () => {
      const o = await get('/console/data/status');
      await history;
      const s = o.status;
      const fed = document.getElementById('federation');
      fed.className = `reach ${s.federation.state === 'active' ? 'on' : 'off'}`;
      fed.replaceChildren(el('p', {},
        el('strong', { class: s.federation.state, id: 'federation-state', text: `Federation ${s.federation.state}` }),
        ` (${s.federation.security_mode}): `, el('span', { id: 'federation-why', text: s.federation.why })));
      dl('node', [['Node', s.node], ['Uptime', duration(o.uptime_secs)], ['Configuration version', String(s.config_version)],
        ['s2s streams', String(o.streams)]]);
      const now = { t: Date.now(), n: o.stanzas };
      // A total that fell (streams closed) is no negative rate.
      if (last) stanzas.push({ t: now.t, v: Math.max(0, (now.n - last.n) / ((now.t - last.t) / 1000)) });
      last = now;
      streams.push({ t: now.t, v: o.streams });
      for (const a of [stanzas, streams]) while (a.length && a[0].t < now.t - WINDOW_MS) a.shift();
      chart('chart-stanzas', stanzas);
      chart('chart-streams', streams);
      replace('reach', table('reach-table', ['TENANT', 'FEDERATION', 'WHY', 'VERSION', 'LINKS', 'S2S IN', 'S2S OUT'],
        s.tenants.map((t) => [t.name, t.federation.state, t.federation.why, `${t.version} ${t.state}`, t.links.length, t.streams_in, t.streams_out]),
        'no tenants'));
      schedule(s.restart);
      if (s.cluster) replace('cluster', clusterView(s.cluster));
    });
  },

  connections() {
    const f = (id) => document.getElementById(id);
    const me = thisNode();
    const refresh = async () => {
      const q = new URLSearchParams();
      if (f('f-tenant').value) q.set('tenant', f('f-tenant').value);
      if (f('f-domain').value.trim()) q.set('domain', f('f-domain').value.trim());
      const cluster = wholeCluster();
      if (cluster) q.set('cluster', 'true');
      const c = await get(`/console/data/connections?${q}`);
      // One node's answer, or every node's: [{node, connections, failures}].
      const answers = cluster && c.nodes
        ? c.nodes.filter((n) => n.answer).map((n) => ({ node: n.node, ...n.answer }))
        : c.connections ? [{ node: me, ...c }] : null;
      if (!answers) { replace('connections', el('p', { class: 'problem', text: c.error || 'refused' })); return; }
      unanswered(cluster ? c.nodes : []);
      const dir = f('f-direction').value;
      const rows = answers.flatMap((a) => a.connections.filter((r) => !dir || r.direction === dir).map((r) => {
        let close;
        if (a.node === me) {
          close = el('button', { type: 'button', class: 'danger', 'data-close': String(r.id), text: 'close' });
          close.addEventListener('click', () => closeStream(r, refresh));
        } else {
          close = el('span', { class: 'remote', 'data-remote': a.node, text: 'on ' + a.node,
            title: `This stream is on ${a.node}: a node closes only its own streams. Close it from ${a.node}'s console, or with xfed close-connection ${r.id} there.` });
        }
        return {
          attrs: { id: a.node === me ? `conn-${r.id}` : `conn-${a.node}-${r.id}`, 'data-id': String(r.id), 'data-node': a.node },
          cells: [String(r.id), `${r.peer_ip.includes(':') ? `[${r.peer_ip}]` : r.peer_ip}:${r.peer_port}`, r.direction,
            r.pairs.map((p) => `${p.local} ↔ ${p.remote} (${p.auth})`).join('\n') || '(not yet authenticated)',
            r.tls_version ? `${r.tls_version} ${r.tls_cipher || ''}` : 'none',
            `${r.idle_secs} s`, `${r.stanzas_in} / ${r.stanzas_out}`, `${r.bytes_in} / ${r.bytes_out}`, a.node, close],
        };
      }));
      replace('connections', table('connections-table',
        ['ID', 'PEER', 'DIRECTION', 'DOMAIN PAIRS (AUTH)', 'TLS', 'IDLE', 'STANZAS IN/OUT', 'BYTES IN/OUT', 'NODE', ''], rows,
        cluster ? 'no federated connections on any node' : 'no federated connections'));
      replace('failures', table('failures-table', ['AT', 'LOCAL', 'REMOTE', 'CONDITION', 'REASON', 'NODE'],
        answers.flatMap((a) => a.failures.map((x) => [x.at, x.local, x.remote, x.condition, x.reason, a.node])), 'none'));
    };
    for (const id of ['f-scope', 'f-tenant', 'f-domain', 'f-direction']) f(id)?.addEventListener('input', refresh);
    f('filters').addEventListener('submit', (e) => e.preventDefault());
    poll(refresh);
  },

  events() {
    const f = (id) => document.getElementById(id);
    const me = thisNode();
    const refresh = async () => {
      const q = new URLSearchParams({ limit: '500' });
      if (f('f-tenant').value) q.set('tenant', f('f-tenant').value);
      if (f('f-since').value) q.set('since', new Date(Date.now() - Number(f('f-since').value) * 60000).toISOString());
      const cluster = wholeCluster();
      if (cluster) q.set('cluster', 'true');
      const e = await get(`/console/data/events?${q}`);
      // [{node, x}], oldest first: every node's log merged by time.
      let all;
      if (cluster && e.nodes) {
        all = e.nodes.filter((n) => n.answer).flatMap((n) => n.answer.map((x) => ({ node: n.node, x })));
        all.sort((a, b) => (Date.parse(a.x.time) - Date.parse(b.x.time)) || (a.x.seq - b.x.seq));
      } else if (e.events) {
        all = e.events.map((x) => ({ node: me, x }));
      } else {
        replace('events', el('p', { class: 'problem', text: e.error || 'refused' }));
        return;
      }
      unanswered(cluster ? e.nodes : []);
      const kind = f('f-kind').value.trim();
      const fixed = new Set(['seq', 'time', 'module', 'event', 'tenant', 'domains']);
      const rows = all.filter(({ x }) => !kind || x.event.includes(kind)).reverse().map(({ node, x }) => ({
        attrs: { 'data-event': x.event, 'data-node': node },
        cells: [x.time, x.event, x.tenant || '', x.domains.join(', '),
          el('pre', { class: 'details', text: Object.entries(x).filter(([k]) => !fixed.has(k)).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n') }),
          node],
      }));
      replace('events', table('events-table', ['TIME (UTC)', 'EVENT', 'TENANT', 'DOMAINS', 'DETAILS', 'NODE'], rows, 'no events'));
    };
    for (const id of ['f-scope', 'f-tenant', 'f-kind', 'f-since']) f(id)?.addEventListener('input', refresh);
    f('filters').addEventListener('submit', (e) => e.preventDefault());
    poll(refresh);
  },

  changes() {
    const f = (id) => document.getElementById(id);
    poll(async () => {
      const s = (await get('/console/data/status')).status;
      schedule(s.restart);
      // In a cluster: the rolling restart in progress (one asked here too) and the last.
      if (s.cluster && f('rollout')) replace('rollout', rolloutsView(s.cluster));
    });
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
    const nodes = b.nodes || [];
    const count = b.restarted.length + nodes.reduce((n, x) => n + x.restarted.length, 0);
    let summary;
    if (b.rollout) summary = `Rolling restart ${b.rollout.id} asked: nodes in turn ${b.rollout.order.join(' → ')}; it is followed below.`;
    else if (count) summary = `${dry ? 'Dry run: ' : ''}${count} instance(s) ${verb}${nodes.length ? ` on ${nodes.filter((n) => n.restarted.length).length} node(s)` : ''}${b.node_restarting ? '; the node restarts' : ''}.`;
    else summary = 'Nothing was stale.';
    out.append(el('p', { id: 'outcome-summary', text: summary }));
    if (nodes.length) out.append(nodesDryRun(nodes));
    else if (!b.rollout || b.restarted.length) {
      out.append(table('outcome-table', ['INSTANCE', 'ACTION', 'WHAT', 'LINKS DROPPED', 'STREAMS DROPPED'],
        b.restarted.map((c) => [c.instance, c.action, c.what.join('; '), c.links, c.streams]), 'nothing'));
    }
    if (b.rollout) out.append(rolloutView(b.rollout, 'outcome-rollout', ''));
  }
  document.getElementById('outcome').replaceChildren(out);
}

const page = pages[document.body.dataset.page];
if (page) page();
