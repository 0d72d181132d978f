// Small SVG charts: sparklines, bar histograms and the trace scatter plot.

import { h } from './dom.js';
import { formatDuration, formatTime, nanosToMillis } from './format.js';

/** A line sparkline of numbers. */
export function sparkline(values, { width = 120, height = 24, label = '' } = {}) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`);
  return h('svg:svg', { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label },
    values.length ? h('svg:path', { d: `M${points.join('L')}` }) : null);
}

/** Vertical bars, e.g. an issue's hourly counts. */
export function bars(values, { width = 240, height = 28, label = '', className = 'spark' } = {}) {
  const max = Math.max(1, ...values);
  const w = width / Math.max(values.length, 1);
  return h('svg:svg', { class: className, width, height, viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label },
    values.map((v, i) => {
      const bh = v ? Math.max(1, (v / max) * height) : 0;
      return h('svg:rect', { x: (i * w).toFixed(2), y: (height - bh).toFixed(2), width: Math.max(w - 0.5, 0.5).toFixed(2), height: bh.toFixed(2) },
        h('svg:title', {}, String(v)));
    }));
}

/** Duration over start time; a click on a dot calls onPick(trace). */
export function scatter(traces, onPick) {
  // the plot keeps its aspect ratio (it scales with the page width), so dots stay round
  const width = 1200;
  const height = 170;
  const pad = { l: 56, r: 10, t: 8, b: 20 };
  if (!traces.length) return null;
  const xs = traces.map((t) => nanosToMillis(t.start_time_unix_nano));
  const ys = traces.map((t) => Number(t.duration_ns));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs, xMin + 1);
  const yMax = Math.max(...ys, 1);
  const x = (v) => pad.l + ((v - xMin) / (xMax - xMin)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / yMax) * (height - pad.t - pad.b);
  return h('svg:svg', { class: 'scatter', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'trace duration over time' },
    h('svg:text', { x: 4, y: pad.t + 8 }, formatDuration(yMax)),
    h('svg:text', { x: 4, y: height - pad.b }, '0'),
    h('svg:text', { x: pad.l, y: height - 4 }, formatTime(pickBy(traces, xs, (a, b) => a < b))),
    h('svg:text', { x: width - pad.r, y: height - 4, 'text-anchor': 'end' }, formatTime(pickBy(traces, xs, (a, b) => a > b))),
    traces.map((trace, i) => h('svg:circle', {
      cx: x(xs[i]).toFixed(1), cy: y(ys[i]).toFixed(1), r: 5,
      class: trace.error_count > 0 ? 'dot error' : 'dot',
      'data-trace': trace.trace_id,
      onclick: () => onPick(trace),
    }, h('svg:title', {}, `${trace.root_service}: ${trace.root_name} · ${formatDuration(ys[i])}`))),
  );
}

/** The start time of the trace whose x wins `better` (earliest or latest). */
function pickBy(traces, xs, better) {
  let best = 0;
  xs.forEach((v, i) => { if (better(v, xs[best])) best = i; });
  return traces[best].start_time_unix_nano;
}
