// Unit tests of the waterfall's pure logic: node --test crates/ashiato-ui/tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, criticalPath, selfTime, visibleRows, descendantCount, ticks } from '../../assets/tree.js';

const BASE = 1767225600000000000n;

/** [id, parent, service, name, startMs, durationMs, error?] → API span */
function spans(rows) {
  return rows.map(([id, parent, service, name, start, duration, error]) => ({
    span_id: id,
    parent_span_id: parent,
    service,
    name,
    start_time_unix_nano: (BASE + BigInt(start) * 1000000n).toString(),
    duration_ns: String(duration * 1000000),
    status: { code: error ? 'error' : 'unset' },
  }));
}

// root 0..100: a 10..40 (with a1 15..35), b 20..90, c 50..60 (parallel with b)
const TRACE = spans([
  ['r', null, '注文', 'GET /注文', 0, 100],
  ['a', 'r', 'auth', 'check', 10, 30],
  ['a1', 'a', 'db', 'SELECT', 15, 20],
  ['b', 'r', 'pay', 'charge', 20, 70, true],
  ['c', 'r', 'mail', 'send', 50, 10],
]);

test('builds the tree with depth, sorted children and exact offsets', () => {
  const tree = buildTree(TRACE);
  assert.equal(tree.roots.length, 1);
  const root = tree.roots[0];
  assert.deepEqual(root.children.map((n) => n.id), ['a', 'b', 'c']);
  assert.equal(tree.byId.get('a1').depth, 2);
  assert.equal(tree.byId.get('b').start, 20e6);
  assert.equal(tree.end, 100e6);
  assert.equal(tree.byId.get('b').error, true);
  assert.equal(tree.base, BASE);
});

test('self time subtracts the union of children', () => {
  const tree = buildTree(TRACE);
  // children cover 10..90 → 80 ms covered of 100
  assert.equal(tree.byId.get('r').self, 20e6);
  assert.equal(tree.byId.get('a').self, 10e6);
  assert.equal(selfTime(tree.byId.get('a1')), 20e6);
});

test('critical path follows what the parent waited for', () => {
  const path = criticalPath(buildTree(TRACE));
  // b ends last (90), before it a ends at 40 ≤ b.start? no (40 > 20): a is not on the path
  assert.deepEqual([...path].sort(), ['b', 'r']);
  const sequential = criticalPath(buildTree(spans([
    ['r', null, 's', 'root', 0, 100],
    ['x', 'r', 's', 'x', 0, 30],
    ['y', 'r', 's', 'y', 30, 60],
    ['y1', 'y', 's', 'y1', 40, 50],
    ['z', 'r', 's', 'z', 5, 10],
  ])));
  assert.deepEqual([...sequential].sort(), ['r', 'x', 'y', 'y1']);
});

test('collapsing hides a subtree and orphans become roots', () => {
  const tree = buildTree([...TRACE, ...spans([['o', 'missing', 'x', 'orphan', 5, 1]])]);
  assert.deepEqual(tree.roots.map((n) => n.id), ['r', 'o']);
  assert.deepEqual(visibleRows(tree, new Set()).map((n) => n.id), ['r', 'a', 'a1', 'b', 'c', 'o']);
  assert.deepEqual(visibleRows(tree, new Set(['a'])).map((n) => n.id), ['r', 'a', 'b', 'c', 'o']);
  assert.equal(descendantCount(tree.byId.get('r')), 4);
});

test('a parent cycle does not hang and every span is shown once', () => {
  const tree = buildTree(spans([['p', 'q', 's', 'p', 0, 1], ['q', 'p', 's', 'q', 0, 1]]));
  assert.equal(visibleRows(tree, new Set()).length, 2);
});

test('100,000-span chain and fan-out build without recursion limits', () => {
  const rows = [['s0', null, 's', 'root', 0, 200000]];
  for (let i = 1; i < 100000; i++) rows.push([`s${i}`, i % 2 ? `s${i - 1}` : 's0', 's', `op${i % 7}`, i, 200000 - i]);
  const tree = buildTree(spans(rows));
  assert.equal(visibleRows(tree, new Set()).length, 100000);
  assert.ok(criticalPath(tree).size > 1);
});

test('axis ticks are round numbers covering the range', () => {
  const out = ticks(100e6).map((t) => t.at);
  assert.deepEqual(out, [0, 20e6, 40e6, 60e6, 80e6, 100e6]);
});
