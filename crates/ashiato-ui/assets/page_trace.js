// Trace view: virtualized waterfall (only the rows in view are in the DOM,
// so 100,000 spans stay responsive), collapsible tree, service colours,
// time axis, minimap, critical path, error marks, keyboard navigation and a
// detail pane with typed, searchable attributes, events, links and logs.

import { api, ApiError } from './api.js';
import { h, mount, errorBox } from './dom.js';
import { buildTree, criticalPath, visibleRows, descendantCount, ticks } from './tree.js';
import { formatDuration, formatTime, serviceColor, severityClass } from './format.js';
import { navigate, setQuery } from './app.js';

const ROW = 24;
const OVERSCAN = 12;

export async function render(root, { params, args, isCurrent }) {
  const traceId = args[0].toLowerCase();
  const began = performance.now();
  mount(root, h('p', { class: 'muted' }, 'loading trace…'));
  let data;
  try {
    data = await api.get(`/traces/${traceId}`);
  } catch (error) {
    if (!isCurrent()) return;
    if (error instanceof ApiError && error.status === 404) {
      mount(root, h('h1', {}, 'Trace not found'), h('p', {}, `No span of trace ${traceId} is stored (yet). `, h('a', { href: '/traces' }, 'Search traces')));
    } else mount(root, errorBox(error));
    return;
  }
  if (!isCurrent()) return;
  const fetched = performance.now();
  const tree = buildTree(data.spans);
  const critical = criticalPath(tree);
  const collapsed = new Set();
  let rows = visibleRows(tree, collapsed);
  const built = performance.now();
  const total = Math.max(tree.end - tree.start, 1);
  let selected = params.get('span') && tree.byId.get(params.get('span')) ? tree.byId.get(params.get('span')) : null;
  let detailOpen = Boolean(selected);
  const services = [...new Set(tree.nodes.map((n) => n.service))];
  const errors = tree.nodes.filter((n) => n.error).length;
  const rootNode = tree.roots[0];

  let matches = [];
  let matchSet = new Set();
  let matchIndex = -1;
  const find = h('input', {
    type: 'search', placeholder: 'find span (name, service, id)', 'aria-label': 'find span', size: 28,
    oninput: () => {
      const needle = find.value.trim().toLowerCase();
      matches = needle ? tree.nodes.filter((n) => n.span.name.toLowerCase().includes(needle) || n.service.toLowerCase().includes(needle) || n.id.startsWith(needle)) : [];
      matchSet = new Set(matches);
      matchIndex = -1;
      found.textContent = needle ? `${matches.length} found` : '';
      paint();
    },
    onkeydown: (event) => {
      if (event.key !== 'Enter' || !matches.length) return;
      event.preventDefault();
      matchIndex = (matchIndex + 1) % matches.length;
      expandTo(matches[matchIndex]);
      select(matches[matchIndex], { scroll: true, open: true });
      found.textContent = `${matchIndex + 1} of ${matches.length}`;
    },
  });
  const found = h('span', { class: 'muted' });
  const spacer = h('div', { class: 'wf-spacer' });
  const viewport = h('div', { class: 'minimap-view' });
  const waterfall = h('div', { class: 'waterfall', tabindex: 0, role: 'tree', 'aria-label': 'spans' }, spacer);
  const detail = h('div', { class: 'detail', id: 'span-detail' });
  const layout = h('div', { class: 'trace-layout' }, h('div', {}, minimapCanvas(), axis(), waterfall), detail);
  const copy = h('button', { type: 'button', onclick: async () => {
    try {
      await navigator.clipboard.writeText(traceId);
      copy.textContent = 'copied';
    } catch {
      copy.textContent = traceId;
    }
  } }, 'Copy trace id');

  mount(root,
    h('div', { class: 'trace-head' },
      h('h1', {}, rootNode ? `${rootNode.service}: ${rootNode.span.name}` : 'Trace'),
      h('span', { class: 'mono muted' }, traceId), copy,
      h('span', {}, formatDuration(total)), h('span', {}, `${tree.nodes.length} spans`),
      errors ? h('span', { class: 'badge err' }, `${errors} errors`) : null,
      rootNode ? h('span', { class: 'muted' }, formatTime(rootNode.span.start_time_unix_nano)) : null,
      rootNode ? h('a', { href: `/compare?a=${traceId}&service=${encodeURIComponent(rootNode.service)}&operation=${encodeURIComponent(rootNode.span.name)}` }, 'Compare with another trace…') : null,
    ),
    h('div', { class: 'legend' },
      services.map((s) => h('span', {}, h('i', { style: { background: serviceColor(s) } }), s)),
      h('span', {}, h('i', { style: { background: 'transparent', boxShadow: '0 0 0 2px var(--crit)' } }), 'critical path'),
      h('span', { class: 'muted' }, '↑/↓ select · ←/→ collapse/expand · Enter details'),
      find, found),
    layout);

  function axis() {
    return h('div', { class: 'axis' },
      ticks(total).map((t) => h('span', { style: { left: `${(t.at / total) * 100}%` } }, formatDuration(t.at))));
  }

  function minimapCanvas() {
    const canvas = h('canvas', { class: 'minimap', width: 1000, height: 48, title: 'minimap: click to jump' });
    const ctx = canvas.getContext('2d');
    // every span, in tree order, squeezed into 48 pixel rows (100,000 fillRects take milliseconds)
    const all = visibleRows(tree, new Set());
    const rowHeight = Math.max(48 / all.length, 1);
    all.forEach((node, i) => {
      ctx.fillStyle = node.error ? '#d32f2f' : serviceColor(node.service);
      const x = ((node.start - tree.start) / total) * 1000;
      ctx.fillRect(x, Math.floor((i / all.length) * 48), Math.max((node.duration / total) * 1000, 1), rowHeight);
    });
    rows = visibleRows(tree, collapsed);
    canvas.addEventListener('click', (event) => {
      const fraction = event.offsetY / canvas.clientHeight;
      const target = all[Math.floor(fraction * all.length)];
      if (target) {
        expandTo(target);
        select(target, { scroll: true });
      }
    });
    return h('div', { class: 'minimap-box' }, canvas, viewport);
  }

  function paint() {
    spacer.style.height = `${rows.length * ROW}px`;
    const first = Math.max(0, Math.floor(waterfall.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((waterfall.scrollTop + (waterfall.clientHeight || 600)) / ROW) + OVERSCAN);
    const out = [];
    for (let i = first; i < last; i++) out.push(rowElement(rows[i], i));
    spacer.replaceChildren(...out);
    // the part of the trace in view, on the minimap
    const height = Math.max(rows.length * ROW, 1);
    viewport.style.top = `${(waterfall.scrollTop / height) * 100}%`;
    viewport.style.height = `${Math.min(((waterfall.clientHeight || 600) / height) * 100, 100)}%`;
  }

  function rowElement(node, i) {
    const left = ((node.start - tree.start) / total) * 100;
    const width = (node.duration / total) * 100;
    const hasChildren = node.children.length > 0;
    const isCollapsed = collapsed.has(node.id);
    const isMatch = matchSet.has(node);
    return h('div', {
      class: `row${node === selected ? ' sel' : ''}${node.error ? ' error' : ''}${isMatch ? ' match' : ''}`,
      style: { top: `${i * ROW}px` }, role: 'treeitem', 'aria-level': node.depth + 1,
      'aria-expanded': hasChildren ? String(!isCollapsed) : null, 'data-span': node.id,
      onclick: (event) => {
        if (event.target.classList.contains('toggle')) toggle(node);
        else select(node, { open: true });
      },
    },
    h('div', { class: 'label', style: { paddingLeft: `${Math.min(node.depth, 40) * 12}px` } },
      h('span', { class: 'toggle' }, hasChildren ? (isCollapsed ? `▸` : '▾') : ''),
      h('span', { class: 'svc', style: { background: serviceColor(node.service) }, title: node.service }),
      node.error ? h('span', { class: 'errmark', title: 'error' }, '!') : null,
      h('span', { class: 'name', title: `${node.service}: ${node.span.name}` }, node.span.name,
        isCollapsed ? h('span', { class: 'muted' }, ` (+${descendantCount(node)})`) : null)),
    h('div', { class: 'lane' },
      h('div', { class: `bar${critical.has(node.id) ? ' crit' : ''}`, style: { left: `${left}%`, width: `${Math.max(width, 0.05)}%`, background: node.error ? 'var(--err)' : serviceColor(node.service) } }),
      h('span', { class: 'dur', style: left + width > 80 ? { right: `${100 - left + 0.5}%` } : { left: `${left + width + 0.5}%` } }, formatDuration(node.duration))));
  }

  function toggle(node, collapse = !collapsed.has(node.id)) {
    if (!node.children.length) return;
    if (collapse) collapsed.add(node.id);
    else collapsed.delete(node.id);
    rows = visibleRows(tree, collapsed);
    paint();
  }

  function expandTo(node) {
    let changed = false;
    for (let p = node.parentId && tree.byId.get(node.parentId); p; p = p.parentId && tree.byId.get(p.parentId)) {
      if (collapsed.delete(p.id)) changed = true;
      if (p.depth === 0) break;
    }
    if (changed) rows = visibleRows(tree, collapsed);
  }

  function select(node, { open = false, scroll = false } = {}) {
    selected = node;
    if (open) detailOpen = true;
    setQuery({ span: node.id });
    if (scroll) {
      const top = node.index * ROW;
      if (top < waterfall.scrollTop || top > waterfall.scrollTop + waterfall.clientHeight - ROW) {
        waterfall.scrollTop = Math.max(0, top - waterfall.clientHeight / 2);
      }
    }
    paint();
    showDetail();
  }

  function showDetail() {
    layout.classList.toggle('nodetail', !(detailOpen && selected));
    if (!(detailOpen && selected)) return detail.replaceChildren();
    renderDetail(detail, selected, traceId, tree, isCurrent);
  }

  waterfall.addEventListener('scroll', () => requestAnimationFrame(paint), { passive: true });
  waterfall.addEventListener('keydown', (event) => {
    const index = selected ? selected.index : -1;
    let handled = true;
    if (event.key === 'ArrowDown') select(rows[Math.min(index + 1, rows.length - 1)], { scroll: true });
    else if (event.key === 'ArrowUp') select(rows[Math.max(index - 1, 0)], { scroll: true });
    else if (event.key === 'ArrowLeft' && selected) {
      if (selected.children.length && !collapsed.has(selected.id)) toggle(selected, true);
      else if (selected.parentId && tree.byId.get(selected.parentId)) select(tree.byId.get(selected.parentId), { scroll: true });
    } else if (event.key === 'ArrowRight' && selected) toggle(selected, false);
    else if (event.key === 'Enter' && selected) { detailOpen = true; showDetail(); } else if (event.key === 'Escape') { detailOpen = false; showDetail(); } else handled = false;
    if (handled) event.preventDefault();
  });

  if (selected) expandTo(selected);
  paint();
  showDetail();
  if (selected) select(selected, { scroll: true });
  requestAnimationFrame(() => {
    paint();
    const ms = performance.now() - began;
    document.body.dataset.traceRenderMs = ms.toFixed(1);
    // phases, for the benchmark report: fetch + JSON parse, tree + critical path + rows
    document.body.dataset.traceFetchMs = (fetched - began).toFixed(1);
    document.body.dataset.traceBuildMs = (built - fetched).toFixed(1);
    document.body.dataset.traceRendered = traceId;
  });
  return null;
}

function typeOf(value) {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'object') return 'map';
  return typeof value === 'string' ? 'string' : typeof value;
}

