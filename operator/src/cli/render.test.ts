import { describe, expect, it } from '@jest/globals';
import { breakGlassStatus, FIXTURE_NOW, fixtureRollout, gateFailureStatus } from '../../../testkit/operator/cli/fixtures.js';
import {
  formatAge,
  formatNumber,
  formatSignal,
  paint,
  renderHistory,
  renderList,
  renderRollout,
  renderTable,
  renderTree,
  stripAnsi,
  useColor,
} from './render.js';

const plain = { color: false, now: FIXTURE_NOW };
const tty = { color: true, now: FIXTURE_NOW };
// eslint-disable-next-line no-control-regex -- asserting on escape sequences
const ESC = /\x1b\[/;

describe('useColor', () => {
  it.each<[boolean | undefined, Record<string, string | undefined>, boolean]>([
    [true, {}, true],
    [true, { NO_COLOR: '' }, true],
    [true, { NO_COLOR: '1' }, false],
    [false, {}, false],
    [undefined, {}, false],
  ])('isTTY=%s env=%j → %s', (isTTY, env, want) => {
    expect(useColor(isTTY, env)).toBe(want);
  });
});

describe('formatting', () => {
  it.each<[string | undefined, string]>([
    [undefined, '-'],
    ['garbage', '-'],
    ['2026-11-25T10:00:30Z', '0s'], // in the future: clock skew counts as 0
    ['2026-11-25T09:59:15Z', '45s'],
    ['2026-11-25T09:56:40Z', '3m20s'],
    ['2026-11-25T09:55:00Z', '5m'],
    ['2026-11-25T09:48:00Z', '12m'],
    ['2026-11-25T04:57:00Z', '5h3m'],
    ['2026-11-24T14:00:00Z', '20h'],
    ['2026-11-22T06:00:00Z', '3d4h'],
    ['2026-10-16T10:00:00Z', '40d'],
    ['2024-10-01T10:00:00Z', '2y'],
  ])('age of %s is %s', (from, want) => {
    expect(formatAge(from, FIXTURE_NOW)).toBe(want);
  });

  it('formats numbers and signals with their units', () => {
    expect(formatNumber(0.012345)).toBe('0.0123');
    expect(formatNumber(1.4567)).toBe('1.46');
    expect(formatNumber(3912.4)).toBe('3912');
    expect(formatSignal('apiServerP99Seconds', 0.315)).toBe('315ms');
    expect(formatSignal('apiServerP99Seconds', 1.42)).toBe('1.42s');
    expect(formatSignal('apiServerP99Seconds', 0)).toBe('0s');
    expect(formatSignal('coreDNSErrorRatio', 0.01)).toBe('1%');
    expect(formatSignal('apfRejectionsPerSecond', 0.5)).toBe('0.5/s');
    expect(formatSignal('apiServerRequestRate', 212.5)).toBe('212.5/s');
    expect(formatSignal('somethingElse', 3)).toBe('3');
  });

  it('paints only with colour on, and stripAnsi undoes it', () => {
    expect(paint(false, 'red', 'x')).toBe('x');
    expect(paint(true, 'red', 'x')).toBe('\x1b[31mx\x1b[0m');
    expect(stripAnsi(paint(true, 'bold', 'y'))).toBe('y');
  });

  it('draws trees and aligned tables', () => {
    expect(
      renderTree({
        line: 'root',
        notes: ['note'],
        children: [
          { line: 'a', children: [{ line: 'a1' }] },
          { line: 'b', notes: ['b note'] },
        ],
      }),
    ).toBe(['root', '│ note', '├── a', '│   └── a1', '└── b', '      b note', ''].join('\n'));
    expect(
      renderTable(
        ['A', 'BB'],
        [
          ['xxx', 'y'],
          [paint(true, 'red', 'z'), ''],
        ],
      ),
    ).toBe(['A     BB', 'xxx   y', `${paint(true, 'red', 'z')}`, ''].join('\n'));
  });
});

describe('renderRollout', () => {
  it('renders the gate-failure fixture as a plain tree when not on a TTY', () => {
    const text = renderRollout(fixtureRollout(gateFailureStatus()), plain);
    expect(ESC.test(text)).toBe(false);
    expect(text).toBe(
      [
        'collector-v2 (fleet)  RollingBack (GateFailed)  revision 5d2c9a1f ← 1f0e3b7c  0/3 clusters  health Fail  age 22m',
        '│ gate failed on prod-east-1: apiServerP99Seconds 1.42 > 0.315; rolling back newest-first',
        '├── stage canary (current)',
        '│   └── prod-east-1  RollingBack  reachable  nodes 8/150  step 2/4 at 5%',
        '│       │ relabelling 8 nodes back to 1f0e3b7c',
        '│       ├── gate ✗ Fail  2 consecutive  12s ago',
        '│       │   │ apiServerP99Seconds 1.42 > 0.315 (1.5 × baseline 0.21)',
        '│       │   ├── ✗ apiServerP99Seconds      1.42s     > 315ms',
        '│       │   ├── ✓ apiServerErrorRatio      0.12%     ≤ 1%',
        '│       │   ├── ✓ apfRejectionsPerSecond   0/s       ≤ 0.5/s',
        '│       │   ├── ✓ coreDNSErrorRatio        0.04%     ≤ 1%',
        '│       │   ├── ? coreDNSP99Seconds        no data   (bound 250ms)',
        '│       │   └── · apiServerRequestRate     212.5/s',
        '│       ├── baseline (10m ago): apiServerP99Seconds 210ms, apiServerErrorRatio 0.08%, apiServerRequestRate 180/s',
        '│       └── projection ✗ Fail  p99 at 100% 9.8s  3900/s',
        '└── stage rest',
        '    ├── prod-west-1  Pending  nodes 0/60',
        '    └── prod-north-1  Pending  nodes 0/20',
        '',
      ].join('\n'),
    );
  });

  it('colours the same tree on a TTY, and only colour differs', () => {
    const ro = fixtureRollout(gateFailureStatus());
    const coloured = renderRollout(ro, tty);
    expect(coloured).toContain(paint(true, 'yellow', 'RollingBack'));
    expect(coloured).toContain(paint(true, 'red', '✗ Fail'));
    expect(coloured).toContain(`${paint(true, 'green', '✓')} apiServerErrorRatio`);
    expect(stripAnsi(coloured)).toBe(renderRollout(ro, plain));
  });

  it('shows unreachability and break-glass counts', () => {
    const text = renderRollout(fixtureRollout(breakGlassStatus()), plain);
    expect(text).toContain('prod-east-1  BreakGlass  unreachable for 2m  nodes 38/150  step 3/4 at 25%');
    expect(text).toContain('gate ? NoData  1 consecutive  110s ago');
    expect(text).toContain('break-glass  36 stopped, 2 pending, 1 failed, 1 timed out of 38, attempt 3  revision 5d2c9a1f  (issued 60s ago)');
    expect(text).toContain('stop files written over ssh');
    // The nodes a person may have to go to by hand, named with their error.
    expect(text).toContain('prod-east-1-node-017: Permission denied (publickey)');
    expect(text).toContain('prod-east-1-node-090: no result within 10s');
    expect(text).toMatch(/└── stage rest\n {6}no clusters\n$/);
  });

  it('renders a new rollout without status, pending requests, spec.paused and a stale status', () => {
    const fresh = fixtureRollout({});
    delete fresh.status;
    expect(renderRollout(fresh, plain)).toBe(
      [
        'collector-v2 (fleet)  Pending  health Unknown  age 22m',
        '├── stage canary',
        '│     not planned yet',
        '└── stage rest',
        '      not planned yet',
        '',
      ].join('\n'),
    );
    const ro = fixtureRollout({ ...gateFailureStatus(), handledRequests: { abort: 'old' } });
    ro.metadata = { ...ro.metadata, generation: 2, annotations: { 'telemetry.rollout.dev/abort': 'new', 'telemetry.rollout.dev/retry': 'r1' } };
    ro.spec.paused = true;
    const text = renderRollout(ro, plain);
    expect(text).toContain('│ spec.paused is true');
    expect(text).toContain('│ pending: abort, retry (not yet handled by the operator)');
    expect(text).toContain('│ status is of generation 1, spec is at 2: the operator has not caught up');
  });

  it('puts clusters of a stage missing from the spec, and without a stage, at the end', () => {
    const s = gateFailureStatus();
    s.clusters = [
      { name: 'a', stage: 'legacy', phase: 'Succeeded', nodesTotal: 3, nodesUpdated: 3, step: 0, stepPercent: 100 },
      { name: 'b', phase: 'Pending' },
    ];
    const text = renderRollout(fixtureRollout(s), plain);
    expect(text).toContain('├── stage legacy\n│   └── a  Succeeded  nodes 3/3  step 1/?');
    expect(text).toMatch(/└── no stage\n {4}└── b {2}Pending {2}nodes 0\/-\n$/);
  });
});

describe('renderList and renderHistory', () => {
  it('renders a table, with NAMESPACE only for all namespaces', () => {
    const items = [fixtureRollout(gateFailureStatus()), fixtureRollout({}, 'fresh', 'other')];
    expect(renderList(items, { ...plain, allNamespaces: false })).toBe(
      [
        'NAME           PHASE         REASON       STAGE    PROGRESS       HEALTH   REVISION   AGE',
        'collector-v2   RollingBack   GateFailed   canary   0/3 clusters   Fail     5d2c9a1f   22m',
        'fresh          -             -            -        -              -        -          22m',
        '',
      ].join('\n'),
    );
    const all = renderList(items, { ...tty, allNamespaces: true });
    expect(stripAnsi(all).split('\n')[0]).toMatch(/^NAMESPACE {3}NAME/);
    expect(all).toContain(paint(true, 'red', 'Fail'));
    expect(renderList([], { ...plain, allNamespaces: true })).toBe('');
  });

  it('renders history oldest first with ages', () => {
    const text = renderHistory(gateFailureStatus().history ?? [], plain);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+AGE\s+REASON\s+CLUSTER\s+MESSAGE$/);
    expect(lines[1]).toMatch(/^2026-11-25T09:40:00Z\s+20m\s+Planning\s+-\s+planned 3 clusters/);
    expect(lines[4]).toMatch(/^2026-11-25T09:59:48Z\s+12s\s+GateFailed\s+prod-east-1\s+apiServerP99Seconds 1.42 > 0.315; rolling back$/);
    expect(renderHistory([], plain)).toBe('');
  });
});
