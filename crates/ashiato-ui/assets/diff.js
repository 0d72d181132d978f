// Trace comparison, pure (unit tested): spans are matched by their path of
// "service: name" from the root, so repeated calls at the same place are
// compared as a group (count, total duration, total self time).

import { buildTree } from './tree.js';

/** Map from path key to { key, depth, service, name, count, duration, self }. */
export function pathGroups(spans) {
  const tree = buildTree(spans);
  const groups = new Map();
  const stack = tree.roots.map((node) => ({ node, prefix: '' }));
  while (stack.length) {
    const { node, prefix } = stack.pop();
    const key = `${prefix}/${node.service}: ${node.span.name}`;
    let group = groups.get(key);
    if (!group) {
      group = { key, depth: node.depth, service: node.service, name: node.span.name, count: 0, duration: 0, self: 0, order: groups.size };
      groups.set(key, group);
    }
    group.count += 1;
    group.duration += node.duration;
    group.self += node.self;
    for (const child of node.children) stack.push({ node: child, prefix: key });
  }
  return groups;
}

/**
 * Compares trace A (baseline) with trace B. Each row: { key, service, name,
 * depth, status: 'added'|'removed'|'slower'|'faster'|'same', a, b, selfDelta,
 * durationDelta }. `threshold` (fraction) decides slower/faster vs same.
 * Sorted: changed structure first, then by |self-time delta|.
 */
export function compareTraces(spansA, spansB, threshold = 0.1) {
  const a = pathGroups(spansA);
  const b = pathGroups(spansB);
  const rows = [];
  for (const [key, left] of a) {
    const right = b.get(key);
    if (!right) {
      rows.push({ key, service: left.service, name: left.name, depth: left.depth, status: 'removed', a: left, b: null, selfDelta: -left.self, durationDelta: -left.duration });
      continue;
    }
    const selfDelta = right.self - left.self;
    const base = Math.max(left.self, 1);
    let status = 'same';
    if (selfDelta > base * threshold) status = 'slower';
    else if (-selfDelta > base * threshold) status = 'faster';
    if (right.count !== left.count && status === 'same') status = right.count > left.count ? 'added' : 'removed';
    rows.push({ key, service: left.service, name: left.name, depth: left.depth, status, a: left, b: right, selfDelta, durationDelta: right.duration - left.duration });
  }
  for (const [key, right] of b) {
    if (!a.has(key)) rows.push({ key, service: right.service, name: right.name, depth: right.depth, status: 'added', a: null, b: right, selfDelta: right.self, durationDelta: right.duration });
  }
  const rank = { added: 0, removed: 0, slower: 1, faster: 1, same: 2 };
  rows.sort((x, y) => rank[x.status] - rank[y.status] || Math.abs(y.selfDelta) - Math.abs(x.selfDelta) || x.key.localeCompare(y.key));
  return rows;
}
