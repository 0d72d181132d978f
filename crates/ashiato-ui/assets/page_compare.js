// Trace comparison: pick two traces of one operation and see added,
// removed, slower and faster spans with self-time deltas.

import { api } from './api.js';
import { h, mount, errorBox } from './dom.js';
import { compareTraces } from './diff.js';
import { formatDuration, formatTime } from './format.js';
import { navigate } from './app.js';

export async function render(root, { params, isCurrent }) {
  const a = params.get('a') || '';
  const b = params.get('b') || '';
  const service = params.get('service') || '';
  const operation = params.get('operation') || '';
  if (!a || !b) return renderPicker(root, { a, service, operation, isCurrent });
  mount(root, h('p', { class: 'muted' }, 'loading both traces…'));
  let left;
  let right;
  try {
    [left, right] = await Promise.all([api.get(`/traces/${a}`), api.get(`/traces/${b}`)]);
  } catch (error) {
    if (isCurrent()) mount(root, h('h1', {}, 'Compare traces'), errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  const rows = compareTraces(left.spans, right.spans);
  const counts = {};
  for (const row of rows) counts[row.status] = (counts[row.status] || 0) + 1;
  const cell = (group, field) => (group ? formatDuration(group[field]) : '–');
  mount(root,
    h('h1', {}, 'Compare traces'),
    h('p', {}, 'Baseline ', h('a', { class: 'mono', href: `/trace/${a}` }, a), ' vs ', h('a', { class: 'mono', href: `/trace/${b}` }, b), ' · ',
      h('a', { href: `/compare?b=${a}&a=${b}` }, 'swap')),
    h('p', {}, ['added', 'removed', 'slower', 'faster', 'same'].map((s) => h('span', { class: `badge diff-${s}` }, `${counts[s] || 0} ${s}`))),
    h('table', { class: 'list', id: 'compare-table' },
      h('thead', {}, h('tr', {}, ['Change', 'Span (path from root)', 'Count A→B', 'Self A', 'Self B', 'Self Δ', 'Total Δ'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.map((row) => h('tr', { class: `diff-row-${row.status}` },
        h('td', { class: `diff-${row.status}` }, row.status),
        h('td', { style: { paddingLeft: `${8 + Math.min(row.depth, 20) * 12}px` } }, h('strong', {}, row.service), ': ', row.name),
        h('td', { class: 'num' }, `${row.a ? row.a.count : 0} → ${row.b ? row.b.count : 0}`),
        h('td', { class: 'num' }, cell(row.a, 'self')),
        h('td', { class: 'num' }, cell(row.b, 'self')),
        h('td', { class: `num diff-${row.selfDelta > 0 ? 'slower' : row.selfDelta < 0 ? 'added' : 'same'}` }, `${row.selfDelta > 0 ? '+' : ''}${formatDuration(row.selfDelta)}`),
        h('td', { class: 'num' }, `${row.durationDelta > 0 ? '+' : ''}${formatDuration(row.durationDelta)}`))))));
}

async function renderPicker(root, { a, service, operation, isCurrent }) {
  const list = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  mount(root, h('h1', {}, 'Compare traces'),
    h('p', {}, a ? `Pick a second trace of ${service}: ${operation} to compare with ${a.slice(0, 12)}…` : 'Open a trace and choose "Compare with another trace…", or pick two traces here.'),
    list);
  let traces;
  try {
    ({ traces } = await api.get('/traces', { service, operation, limit: 50 }));
  } catch (error) {
    if (isCurrent()) mount(list, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  let first = a;
  const rows = traces.filter((t) => t.trace_id !== a).map((t) => h('tr', { class: 'clickable', 'data-trace': t.trace_id, onclick: () => {
    if (first) navigate(`/compare?a=${first}&b=${t.trace_id}`);
    else {
      first = t.trace_id;
      navigate(`/compare?a=${first}&service=${encodeURIComponent(t.root_service)}&operation=${encodeURIComponent(t.root_name)}`);
    }
  } },
    h('td', {}, `${t.root_service}: ${t.root_name}`), h('td', { class: 'mono' }, formatTime(t.start_time_unix_nano)),
    h('td', { class: 'num' }, formatDuration(t.duration_ns)), h('td', { class: 'num' }, t.span_count)));
  mount(list, rows.length ? h('table', { class: 'list', id: 'compare-pick' }, h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No other trace of this operation yet.'));
}
