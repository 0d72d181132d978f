// Traces search: filters in the URL, a duration-over-time scatter plot and
// a result list with duration bars.

import { api } from './api.js';
import { h, mount, emptyState, errorBox } from './dom.js';
import { scatter } from './charts.js';
import { formatDuration, formatTime, rangeToNanos, RANGES, serviceColor } from './format.js';
import { navigate, setQuery } from './app.js';

const FIELDS = ['service', 'operation', 'attr', 'min_duration', 'max_duration', 'error', 'range', 'start', 'end', 'limit'];

function readFilters(params) {
  const filters = {};
  for (const field of FIELDS) filters[field] = params.get(field) || '';
  filters.attrs = params.getAll('attr');
  return filters;
}

export async function render(root, { params, isCurrent }) {
  const filters = readFilters(params);
  const services = await api.get('/services').then((r) => r.services).catch(() => []);
  if (!isCurrent()) return;
  const operationSelect = h('select', { name: 'operation' }, h('option', { value: '' }, 'any operation'));
  const fillOperations = async (service) => {
    operationSelect.replaceChildren(h('option', { value: '' }, 'any operation'));
    if (!service) return;
    const ops = await api.get(`/services/${encodeURIComponent(service)}/operations`).then((r) => r.operations).catch(() => []);
    for (const op of ops) operationSelect.append(h('option', { value: op.name, selected: op.name === filters.operation }, op.name));
  };
  const serviceSelect = h('select', { name: 'service', onchange: (e) => fillOperations(e.target.value) },
    h('option', { value: '' }, 'any service'),
    services.map((s) => h('option', { value: s.name, selected: s.name === filters.service }, s.name)));
  await fillOperations(filters.service);
  const form = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const field of FIELDS) next[field] = field === 'attr' ? [] : (data.get(field) || '');
    next.attr = String(data.get('attr') || '').split(/\s+(?=[^\s:]+:)/).map((s) => s.trim()).filter(Boolean);
    next.error = data.get('error') ? '1' : '';
    setQuery(next, { replace: false });
    navigate(location.pathname + location.search, { replace: true });
  } },
    h('label', {}, 'Service', serviceSelect),
    h('label', {}, 'Operation', operationSelect),
    h('label', {}, 'Attributes (key:value …)', h('input', { name: 'attr', value: filters.attrs.join(' '), placeholder: 'http.status_code:500', size: 24 })),
    h('label', {}, 'Min duration', h('input', { name: 'min_duration', value: filters.min_duration, placeholder: '100ms', size: 7 })),
    h('label', {}, 'Max duration', h('input', { name: 'max_duration', value: filters.max_duration, placeholder: '2s', size: 7 })),
    h('label', {}, 'Time range', h('select', { name: 'range' },
      h('option', { value: '' }, 'any time'),
      Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === filters.range }, `last ${r}`)))),
    h('label', {}, 'From', h('input', { name: 'start', value: filters.start, placeholder: '2026-01-02T03:04:05Z', size: 20, title: 'RFC 3339 or unix nanoseconds; overrides the time range' })),
    h('label', {}, 'To', h('input', { name: 'end', value: filters.end, placeholder: 'now', size: 20 })),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'error', value: '1', checked: Boolean(filters.error) }), 'errors only'),
    h('input', { type: 'hidden', name: 'limit', value: filters.limit }),
    h('button', { class: 'primary', type: 'submit' }, 'Search'),
  );
  const results = h('div', {}, h('p', { class: 'muted' }, 'searching…'));
  mount(root, h('h1', {}, 'Traces'), form, results);

  if (!services.length) {
    mount(results, emptyState('No traces yet', 'Nothing has been sent to this server so far.'));
    return;
  }
  let traces;
  try {
    const response = await api.get('/traces', {
      service: filters.service, operation: filters.operation, attr: filters.attrs,
      min_duration: filters.min_duration, max_duration: filters.max_duration,
      error: filters.error ? 'true' : '', limit: filters.limit || 100,
      ...(filters.start || filters.end ? { start: filters.start, end: filters.end } : rangeToNanos(filters.range)),
    });
    traces = response.traces;
  } catch (error) {
    if (isCurrent()) mount(results, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  if (!traces.length) {
    mount(results, h('div', { class: 'empty' }, h('h2', {}, 'No trace matches'), h('p', {}, 'Widen the time range, remove a filter, or check the attribute spelling (key:value).')));
    return;
  }
  const max = Math.max(...traces.map((t) => Number(t.duration_ns)), 1);
  const open = (trace) => navigate(`/trace/${trace.trace_id}`);
  mount(results,
    scatter(traces, open),
    // which URL these results answer, so a test (or a reader of the DOM) can tell fresh from stale
    h('table', { class: 'list', id: 'trace-results', 'data-search': location.search },
      h('thead', {}, h('tr', {}, ['Root', 'Start', 'Duration', '', 'Spans', 'Errors', 'Services'].map((t) => h('th', {}, t)))),
      h('tbody', {}, traces.map((t) => h('tr', { class: 'clickable', 'data-trace': t.trace_id, onclick: (e) => { if (!e.target.closest('a')) open(t); } },
        h('td', {}, h('a', { href: `/trace/${t.trace_id}` }, h('strong', {}, t.root_service), ': ', t.root_name)),
        h('td', { class: 'mono' }, formatTime(t.start_time_unix_nano)),
        h('td', { class: 'num' }, formatDuration(t.duration_ns)),
        h('td', {}, h('div', { class: 'durbar' }, h('span', { style: { width: `${(Number(t.duration_ns) / max) * 100}%` } }))),
        h('td', { class: 'num' }, t.span_count),
        h('td', { class: 'num' }, t.error_count ? h('span', { class: 'badge err' }, t.error_count) : '0'),
        h('td', {}, t.services.map((s) => h('span', { class: 'badge', style: { borderColor: serviceColor(s) } }, s))),
      )))),
    h('p', { class: 'muted' }, `${traces.length} traces, newest first. Click a dot or a row to open the trace.`),
  );
}
