// The xfed console's script, part 2 of 3: a cluster's view (status.cluster, docs/CLUSTER.md)
// as tables, its rolling restarts, and the answers of several nodes to one question
// (?cluster=true). Every name and text in them comes from other nodes: set as text only.
'use strict';

// A rolling restart: what it is, and each node in its order with its outcome or turn.
function rolloutView(r, id, none) {
  if (!r) return el('p', { class: 'empty', id, text: none });
  const limits = [r.tenant && `tenant ${r.tenant}`, r.node && `node ${r.node}`].filter(Boolean).join(', ');
  let state;
  if (r.finished) state = `finished ${r.finished}`;
  else if (r.current) {
    state = `${r.current.node}'s turn since ${r.current.since}` +
      (r.current.links_back.length ? `, until links of ${r.current.links_back.join(', ')} are back` : '');
  } else state = 'starting';
  const rows = r.order.map((node) => {
    const step = r.steps.find((s) => s.node === node);
    if (step) return { attrs: { 'data-node': node }, cells: [node, step.outcome.replace('_', ' '), step.at, step.detail] };
    if (r.current && r.current.node === node) {
      return { attrs: { 'data-node': node, class: 'turn' }, cells: [node, 'its turn now', r.current.since, ''] };
    }
    return { attrs: { 'data-node': node }, cells: [node, r.finished ? 'not visited' : 'waiting', '', ''] };
  });
  return el('div', { id },
    el('p', { class: 'rollout-summary', text: `${r.id}: ${r.why}, started ${r.started}${limits ? ` (${limits})` : ''}; ${state}` +
      (r.leader ? `; leader ${r.leader}` : '') }),
    table(`${id}-table`, ['NODE', 'OUTCOME', 'AT', 'DETAIL'], rows, 'no nodes'));
}

// The rolling restart in progress and the last one.
function rolloutsView(c) {
  return el('div', {},
    el('h3', { text: 'In progress' }), rolloutView(c.rollout, 'rollout-now', 'no rolling restart in progress'),
    el('h3', { text: 'Last' }), rolloutView(c.last_rollout, 'rollout-last', 'none since the cluster started'));
}

// The status page's cluster part: the view from this node, each node, the rollouts.
function clusterView(c) {
  const etcd = c.etcd.reachable ? 'reachable' : `unreachable since ${c.etcd.unreachable_since || '?'}: ${c.etcd.error || ''}`;
  const summary = el('dl', { id: 'cluster-summary' });
  for (const [k, v, id] of [
    ['Prefix', c.prefix], ['Leader', c.leader || 'none elected', 'cluster-leader'],
    ['Latest version', c.version ? `${c.version}, pushed by ${c.pushed_by} at ${c.pushed_at}` : 'nothing pushed'],
    ['etcd', `${etcd} (view read ${c.etcd.read_at})`],
  ]) summary.append(el('dt', { text: k }), el('dd', { id, text: v }));
  const rows = c.nodes.map((n) => {
    const s = n.status;
    const stale = s ? s.instances.filter((i) => i.applied !== i.latest).map((i) => `${i.instance} ${i.applied} → ${i.latest}`) : [];
    if (s && s.refused) stale.push(`refused version ${s.refused.version}: ${s.refused.problems.join('; ')}`);
    const role = [n.name === c.leader && 'leader', n.name === c.this_node && 'this node'].filter(Boolean).join(', ');
    return {
      attrs: { 'data-node': n.name, class: n.alive ? '' : 'gone' },
      cells: [n.name + (role ? ` (${role})` : ''), n.alive ? 'alive' : 'gone',
        s ? `${s.seen}${s.seen === c.version ? '' : ` (latest ${c.version})`}` : '',
        s ? (stale.join('\n') || 'none') : '',
        s ? s.tenants.map((t) => `${t.tenant} ${t.links}/${t.streams}`).join(', ') : '',
        s ? String(s.streams) : '',
        n.claim ? `${n.claim.host} pid ${n.claim.pid}, admin ${n.claim.admin}, since ${n.claim.started}` : ''],
    };
  });
  return el('div', {}, el('h2', { text: 'Cluster' }), summary,
    table('cluster-nodes', ['NODE', 'STATE', 'VERSION READ', 'STALE', 'LINKS/STREAMS PER TENANT', 'STREAMS', 'PROCESS'], rows, 'no nodes'),
    el('h2', { text: 'Rolling restart' }), rolloutsView(c));
}

// Whether the page's "this node / whole cluster" switch says the whole cluster.
function wholeCluster() {
  const s = document.getElementById('f-scope');
  return !!s && s.value === 'cluster';
}

// The nodes of a cluster-wide answer that did not answer, in `#unanswered`; [] clears it.
function unanswered(nodes) {
  const missing = nodes.filter((n) => !n.answer);
  replace('unanswered', missing.length
    ? el('p', { class: 'problem', id: 'unanswered-nodes', text: `No answer from ${missing.map((n) => `${n.node} (${n.error || 'no reason given'})`).join(', ')}: their rows are missing.` })
    : el('span'));
}

// A cluster's dry run: every node's rows, and the nodes that did not answer.
function nodesDryRun(nodes) {
  const rows = [];
  for (const n of nodes) {
    if (n.error) rows.push({ attrs: { class: 'problem', 'data-node': n.node }, cells: [n.node, '', 'no answer', n.error, '', ''] });
    else if (!n.restarted.length) rows.push({ attrs: { 'data-node': n.node }, cells: [n.node, '', 'nothing stale', '', '', ''] });
    for (const c of n.restarted) rows.push({ attrs: { 'data-node': n.node }, cells: [n.node, c.instance, c.action, c.what.join('; '), c.links, c.streams] });
  }
  return table('outcome-nodes', ['NODE', 'INSTANCE', 'ACTION', 'WHAT', 'LINKS DROPPED', 'STREAMS DROPPED'], rows, 'nothing stale on any node');
}
