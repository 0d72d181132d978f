// Drives the ashiato web UI in Debian's chromium (playwright-core, never
// Playwright's own browser download) against a running server loaded with
// `ashiato demo --seed 1` and a synthetic 10,000-span trace.
//
// Environment: ASHIATO_URL (required), BIG_TRACE_ID (the 10k-span trace),
// ASHIATO_TEST_OUTPUT (default ./test-output; screenshots go to
// <it>/screenshots, the render benchmark to <it>/ui-bench.txt),
// CHROMIUM (default /usr/bin/chromium). Exit code 0 only if every check passed.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.ASHIATO_URL;
const BIG = process.env.BIG_TRACE_ID;
const OUT = process.env.ASHIATO_TEST_OUTPUT || 'test-output';
const SHOTS = join(OUT, 'screenshots');
assert.ok(BASE, 'ASHIATO_URL must point at a running ashiato server');
mkdirSync(SHOTS, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'ashiato-chromium-'));
let context;

before(async () => {
  // a fresh, empty profile per run (Playwright passes it as --user-data-dir)
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
    locale: 'ja-JP',
  });
});

after(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

async function api(path, init) {
  const response = await fetch(`${BASE}/api/v1${path}`, init);
  return { status: response.status, body: await response.json().catch(() => null) };
}

/** A page that records console errors and uncaught exceptions. */
async function openPage({ allow = [] } = {}) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const url = message.location()?.url || '';
    if (allow.some((pattern) => pattern.test(url) || pattern.test(message.text()))) return;
    problems.push(`console: ${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => problems.push(`exception: ${error.message}`));
  page.problems = problems;
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

function clean(page) {
  assert.deepEqual(page.problems, [], 'no console errors');
}

test('traces search renders results and the scatter plot; a dot opens its trace', async () => {
  const page = await openPage();
  // filters round-trip through the URL: errors only, then back
  await page.goto(`${BASE}/traces`);
  await page.waitForSelector('#trace-results tbody tr');
  await page.check('input[name="error"]');
  await page.click('button[type="submit"]');
  await page.waitForSelector('#trace-results[data-search*="error=1"] tbody tr');
  const errorRows = await page.locator('#trace-results tbody tr').count();
  assert.equal(await page.locator('#trace-results tbody tr .badge.err').count(), errorRows, 'only traces with errors');
  await page.goBack();
  await page.waitForSelector('#trace-results[data-search=""] tbody tr');
  assert.ok(await page.locator('svg.scatter .dot').count() > 0);
  await shot(page, '01-traces');
  // the last dot is painted on top of any it overlaps
  await page.locator('svg.scatter .dot').last().click();
  await page.waitForSelector('.waterfall .row');
  assert.match(new URL(page.url()).pathname, /^\/trace\/[0-9a-f]{32}$/);
  await page.goBack();
  await page.waitForSelector('#trace-results tbody tr');
  assert.equal(new URL(page.url()).pathname, '/traces');
  clean(page);
  await page.close();
});

test('search → trace → span detail → the span\'s log → its trace', async () => {
  const { body } = await api('/logs?service=payments&limit=100');
  const log = body.logs.find((l) => l.trace_id && l.span_id);
  assert.ok(log, 'the demo sends payment logs with trace and span ids');
  const page = await openPage();
  await page.goto(`${BASE}/traces?service=payments`);
  await page.waitForSelector('#trace-results tbody tr');
  const row = page.locator(`#trace-results tr[data-trace="${log.trace_id}"]`);
  if (await row.count()) await row.first().click();
  else await page.goto(`${BASE}/trace/${log.trace_id}`);
  await page.waitForSelector(`.row[data-span="${log.span_id}"]`);
  await page.locator(`.row[data-span="${log.span_id}"] .name`).click();
  await page.waitForSelector('#span-detail h3');
  assert.equal(new URL(page.url()).searchParams.get('span'), log.span_id, 'the selected span is in the URL');
  await page.waitForSelector('#span-logs .log-body');
  assert.ok((await page.textContent('#span-logs')).includes(typeof log.body === 'string' ? log.body : ''));
  await shot(page, '02-trace-detail');
  await page.locator('#span-logs a.log-body').first().click();
  await page.waitForSelector('#log-results tbody tr');
  await shot(page, '03-logs');
  await page.locator('#log-results a.trace-link').first().click();
  await page.waitForSelector('.waterfall .row.sel');
  assert.equal(new URL(page.url()).pathname, `/trace/${log.trace_id}`);
  clean(page);
  await page.close();
});

