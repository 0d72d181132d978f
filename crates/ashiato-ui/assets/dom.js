// A tiny element builder: text always goes through text nodes, never
// innerHTML, so names and messages from telemetry cannot inject markup.

import { api } from './api.js';

/** h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An empty-state box telling the user how to get data in. */
export function emptyState(title, ...lines) {
  const origin = location.hostname || '127.0.0.1';
  return h('div', { class: 'empty' },
    h('h2', {}, title),
    ...lines.map((line) => h('p', {}, line)),
    h('p', {}, 'Point an OpenTelemetry SDK at the OTLP endpoint of this server (gRPC port 4317, HTTP port 4318 by default):'),
    h('pre', {}, `export OTEL_EXPORTER_OTLP_ENDPOINT=http://${origin}:4318\nexport OTEL_SERVICE_NAME=my-service`),
    h('p', {}, 'or load example traffic (an order flow over four services) with:'),
    h('pre', {}, 'ashiato demo'),
  );
}

/** A paragraph for a failed request; a 401 (tokens on, not logged in)
 * shows the login form instead. */
export function errorBox(error) {
  if (error && error.status === 401) return loginForm();
  return h('p', { class: 'err-text', role: 'alert' }, `Request failed: ${error.message}`);
}

/** The login form: a read or admin token becomes an HttpOnly session
 * cookie (the token itself is never stored in the browser); on success the
 * current page reloads with its data. */
export function loginForm() {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, placeholder: 'ashiato_…', 'aria-label': 'token' });
  const message = h('p', { class: 'err-text', role: 'alert' });
  const form = h('form', {
    class: 'login',
    onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = '';
      try {
        await api.login(input.value.trim());
        location.reload();
      } catch (error) {
        message.textContent = `Login failed: ${error.message}`;
      }
    },
  },
  h('h2', {}, 'Log in'),
  h('p', {}, 'This server needs a token with the read or admin scope (create one with ', h('code', {}, 'ashiato token create --scope read --name NAME'), ').'),
  input, ' ', h('button', { type: 'submit' }, 'Log in'),
  message);
  return form;
}
