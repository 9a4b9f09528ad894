// The xfed console's script, part 1 of 3 (common.js, cluster.js, console.js, loaded in that
// order): helpers. The pages poll the console's JSON every two seconds and build the live
// tables with textContent: no string from the network is ever parsed as HTML.
'use strict';

const POLL_MS = 2000;
// What the charts span: the node keeps ten minutes of samples, the page adds its own.
const WINDOW_MS = 10 * 60 * 1000;
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

// A line chart of `points` ({t: page-clock ms, v}) over the last WINDOW_MS in the SVG `id`,
// its maximum and last value written in the corner.
function chart(id, points) {
  const svg = document.getElementById(id);
  const ns = 'http://www.w3.org/2000/svg';
  const now = Date.now();
  const max = Math.max(1, ...points.map((p) => p.v));
  const x = (t) => Math.max(0, (300 * (t - (now - WINDOW_MS))) / WINDOW_MS).toFixed(1);
  const y = (v) => (58 - (v / max) * 44).toFixed(1);
  // With one sample, a flat line from it to now.
  const shown = points.length === 1 ? [points[0], { t: now, v: points[0].v }] : points;
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', shown.map((p) => `${x(p.t)},${y(p.v)}`).join(' '));
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '2');
  label.setAttribute('y', '9');
  const last = points.length ? points[points.length - 1].v : 0;
  label.textContent = `max ${Math.round(max * 10) / 10}, now ${Math.round(last * 10) / 10}`;
  svg.replaceChildren(line, label);
}

// This node's name, as the header shows it.
function thisNode() {
  return document.querySelector('header span').textContent;
}
