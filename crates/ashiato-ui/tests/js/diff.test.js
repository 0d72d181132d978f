// Unit tests of trace comparison: node --test crates/ashiato-ui/tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareTraces } from '../../assets/diff.js';

function spans(rows) {
  return rows.map(([id, parent, service, name, start, duration]) => ({
    span_id: id, parent_span_id: parent, service, name,
    start_time_unix_nano: String(1767225600000000000n + BigInt(start) * 1000000n),
    duration_ns: String(duration * 1000000), status: { code: 'unset' },
  }));
}

const A = spans([
  ['r', null, 'api', 'GET /order', 0, 100],
  ['d', 'r', 'db', 'SELECT', 10, 20],
  ['c', 'r', 'cache', 'GET', 40, 5],
]);
const B = spans([
  ['r', null, 'api', 'GET /order', 0, 160],
  ['d', 'r', 'db', 'SELECT', 10, 80],
  ['p', 'r', 'pay', 'charge', 100, 30],
]);

test('added, removed and slower spans with self-time deltas', () => {
  const rows = compareTraces(A, B);
  const by = Object.fromEntries(rows.map((r) => [r.key, r]));
  assert.equal(by['/pay: charge'], undefined);
  const added = rows.find((r) => r.name === 'charge');
  assert.equal(added.status, 'added');
  assert.equal(added.selfDelta, 30e6);
  const removed = rows.find((r) => r.name === 'GET');
  assert.equal(removed.status, 'removed');
  assert.equal(removed.selfDelta, -5e6);
  const db = rows.find((r) => r.name === 'SELECT');
  assert.equal(db.status, 'slower');
  assert.equal(db.selfDelta, 60e6);
  // root self: A 100-25=75, B 160-110=50 → faster by 25 ms
  const root = rows.find((r) => r.name === 'GET /order');
  assert.equal(root.status, 'faster');
  assert.equal(root.selfDelta, -25e6);
  // structure changes come first
  assert.deepEqual(rows.slice(0, 2).map((r) => r.status).sort(), ['added', 'removed']);
});

test('identical traces compare as all same', () => {
  assert.ok(compareTraces(A, A).every((r) => r.status === 'same' && r.selfDelta === 0));
});
