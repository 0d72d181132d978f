// Issues (error tracking): list with filters, search and sort; detail with
// stack, message, histogram, facets, samples and status buttons. When the
// server has no issues API (404) the page says so.

import { api, ApiError } from './api.js';
import { h, mount, errorBox } from './dom.js';
import { bars } from './charts.js';
import { formatAgo, formatTime } from './format.js';
import { navigate, setQuery } from './app.js';

const FIELDS = ['status', 'service', 'environment', 'source', 'q', 'sort'];

function unavailable(root) {
  mount(root, h('h1', {}, 'Issues'), h('div', { class: 'empty' },
    h('h2', {}, 'Error tracking is not available yet'),
    h('p', {}, 'This server does not answer /api/v1/issues. Once error tracking is enabled, exceptions recorded on spans and error logs are grouped into issues here.')));
}

export async function render(root, ctx) {
  return ctx.args[0] ? renderDetail(root, ctx) : renderList(root, ctx);
}

async function renderList(root, { params, isCurrent }) {
  const filters = Object.fromEntries(FIELDS.map((f) => [f, params.get(f) || '']));
  if (!filters.status) filters.status = 'open';
  const results = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  const form = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    setQuery(Object.fromEntries(FIELDS.map((f) => [f, String(data.get(f) || '').trim()])), { replace: false });
    navigate(location.pathname + location.search, { replace: true });
  } },
    h('label', {}, 'Status', h('select', { name: 'status' }, ['open', 'resolved', 'ignored', 'all'].map((s) => h('option', { value: s, selected: s === filters.status }, s)))),
    h('label', {}, 'Service', h('input', { name: 'service', value: filters.service, size: 14 })),
    h('label', {}, 'Environment', h('input', { name: 'environment', value: filters.environment, size: 10 })),
    h('label', {}, 'Source', h('select', { name: 'source' }, [['', 'any'], ['span', 'span exceptions'], ['log', 'error logs']].map(([v, t]) => h('option', { value: v, selected: v === filters.source }, t)))),
    h('label', {}, 'Search', h('input', { name: 'q', value: filters.q, size: 22, placeholder: 'ValueError' })),
    h('label', {}, 'Sort', h('select', { name: 'sort' }, [['last_seen', 'last seen'], ['first_seen', 'first seen'], ['count', 'count']].map(([v, t]) => h('option', { value: v, selected: v === filters.sort }, t)))),
    h('button', { class: 'primary', type: 'submit' }, 'Filter'));
  mount(root, h('h1', {}, 'Issues'), form, results);
  let issues;
  try {
    ({ issues } = await api.get('/issues', { status: filters.status === 'all' ? '' : filters.status, service: filters.service, environment: filters.environment, source: filters.source, q: filters.q, sort: filters.sort, limit: 100 }));
  } catch (error) {
    if (!isCurrent()) return;
    if (error instanceof ApiError && error.status === 404) unavailable(root);
    else mount(results, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  if (!issues.length) {
    mount(results, h('div', { class: 'empty' }, h('h2', {}, 'No issues'),
      h('p', {}, filters.status === 'open' ? 'Nothing open: exceptions recorded on spans (span events named "exception") and error logs with a stack trace become issues.' : 'No issue matches these filters.')));
    return;
  }
  const dayAgo = Date.now() - 86400e3;
  mount(results, h('table', { class: 'list', id: 'issue-list' },
    h('thead', {}, h('tr', {}, ['Issue', 'Service', 'Events', 'Last 24 h', 'First seen', 'Last seen', 'Status'].map((t) => h('th', {}, t)))),
    h('tbody', {}, issues.map((issue) => h('tr', { class: 'clickable', 'data-issue': issue.id, onclick: (e) => { if (!e.target.closest('a')) navigate(`/issues/${encodeURIComponent(issue.id)}`); } },
      h('td', {},
        Number(BigInt(issue.first_seen) / 1000000n) > dayAgo ? h('span', { class: 'badge new' }, 'new') : null,
        issue.regressed ? h('span', { class: 'badge warn' }, 'regressed') : null,
        h('a', { href: `/issues/${encodeURIComponent(issue.id)}` }, h('strong', {}, issue.title)),
        h('div', { class: 'muted mono' }, issue.culprit || '')),
      h('td', {}, issue.service, issue.environment ? h('span', { class: 'muted' }, ` · ${issue.environment}`) : null),
      h('td', { class: 'num' }, issue.count),
      h('td', {}, bars(issue.hourly_24h || [], { width: 96, height: 22, label: 'events per hour, last 24 h' })),
      h('td', {}, formatAgo(issue.first_seen)),
      h('td', {}, formatAgo(issue.last_seen)),
      h('td', {}, issue.status))))));
}

async function renderDetail(root, { args, isCurrent }) {
  const id = args[0];
  let issue;
  try {
    issue = await api.get(`/issues/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!isCurrent()) return;
    if (error instanceof ApiError && error.status === 404) {
      const list = await api.get('/issues', { limit: 1 }).then(() => true, () => false);
      if (!list) return unavailable(root);
      mount(root, h('h1', {}, 'Issue not found'), h('p', {}, h('a', { href: '/issues' }, 'All issues')));
    } else mount(root, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  const status = h('span', { class: 'badge', id: 'issue-status' }, issue.status);
  const setStatus = async (next) => {
    try {
      const body = { status: next };
      if (next === 'resolved' && issue.last_version) body.resolved_in_version = issue.last_version;
      const updated = await api.patch(`/issues/${encodeURIComponent(id)}`, body);
      issue.status = (updated && updated.status) || next;
      status.textContent = issue.status;
      renderButtons();
    } catch (error) {
      actions.append(errorBox(error));
    }
  };
  const actions = h('div', { class: 'actions' });
  const renderButtons = () => mount(actions,
    issue.status !== 'resolved' ? h('button', { type: 'button', id: 'resolve', onclick: () => setStatus('resolved') }, 'Resolve') : null,
    issue.status !== 'ignored' ? h('button', { type: 'button', id: 'ignore', onclick: () => setStatus('ignored') }, 'Ignore') : null,
    issue.status !== 'open' ? h('button', { type: 'button', id: 'reopen', onclick: () => setStatus('open') }, 'Reopen') : null);
  renderButtons();
  const facets = issue.facets || [];
  mount(root,
    h('p', {}, h('a', { href: '/issues' }, '← Issues')),
    h('h1', {}, issue.title, ' ', status, issue.regressed ? h('span', { class: 'badge warn' }, 'regressed') : null),
    h('p', { class: 'mono' }, issue.culprit || ''),
    actions,
    h('p', {}, `${issue.count} events · ${issue.service}${issue.environment ? ` · ${issue.environment}` : ''} · first seen ${formatTime(issue.first_seen)}${issue.first_version ? ` (${issue.first_version})` : ''} · last seen ${formatTime(issue.last_seen)}${issue.last_version ? ` (${issue.last_version})` : ''}`,
      issue.resolved_in_version ? ` · resolved in ${issue.resolved_in_version}` : '',
      issue.status_history && issue.status_history[0] && issue.status_history[0].changed_by
        ? h('span', { id: 'issue-changed-by' }, ` · ${issue.status_history[0].status} by ${issue.status_history[0].changed_by} ${formatTime(issue.status_history[0].time_unix_nano)}`) : ''),
    h('h2', {}, 'Message'), h('pre', { class: 'log-body' }, `${issue.error_type || ''}${issue.error_type && issue.message ? ': ' : ''}${issue.message || ''}`),
    h('h2', {}, 'Last 14 days'), bars(issue.hourly_14d || [], { width: 1000, height: 60, label: 'events per hour, last 14 days', className: 'hist' }),
    h('h2', {}, 'Stack'), (issue.stack || []).length ? h('div', { class: 'stack', id: 'issue-stack' }, issue.stack.map((frame) => h('div', { class: frame.in_app ? 'inapp' : '' },
      `${frame.function || '?'}`, frame.module ? ` (${frame.module})` : '', ` ${frame.file || ''}${frame.line ? `:${frame.line}` : ''}`))) : h('p', { class: 'muted' }, 'no stack trace'),
    h('h2', {}, 'Facets'), facets.length ? facets.map((facet) => {
      const total = facet.values.reduce((sum, v) => sum + v.count, 0) || 1;
      return h('div', {}, h('h4', {}, facet.key), h('table', { class: 'kv' }, facet.values.map((v) => h('tr', {},
        h('td', { class: 'k' }, String(v.value)),
        h('td', {}, h('span', { class: 'share', style: { width: `${(v.count / total) * 160}px` } }), `${Math.round((v.count / total) * 100)}% (${v.count})`)))));
    }) : h('p', { class: 'muted' }, 'none'),
    h('h2', {}, 'Samples'), h('table', { class: 'list', id: 'issue-samples' },
      h('thead', {}, h('tr', {}, ['Time', 'Source', 'Message', 'Trace'].map((t) => h('th', {}, t)))),
      h('tbody', {}, (issue.samples || []).map((sample) => h('tr', {},
        h('td', { class: 'mono' }, formatTime(sample.time_unix_nano)),
        h('td', {}, sample.source || ''),
        h('td', { class: 'log-body' }, sample.message || ''),
        h('td', {}, sample.trace_id
          ? h('a', { class: 'mono sample-trace', href: `/trace/${sample.trace_id}${sample.span_id ? `?span=${sample.span_id}` : ''}` }, `${sample.trace_id.slice(0, 12)}…`)
          : h('a', { href: `/logs?q=${encodeURIComponent(sample.message || '')}` }, 'log')))))));
}
