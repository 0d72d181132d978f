// Trace structure, pure and DOM-free (unit tested with node --test):
// the span tree, self time, the critical path and the visible rows of a
// partly collapsed waterfall. Iterative throughout, so a 100,000-span chain
// cannot overflow the stack.

/**
 * Builds the tree of a trace from API spans. Times become Numbers relative
 * to the earliest start (exact: offsets fit in 2^53 ns ≈ 104 days).
 * Returns { nodes, roots, byId, start, end, base } where each node is
 * { span, id, parentId, children, depth, start, end, duration, error, service, self, index }.
 */
export function buildTree(spans) {
  let base = null;
  for (const span of spans) {
    const start = BigInt(span.start_time_unix_nano);
    if (base === null || start < base) base = start;
  }
  base = base ?? 0n;
  const nodes = spans.map((span) => {
    const start = Number(BigInt(span.start_time_unix_nano) - base);
    const duration = Number(span.duration_ns);
    return {
      span,
      id: span.span_id,
      parentId: span.parent_span_id,
      children: [],
      depth: 0,
      start,
      end: start + duration,
      duration,
      error: span.status && span.status.code === 'error',
      service: span.service,
      self: duration,
      index: -1,
    };
  });
  const byId = new Map();
  for (const node of nodes) if (!byId.has(node.id)) byId.set(node.id, node);
  const roots = [];
  for (const node of nodes) {
    const parent = node.parentId ? byId.get(node.parentId) : undefined;
    if (parent && parent !== node && byId.get(node.id) === node) parent.children.push(node);
    else roots.push(node);
  }
  const byStart = (a, b) => a.start - b.start || a.end - b.end;
  roots.sort(byStart);
  // depth-first from the roots; nodes never reached sit on a parent cycle and become roots
  const seen = new Set();
  const visit = (root) => {
    const stack = [root];
    root.depth = 0;
    while (stack.length) {
      const node = stack.pop();
      if (seen.has(node)) continue;
      seen.add(node);
      node.children.sort(byStart);
      node.self = selfTime(node);
      for (const child of node.children) {
        child.depth = node.depth + 1;
        stack.push(child);
      }
    }
  };
  roots.forEach(visit);
  for (const node of nodes) {
    if (!seen.has(node) && byId.get(node.id) === node) {
      roots.push(node);
      visit(node);
    }
  }
  let start = Infinity;
  let end = -Infinity;
  for (const node of nodes) {
    start = Math.min(start, node.start);
    end = Math.max(end, node.end);
  }
  if (!nodes.length) start = end = 0;
  return { nodes, roots, byId, start, end, base };
}

/** Duration not covered by any child (children clipped to the parent). */
export function selfTime(node) {
  let covered = 0;
  let cursor = node.start;
  for (const child of node.children) {
    const from = Math.max(child.start, cursor);
    const to = Math.min(child.end, node.end);
    if (to > from) {
      covered += to - from;
      cursor = to;
    }
  }
  return Math.max(node.duration - covered, 0);
}

/**
 * The critical path: from the root that ends last, walk back from its end;
 * at each step the child that finished last before the cursor is what the
 * parent was waiting for, so it is on the path and the cursor moves to its
 * start. Returns a Set of span ids.
 */
export function criticalPath(tree) {
  const path = new Set();
  if (!tree.roots.length) return path;
  let top = tree.roots[0];
  for (const root of tree.roots) if (root.end > top.end) top = root;
  const work = [top];
  while (work.length) {
    const node = work.pop();
    if (path.has(node.id)) continue;
    path.add(node.id);
    let cursor = node.end;
    const byEnd = [...node.children].sort((a, b) => b.end - a.end);
    for (const child of byEnd) {
      if (child.end <= cursor && child.start >= node.start - 1) {
        // an async child that outlives its parent is not waited for
        work.push(child);
        cursor = child.start;
      }
    }
  }
  return path;
}

/**
 * The rows a waterfall shows: a pre-order walk that skips the subtrees of
 * collapsed nodes. Sets each node's `index` into the returned array.
 */
export function visibleRows(tree, collapsed) {
  const rows = [];
  const stack = [];
  for (let i = tree.roots.length - 1; i >= 0; i--) stack.push(tree.roots[i]);
  const seen = new Set();
  while (stack.length) {
    const node = stack.pop();
    if (seen.has(node)) continue;
    seen.add(node);
    node.index = rows.length;
    rows.push(node);
    if (!collapsed.has(node.id)) {
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
    }
  }
  return rows;
}

/** Number of spans under a node (itself excluded). */
export function descendantCount(node) {
  let count = 0;
  const stack = [...node.children];
  while (stack.length) {
    const next = stack.pop();
    count += 1;
    stack.push(...next.children);
  }
  return count;
}

/** Nice time-axis ticks for a span of `total` ns: [{at, label}] with `at` in ns. */
export function ticks(total, count = 6) {
  if (!(total > 0)) return [{ at: 0 }];
  const raw = total / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const out = [];
  for (let at = 0; at <= total + 1e-9; at += step) out.push({ at });
  return out;
}