test('waterfall keyboard navigation, collapse and a reloadable span URL', async () => {
  const { body } = await api('/traces?service=checkout&limit=1');
  const traceId = body.traces[0].trace_id;
  const page = await openPage();
  await page.goto(`${BASE}/trace/${traceId}`);
  await page.waitForSelector('.waterfall .row');
  const rowsBefore = await page.locator('.waterfall .row').count();
  await page.focus('.waterfall');
  await page.keyboard.press('ArrowDown');
  const first = new URL(page.url()).searchParams.get('span');
  await page.keyboard.press('ArrowDown');
  const second = new URL(page.url()).searchParams.get('span');
  assert.ok(first && second && first !== second, 'arrows move the selection');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowLeft');
  assert.ok(await page.locator('.waterfall .row').count() < rowsBefore, 'left collapses the root');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.locator('.waterfall .row').count(), rowsBefore);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#span-detail h3');
  assert.ok(await page.locator('.bar.crit').count() > 0, 'critical path is marked');
  // find in trace: typing highlights, Enter jumps to the match and opens it
  await page.fill('input[aria-label="find span"]', 'SELECT');
  assert.ok(await page.locator('.waterfall .row.match').count() > 0);
  await page.press('input[aria-label="find span"]', 'Enter');
  await page.waitForFunction(() => document.querySelector('#span-detail h3')?.textContent.includes('SELECT'));
  await page.reload();
  await page.waitForSelector('.waterfall .row.sel');
  clean(page);
  await page.close();
});

test('trace comparison shows self-time deltas', async () => {
  const { body } = await api('/traces?service=checkout&limit=2');
  const [a, b] = body.traces;
  const page = await openPage();
  await page.goto(`${BASE}/compare?a=${a.trace_id}&b=${b.trace_id}`);
  await page.waitForSelector('#compare-table tbody tr');
  assert.match(await page.textContent('#compare-table'), /Self Δ/);
  await shot(page, '04-compare');
  // picking: from a trace, "compare with another trace" lists the same operation
  await page.goto(`${BASE}/trace/${a.trace_id}`);
  await page.click('text=Compare with another trace…');
  await page.waitForSelector('#compare-pick tr');
  await page.locator('#compare-pick tr').first().click();
  await page.waitForSelector('#compare-table tbody tr');
  assert.equal(new URL(page.url()).searchParams.get('a'), a.trace_id);
  clean(page);
  await page.close();
});

