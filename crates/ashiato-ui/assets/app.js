// The single-page application: client-side routing over history.pushState,
// so every page and filter is a shareable URL and back/forward work.

import { render as traces } from './page_traces.js';
import { render as trace } from './page_trace.js';
import { render as compare } from './page_compare.js';
import { render as services } from './page_services.js';
import { render as issues } from './page_issues.js';
import { render as logs } from './page_logs.js';
import { h, mount, errorBox } from './dom.js';
import { api } from './api.js';

const ROUTES = [
  [/^\/(?:traces\/?)?$/, 'traces', traces],
  [/^\/traces?\/([0-9a-fA-F]{1,64})$/, 'traces', trace],
  [/^\/compare$/, 'compare', compare],
  [/^\/services$/, 'services', services],
  [/^\/issues$/, 'issues', issues],
  [/^\/issues\/([^/]+)$/, 'issues', issues],
  [/^\/logs$/, 'logs', logs],
];

let cleanup = null;
let generation = 0;

/** Goes to a URL inside the app; `replace` keeps the history entry. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

/** Updates the query string of the current page without re-rendering. */
export function setQuery(params, { replace = true } = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.filter(Boolean).forEach((v) => search.append(key, v));
    else if (value !== '' && value != null && value !== false) search.set(key, value === true ? '1' : value);
  }
  const text = search.toString();
  const url = `${location.pathname}${text ? `?${text}` : ''}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
}

async function route() {
  const root = document.getElementById('app');
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  const mine = ++generation;
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const match = ROUTES.map(([re, page, fn]) => [path.match(re), page, fn]).find(([m]) => m);
  for (const link of document.querySelectorAll('.top nav a')) {
    link.classList.toggle('active', Boolean(match) && link.dataset.page === match[1]);
  }
  if (!match) {
    mount(root, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/traces' }, 'Search traces')));
    return;
  }
  const [m, page, render] = match;
  document.title = `ashiato · ${page}`;
  try {
    cleanup = await render(root, { params, args: m.slice(1).map(decodeURIComponent), isCurrent: () => mine === generation });
  } catch (error) {
    if (mine === generation) mount(root, errorBox(error));
  }
}

// Same-origin links navigate inside the app (modifier clicks open tabs as usual).
document.addEventListener('click', (event) => {
  const link = event.target.closest && event.target.closest('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', route);
route();

// With tokens on and a session open, the header offers logging out; with
// auth off (the default) nothing is shown.
api.session().then((session) => {
  if (!session || !session.auth || !session.logged_in) return;
  const logout = h('a', {
    href: '#', class: 'logout', title: `logged in as ${session.name} (${session.scope})`,
    onclick: async (event) => {
      event.preventDefault();
      try { await api.logout(); } finally { location.reload(); }
    },
  }, 'Log out');
  document.querySelector('.top nav').append(logout);
}).catch(() => {});
