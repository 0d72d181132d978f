// Services: request rate, error rate and p50/p95/p99 per service with a
// sparkline, and per operation for the selected service, all from the
// store's ingest-time per-minute aggregates (/api/v1/services/stats).

import { api } from './api.js';
import { h, mount, emptyState, errorBox } from './dom.js';
import { sparkline } from './charts.js';
import { formatDuration, formatPercent, formatRate, rangeToNanos, RANGES, serviceColor } from './format.js';
import { navigate } from './app.js';

function figureCells(row) {
  return [
    h('td', { class: 'num' }, formatRate(row.rate_per_second)),
    h('td', { class: 'num' }, row.count),
    h('td', { class: `num${row.error_rate > 0 ? ' err-text' : ''}` }, formatPercent(row.error_rate)),
    h('td', { class: 'num' }, formatDuration(row.p50_ns)),
    h('td', { class: 'num' }, formatDuration(row.p95_ns)),
    h('td', { class: 'num' }, formatDuration(row.p99_ns)),
    h('td', {}, sparkline(row.series.map((p) => p.count), { label: 'requests per step' })),
  ];
}

const HEAD = ['Rate', 'Requests', 'Errors', 'p50', 'p95', 'p99', 'Requests over time'];
/** Sortable columns: header → value of a row, highest first. */
const SORTS = {
  Rate: (row) => row.rate_per_second,
  Requests: (row) => row.count,
  Errors: (row) => row.error_rate,
  p50: (row) => Number(row.p50_ns),
  p95: (row) => Number(row.p95_ns),
  p99: (row) => Number(row.p99_ns),
};

function sorted(rows, by) {
  const key = SORTS[by];
  return key ? [...rows].sort((a, b) => key(b) - key(a) || a.name.localeCompare(b.name)) : rows;
}

export async function render(root, { params, isCurrent }) {
  const range = RANGES[params.get('range')] ? params.get('range') : '1h';
  const chosen = params.get('service') || '';
  const sort = SORTS[params.get('sort')] ? params.get('sort') : '';
  const link = (next) => {
    const search = new URLSearchParams({ range, sort, ...next });
    for (const [k, v] of [...search]) if (!v) search.delete(k);
    return `/services?${search}`;
  };
  const picker = h('form', { class: 'filters' }, h('label', {}, 'Time range', h('select', {
    name: 'range', onchange: (e) => navigate(link({ range: e.target.value, service: chosen })),
  }, Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === range }, `last ${r}`)))));
  const headCell = (title) => (SORTS[title]
    ? h('th', { class: 'num' }, h('a', { href: link({ service: chosen, sort: title }), title: `sort by ${title}` }, title, sort === title ? ' ▼' : ''))
    : h('th', {}, title));
  const body = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  mount(root, h('h1', {}, chosen ? `Service ${chosen}` : 'Services'), picker, body);
  let stats;
  try {
    stats = await api.get('/services/stats', rangeToNanos(range));
  } catch (error) {
    if (isCurrent()) mount(body, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  if (!stats.services.length) {
    mount(body, emptyState(`No requests in the last ${range}`, 'Pick a longer time range, or send some telemetry.'));
    return;
  }
  const table = h('table', { class: 'list', id: 'service-table' },
    h('thead', {}, h('tr', {}, h('th', {}, h('a', { href: link({ service: chosen, sort: '' }) }, 'Service')), HEAD.map((t) => headCell(t)))),
    h('tbody', {}, sorted(stats.services, sort).map((service) => h('tr', { class: 'clickable', 'data-service': service.name, onclick: (e) => { if (!e.target.closest('a')) navigate(link({ service: service.name })); } },
      h('td', {}, h('i', { class: 'svc-dot', style: { display: 'inline-block', width: '10px', height: '10px', borderRadius: '2px', marginRight: '6px', background: serviceColor(service.name) } }),
        h('a', { href: link({ service: service.name }) }, service.name)),
      figureCells(service)))));
  const parts = [table, h('p', { class: 'muted' }, `Step ${formatDuration(stats.step_ns)}; rates count entry spans (server, consumer or root) of each service. Figures come from per-minute aggregates kept at ingest.`)];
  const service = stats.services.find((s) => s.name === chosen);
  if (chosen && service) {
    parts.push(h('h2', {}, `Operations of ${service.name}`),
      h('table', { class: 'list', id: 'operation-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Operation'), HEAD.map((t) => headCell(t)))),
        h('tbody', {}, sorted(service.operations, sort).map((op) => h('tr', {},
          h('td', {}, h('a', { href: `/traces?service=${encodeURIComponent(service.name)}&operation=${encodeURIComponent(op.name)}` }, op.name)),
          figureCells(op))))));
  } else if (chosen) {
    parts.push(h('p', { class: 'muted' }, `${chosen} sent nothing in the last ${range}.`));
  }
  mount(body, ...parts);
}