test('services page shows ingest aggregates and operations', async () => {
  const page = await openPage();
  await page.goto(`${BASE}/services?range=24h`);
  await page.waitForSelector('#service-table tbody tr');
  assert.ok(await page.locator('#service-table svg.spark').count() > 0);
  await page.locator('#service-table tr[data-service="payments"] a').click();
  await page.waitForSelector('#operation-table tbody tr');
  assert.equal(new URL(page.url()).searchParams.get('service'), 'payments');
  // sorting by p99 keeps the selection and orders the rows
  await page.click('#service-table th a[title="sort by p99"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('sort') === 'p99');
  await page.waitForSelector('#operation-table tbody tr');
  await shot(page, '05-services');
  clean(page);
  await page.close();
});

test('issues: list, detail, sample → trace, resolve changes the API status', async () => {
  const list = await api('/issues');
  const page = await openPage({ allow: list.status === 404 ? [/\/api\/v1\/issues/, /404/] : [] });
  await page.goto(`${BASE}/issues?status=all`);
  if (list.status === 404) {
    await page.waitForSelector('text=Error tracking is not available yet');
    await shot(page, '06-issues');
    clean(page);
    await page.close();
    return;
  }
  assert.equal(list.status, 200);
  await page.waitForSelector('#issue-list tbody tr, .empty');
  await shot(page, '06-issues');
  // the demo's failed payments are span exceptions: their samples carry a trace
  let issue;
  for (const candidate of list.body.issues) {
    const { body: detail } = await api(`/issues/${encodeURIComponent(candidate.id)}`);
    if ((detail.samples || []).some((sample) => sample.trace_id)) {
      issue = candidate;
      break;
    }
  }
  assert.ok(issue, `an issue with a traced sample among ${list.body.issues.length}`);
  await page.goto(`${BASE}/issues/${encodeURIComponent(issue.id)}`);
  await page.waitForSelector('#issue-status');
  await shot(page, '07-issue-detail');
  if (issue.status !== 'open') {
    await page.click('#reopen');
    await page.waitForSelector('#resolve');
  }
  await page.click('#resolve');
  await page.waitForFunction(() => document.querySelector('#issue-status')?.textContent === 'resolved');
  const detail = await api(`/issues/${encodeURIComponent(issue.id)}`);
  assert.equal(detail.body.status, 'resolved', 'resolving in the UI changes the API');
  await page.click('#reopen');
  await page.waitForFunction(() => document.querySelector('#issue-status')?.textContent === 'open');
  const sample = page.locator('#issue-samples a.sample-trace').first();
  const href = await sample.getAttribute('href');
  await sample.click();
  await page.waitForSelector('.waterfall .row.sel');
  assert.equal(new URL(page.url()).pathname, href.split('?')[0], 'the sample opens its trace');
  await shot(page, '10-issue-sample-trace');
  clean(page);
  await page.close();
});

test('a 10,000-span trace: first screen time is measured and reported', { skip: !BIG && 'BIG_TRACE_ID not set' }, async () => {
  const page = await openPage();
  await page.goto(`${BASE}/traces`);
  await page.waitForSelector('#trace-results');
  const started = Date.now();
  await page.evaluate((id) => {
    history.pushState(null, '', `/trace/${id}`);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, BIG);
  await page.waitForFunction((id) => document.body.dataset.traceRendered === id, BIG, { timeout: 60000 });
  const wall = Date.now() - started;
  const inPage = Number(await page.evaluate(() => document.body.dataset.traceRenderMs));
  const phases = await page.evaluate(() => `fetch+parse ${document.body.dataset.traceFetchMs} ms, tree+critical path ${document.body.dataset.traceBuildMs} ms`);
  const rows = await page.locator('.waterfall .row').count();
  assert.ok(rows > 0 && rows < 200, `only the visible rows are in the DOM (${rows})`);
  // scrolling to the end stays responsive and renders the last rows
  await page.evaluate(() => { const w = document.querySelector('.waterfall'); w.scrollTop = w.scrollHeight; });
  await page.waitForTimeout(100);
  assert.ok(await page.locator('.waterfall .row').count() > 0);
  await shot(page, '08-trace-10k');
  const report = `10,000-span trace first screen: ${wall} ms wall (click to painted rows), ${inPage.toFixed(0)} ms in page (${phases}, then paint); ${rows} rows in the DOM\n`;
  process.stdout.write(report);
  writeFileSync(join(OUT, 'ui-bench.txt'), report);
  clean(page);
  await page.close();
});

/** A synthetic trace of `count` spans (fan-out 10), as /api/v1/traces/{id} answers. */
function syntheticTrace(traceId, count) {
  const base = BigInt(Date.now()) * 1000000n;
  const spans = [];
  for (let i = 0; i < count; i++) {
    const start = base + BigInt(i * 20000);
    spans.push({
      span_id: (i + 1).toString(16).padStart(16, '0'),
      parent_span_id: i === 0 ? null : (Math.floor((i - 1) / 10) + 1).toString(16).padStart(16, '0'),
      service: ['倉庫', 'catalog', 'pricing'][i % 3], name: `op ${i % 40}`, kind: 'internal',
      start_time_unix_nano: start.toString(), duration_ns: String(i === 0 ? count * 20000 + 1000 : 100000),
      status: { code: i % 101 === 7 ? 'error' : 'unset', message: '' },
      attributes: { 'item.index': i }, resource: { 'service.name': 'x' }, scope: { name: 's', version: '' }, events: [], links: [],
    });
  }
  return JSON.stringify({ trace_id: traceId, spans });
}

test('a 100,000-span trace renders and stays responsive (served by a routed fixture)', async () => {
  const id = 'f'.repeat(32);
  const body = syntheticTrace(id, 100000);
  const page = await openPage();
  await page.route(`**/api/v1/traces/${id}`, (route) => route.fulfill({ status: 200, contentType: 'application/json', body }));
  await page.route(`**/api/v1/logs?**`, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: '{"logs":[]}' }));
  await page.goto(`${BASE}/traces`);
  await page.waitForSelector('#trace-results');
  const started = Date.now();
  await page.evaluate((traceId) => {
    history.pushState(null, '', `/trace/${traceId}`);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, id);
  await page.waitForFunction((traceId) => document.body.dataset.traceRendered === traceId, id, { timeout: 120000 });
  const wall = Date.now() - started;
  const phases = await page.evaluate(() => `fetch+parse ${document.body.dataset.traceFetchMs} ms, tree+critical path ${document.body.dataset.traceBuildMs} ms`);
  // responsive: a key press and a collapse of the root answer promptly
  await page.focus('.waterfall');
  const keyStarted = Date.now();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction(() => document.querySelectorAll('.waterfall .row').length === 1);
  const collapse = Date.now() - keyStarted;
  const report = `100,000-span trace (routed fixture) first screen: ${wall} ms wall (${phases}); select + collapse root: ${collapse} ms\n`;
  process.stdout.write(report);
  writeFileSync(join(OUT, 'ui-bench-100k.txt'), report);
  clean(page);
  await page.close();
});

test('dark theme screenshot of a trace', async () => {
  const { body } = await api('/traces?error=true&limit=1');
  const page = await openPage();
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${BASE}/trace/${body.traces[0].trace_id}`);
  await page.waitForSelector('.waterfall .row');
  await page.locator('.waterfall .row.error .name').first().click();
  await page.waitForSelector('#span-detail h3');
  await shot(page, '09-trace-dark');
  clean(page);
  await page.close();
});

test('empty-state and not-found pages render without errors', async () => {
  const page = await openPage({ allow: [/\/api\/v1\/traces\/0+1/, /404/] });
  await page.goto(`${BASE}/trace/00000000000000000000000000000001`);
  await page.waitForSelector('text=Trace not found');
  await page.goto(`${BASE}/logs?q=${encodeURIComponent('存在しない文字列')}`);
  await page.waitForSelector('text=No log matches');
  clean(page);
  await page.close();
});

test('a server without error tracking: the issues page says so', async () => {
  const page = await openPage({ allow: [/\/api\/v1\/issues/, /404/] });
  await page.route('**/api/v1/issues**', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"no such api endpoint"}' }));
  await page.goto(`${BASE}/issues`);
  await page.waitForSelector('text=Error tracking is not available yet');
  await page.goto(`${BASE}/issues/abc`);
  await page.waitForSelector('text=Error tracking is not available yet');
  clean(page);
  await page.close();
});