function kvTable(object, filter = '') {
  const needle = filter.toLowerCase();
  const entries = Object.entries(object || {}).filter(([k, v]) => !needle || k.toLowerCase().includes(needle) || JSON.stringify(v).toLowerCase().includes(needle));
  if (!entries.length) return h('p', { class: 'muted' }, filter ? 'no match' : 'none');
  return h('table', { class: 'kv' }, entries.map(([key, value]) => h('tr', {},
    h('td', { class: 'k' }, key),
    h('td', {}, typeof value === 'string' ? value : JSON.stringify(value), h('span', { class: 'type' }, typeOf(value))))));
}

function renderDetail(el, node, traceId, tree, isCurrent) {
  const span = node.span;
  const attrBox = h('div', {}, kvTable(span.attributes));
  const search = h('input', { type: 'search', placeholder: 'filter attributes', 'aria-label': 'filter attributes', oninput: () => mount(attrBox, kvTable(span.attributes, search.value)) });
  const logsBox = h('div', { id: 'span-logs' }, h('p', { class: 'muted' }, 'loading logs…'));
  const parent = node.parentId && tree.byId.get(node.parentId);
  mount(el,
    h('h3', {}, `${span.service}: ${span.name}`),
    h('table', { class: 'kv' },
      h('tr', {}, h('td', { class: 'k' }, 'span id'), h('td', { class: 'mono' }, span.span_id)),
      h('tr', {}, h('td', { class: 'k' }, 'parent'), h('td', { class: 'mono' }, span.parent_span_id ? (parent ? parent.span.name : `${span.parent_span_id} (not in trace)`) : 'root')),
      h('tr', {}, h('td', { class: 'k' }, 'kind'), h('td', {}, span.kind)),
      h('tr', {}, h('td', { class: 'k' }, 'start'), h('td', {}, formatTime(span.start_time_unix_nano))),
      h('tr', {}, h('td', { class: 'k' }, 'duration'), h('td', {}, formatDuration(node.duration), h('span', { class: 'muted' }, ` (self ${formatDuration(node.self)})`))),
      h('tr', {}, h('td', { class: 'k' }, 'status'), h('td', { class: node.error ? 'err-text' : '' }, span.status.code, span.status.message ? `: ${span.status.message}` : ''))),
    h('h4', {}, 'Attributes'), search, attrBox,
    h('h4', {}, 'Events'), span.events.length ? span.events.map((event) => h('div', {},
      h('strong', { class: event.name === 'exception' ? 'err-text' : '' }, event.name), ' ',
      h('span', { class: 'muted' }, `+${formatDuration(Number(BigInt(event.time_unix_nano) - BigInt(span.start_time_unix_nano)))}`),
      kvTable(event.attributes))) : h('p', { class: 'muted' }, 'none'),
    h('h4', {}, 'Links'), span.links.length ? h('ul', {}, span.links.map((link) => h('li', {},
      h('a', { href: `/trace/${link.trace_id}?span=${link.span_id}`, class: 'mono' }, `${link.trace_id.slice(0, 16)}… / ${link.span_id}`)))) : h('p', { class: 'muted' }, 'none'),
    h('h4', {}, 'Logs'), logsBox,
    h('h4', {}, 'Resource'), kvTable(span.resource),
    h('h4', {}, 'Scope'), h('p', {}, `${span.scope.name} ${span.scope.version}`));
  api.get('/logs', { trace_id: traceId, limit: 1000 }).then(({ logs }) => {
    if (!isCurrent()) return;
    const mine = logs.filter((log) => log.span_id === span.span_id);
    const all = h('a', { href: `/logs?trace_id=${traceId}` }, `all ${logs.length} logs of this trace`);
    if (!mine.length) {
      mount(logsBox, h('p', { class: 'muted' }, 'none for this span', logs.length ? [' · ', all] : null));
      return;
    }
    mount(logsBox, mine.map((log) => h('div', { class: 'log-line' },
      h('span', { class: severityClass(log.severity_number) }, log.severity_text || `sev ${log.severity_number}`), ' ',
      h('span', { class: 'muted' }, formatTime(log.time_unix_nano)), ' ',
      h('a', { class: 'log-body', href: `/logs?trace_id=${traceId}&span_id=${span.span_id}` }, typeof log.body === 'string' ? log.body : JSON.stringify(log.body)))),
    h('p', {}, all));
  }).catch((error) => mount(logsBox, errorBox(error)));
}
