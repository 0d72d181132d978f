// Formatting of times and durations. The API sends int64 nanoseconds as
// decimal strings: absolute times exceed 2^53, so they are parsed with
// BigInt and only differences (durations, offsets) become Numbers.

/** Unix-nano string (or BigInt) → milliseconds since the epoch, as a Number. */
export function nanosToMillis(nanos) {
  if (nanos == null || nanos === '') return NaN;
  return Number(BigInt(nanos) / 1000000n);
}

/** Unix-nano string → Date. */
export function nanosToDate(nanos) {
  return new Date(nanosToMillis(nanos));
}

/** Milliseconds since the epoch → unix-nano string, exact. */
export function millisToNanos(millis) {
  return (BigInt(Math.floor(millis)) * 1000000n).toString();
}

/** A nanosecond duration (Number or string) as "1.23 s", "45.6 ms", "789 µs". */
export function formatDuration(ns) {
  const value = Number(ns);
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  const sign = value < 0 ? '-' : '';
  if (abs >= 60e9) return `${sign}${(abs / 60e9).toFixed(1)} min`;
  if (abs >= 1e9) return `${sign}${trim(abs / 1e9)} s`;
  if (abs >= 1e6) return `${sign}${trim(abs / 1e6)} ms`;
  if (abs >= 1e3) return `${sign}${trim(abs / 1e3)} µs`;
  return `${sign}${abs} ns`;
}

function trim(x) {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** Local date and time, to the millisecond. */
export function formatTime(nanos) {
  const date = nanosToDate(nanos);
  if (Number.isNaN(date.getTime())) return '–';
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** "3 min ago", "2 h ago", … relative to `nowMs`. */
export function formatAgo(nanos, nowMs = Date.now()) {
  const seconds = Math.round((nowMs - nanosToMillis(nanos)) / 1000);
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** Rate per second as "12.3/s" or "4.5/min" for slow services. */
export function formatRate(perSecond) {
  if (!perSecond) return '0';
  if (perSecond >= 1) return `${trim(perSecond)}/s`;
  if (perSecond * 60 < 0.01) return '<0.01/min';
  return `${trim(perSecond * 60)}/min`;
}

export function formatPercent(fraction) {
  if (!fraction) return '0%';
  const pct = fraction * 100;
  return `${pct >= 10 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

/** Range names offered by the time pickers, in milliseconds. */
export const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };

/** Start/end unix-nano strings for a range name relative to now; empty = any time. */
export function rangeToNanos(range, nowMs = Date.now()) {
  const width = RANGES[range];
  if (!width) return {};
  return { start: millisToNanos(nowMs - width), end: millisToNanos(nowMs + 1000) };
}

/** A stable colour per service name, from a small palette. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#e15759', '#86bcb6', '#8cd17d', '#d4a6c8'];
export function serviceColor(name) {
  let hash = 2166136261;
  for (const ch of String(name)) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return PALETTE[hash % PALETTE.length];
}

/** CSS class for an OTLP severity number (17+ error, 13+ warn). */
export function severityClass(number) {
  if (number >= 21) return 'sev-fatal';
  if (number >= 17) return 'sev-error';
  if (number >= 13) return 'sev-warn';
  return 'sev-info';
}
