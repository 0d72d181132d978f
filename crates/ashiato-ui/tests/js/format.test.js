// Unit tests of time and duration formatting: node --test crates/ashiato-ui/tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, millisToNanos, nanosToMillis, formatPercent, formatRate } from '../../assets/format.js';

test('unix nanos beyond 2^53 convert exactly through BigInt', () => {
  assert.equal(nanosToMillis('1767225600123456789'), 1767225600123);
  assert.equal(millisToNanos(1767225600123), '1767225600123000000');
});

test('durations pick a readable unit', () => {
  assert.equal(formatDuration(0), '0 ns');
  assert.equal(formatDuration(1500), '1.50 µs');
  assert.equal(formatDuration('12345678'), '12.3 ms');
  assert.equal(formatDuration(2.5e9), '2.50 s');
  assert.equal(formatDuration(-3e6), '-3.00 ms');
});

test('rates and percentages', () => {
  assert.equal(formatRate(0.5), '30.0/min');
  assert.equal(formatRate(12.34), '12.3/s');
  assert.equal(formatPercent(0.0123), '1.2%');
  assert.equal(formatPercent(0), '0%');
});

test('tiny rates do not read as zero', () => {
  assert.equal(formatRate(1 / 86400), '<0.01/min');
});
