// Logs search: service, severity, text, trace id; each log links to its trace.

import { api } from './api.js';
import { h, mount, emptyState, errorBox } from './dom.js';
import { formatTime, rangeToNanos, RANGES, severityClass } from './format.js';
import { navigate, setQuery } from './app.js';

const FIELDS = ['service', 'severity', 'q', 'trace_id', 'span_id', 'range'];

export async function render(root, { params, isCurrent }) {
  const filters = Object.fromEntries(FIELDS.map((f) => [f, params.get(f) || '']));
  const services = await api.get('/services').then((r) => r.services).catch(() => []);
  if (!isCurrent()) return;
  const form = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    setQuery(Object.fromEntries(FIELDS.map((f) => [f, String(data.get(f) || '').trim()])), { replace: false });
    navigate(location.pathname + location.search, { replace: true });
  } },
    h('label', {}, 'Service', h('select', { name: 'service' }, h('option', { value: '' }, 'any service'),
      services.map((s) => h('option', { value: s.name, selected: s.name === filters.service }, s.name)))),
    h('label', {}, 'Min severity', h('select', { name: 'severity' }, ['', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'].map((s) =>
      h('option', { value: s, selected: s === filters.severity }, s || 'any')))),
    h('label', {}, 'Text', h('input', { name: 'q', value: filters.q, placeholder: 'payment declined', size: 22 })),
    h('label', {}, 'Trace id', h('input', { name: 'trace_id', value: filters.trace_id, size: 34, class: 'mono' })),
    h('input', { type: 'hidden', name: 'span_id', value: filters.span_id }),
    h('label', {}, 'Time range', h('select', { name: 'range' }, h('option', { value: '' }, 'any time'),
      Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === filters.range }, `last ${r}`)))),
    h('button', { class: 'primary', type: 'submit' }, 'Search'));
  const results = h('div', {}, h('p', { class: 'muted' }, 'searching…'));
  mount(root, h('h1', {}, 'Logs'), form, results);
  let logs;
  try {
    ({ logs } = await api.get('/logs', { service: filters.service, severity: filters.severity, q: filters.q, trace_id: filters.trace_id, limit: 200, ...rangeToNanos(filters.range) }));
  } catch (error) {
    if (isCurrent()) mount(results, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  if (filters.span_id) logs = logs.filter((log) => log.span_id === filters.span_id);
  if (!logs.length) {
    mount(results, services.length
      ? h('div', { class: 'empty' }, h('h2', {}, 'No log matches'), h('p', {}, 'Remove a filter or widen the time range.'))
      : emptyState('No logs yet', 'Logs arrive over OTLP like traces; the SDK log bridge attaches trace and span ids.'));
    return;
  }
  const spanNote = filters.span_id ? h('p', { class: 'muted' }, `Only span ${filters.span_id}. `,
    h('a', { href: `/logs?trace_id=${encodeURIComponent(filters.trace_id)}` }, 'Show the whole trace\'s logs')) : null;
  mount(results, spanNote, h('table', { class: 'list', id: 'log-results' },
    h('thead', {}, h('tr', {}, ['Time', 'Service', 'Severity', 'Message', 'Trace'].map((t) => h('th', {}, t)))),
    h('tbody', {}, logs.map((log) => h('tr', {},
      h('td', { class: 'mono' }, formatTime(log.time_unix_nano)),
      h('td', {}, log.service),
      h('td', { class: severityClass(log.severity_number) }, log.severity_text || String(log.severity_number)),
      h('td', { class: 'log-body' }, typeof log.body === 'string' ? log.body : JSON.stringify(log.body)),
      h('td', {}, log.trace_id ? h('a', { class: 'mono trace-link', href: `/trace/${log.trace_id}${log.span_id ? `?span=${log.span_id}` : ''}` }, `${log.trace_id.slice(0, 12)}…`) : h('span', { class: 'muted' }, '–')))))),
  h('p', { class: 'muted' }, `${logs.length} records, newest first.`));
}
