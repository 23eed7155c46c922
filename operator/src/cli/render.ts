/**
 * Text rendering of the plugin's output, as pure functions of the objects, the current time and a
 * colour switch (so every shape is unit-tested, on a "TTY" and off it). Colour is ANSI SGR and only
 * ever added by {@link paint}; with `color: false` the output is plain text (Unicode tree lines and
 * ✓/✗ marks stay: they are text, not terminal control).
 */
import type { ClusterStatus, GateResult, HistoryEntry, TelemetryRollout } from '../api/types.generated.js';
import { pendingRequests } from './controls.js';

/** Rendering options shared by every renderer. */
export interface RenderOptions {
  /** Emit ANSI colours (only on a TTY with NO_COLOR unset; see {@link useColor}). */
  color: boolean;
  /** "Now", for ages. */
  now: Date;
}

/**
 * Whether to colour: only when writing to a terminal and NO_COLOR is unset or empty
 * (https://no-color.org: "when present and not an empty string").
 */
export function useColor(isTTY: boolean | undefined, env: Record<string, string | undefined>): boolean {
  return isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

const SGR = { bold: '1', dim: '2', red: '31', green: '32', yellow: '33', blue: '34', cyan: '36' } as const;

/** A colour (or weight) {@link paint} knows. */
export type Paint = keyof typeof SGR;

/** Wraps `text` in an ANSI SGR sequence when `color` is on; returns it unchanged otherwise. */
export function paint(color: boolean, style: Paint, text: string): string {
  return color && text !== '' ? `\x1b[${SGR[style]}m${text}\x1b[0m` : text;
}

// eslint-disable-next-line no-control-regex -- matching the escape sequences we emit is the point
const ANSI = /\x1b\[[0-9;]*m/g;

/** `text` without ANSI SGR sequences (for widths, and for tests). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** The colour of a rollout or cluster phase. */
export function phaseStyle(phase: string | undefined): Paint | undefined {
  switch (phase) {
    case 'Succeeded':
      return 'green';
    case 'Progressing':
    case 'Baking':
    case 'Preflight':
      return 'cyan';
    case 'Paused':
    case 'RollingBack':
      return 'yellow';
    case 'RolledBack':
    case 'Failed':
    case 'BreakGlass':
      return 'red';
    default:
      return undefined;
  }
}

/** The colour of a gate or projection verdict. */
export function verdictStyle(verdict: string | undefined): Paint | undefined {
  return verdict === 'Pass' ? 'green' : verdict === 'Fail' ? 'red' : verdict === 'NoData' || verdict === 'Unknown' ? 'yellow' : undefined;
}

function painted(color: boolean, style: Paint | undefined, text: string): string {
  return style ? paint(color, style, text) : text;
}

/**
 * A duration since `from` in kubectl's style (`45s`, `3m20s`, `12m`, `5h3m`, `20h`, `3d4h`, `40d`,
 * `2y`); `-` when `from` is missing or unparsable. A time in the future (clock skew) counts as 0s.
 */
export function formatAge(from: string | Date | undefined, now: Date): string {
  if (from === undefined) return '-';
  const t = from instanceof Date ? from.getTime() : Date.parse(from);
  if (Number.isNaN(t)) return '-';
  const s = Math.max(0, Math.floor((now.getTime() - t) / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (h < 3) return `${m}m`;
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  if (d < 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** A number with at most 3 significant digits below 1, 2 decimals below 1000, none above. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return String(Math.round(v));
  if (a >= 1) return String(Math.round(v * 100) / 100);
  return String(Number(v.toPrecision(3)));
}

/**
 * A signal's value with its unit, read from the signal's name: `…Seconds` as ms below 1 s, `…Ratio`
 * as a percentage, `…PerSecond`/`…Rate` per second; anything else as a bare number.
 */
export function formatSignal(name: string, v: number): string {
  if (name.endsWith('Seconds')) return v !== 0 && Math.abs(v) < 1 ? `${formatNumber(v * 1000)}ms` : `${formatNumber(v)}s`;
  if (name.endsWith('Ratio')) return `${formatNumber(v * 100)}%`;
  if (name.endsWith('PerSecond') || name.endsWith('Rate')) return `${formatNumber(v)}/s`;
  return formatNumber(v);
}

/** A node of a rendered tree: its first line, lines under it, then its children. */
export interface TreeNode {
  line: string;
  notes?: string[];
  children?: TreeNode[];
}

/** Draws a tree with box-drawing connectors; the root's line has no connector. */
export function renderTree(root: TreeNode): string {
  const out: string[] = [root.line];
  const walk = (node: TreeNode, prefix: string): void => {
    const kids = node.children ?? [];
    for (const note of node.notes ?? []) out.push(`${prefix}${kids.length ? '│ ' : '  '}${note}`);
    kids.forEach((kid, i) => {
      const last = i === kids.length - 1;
      out.push(`${prefix}${last ? '└── ' : '├── '}${kid.line}`);
      walk(kid, `${prefix}${last ? '    ' : '│   '}`);
    });
  };
  walk(root, '');
  return `${out.join('\n')}\n`;
}

/** Pads `text` on the right to `width` visible characters (ANSI sequences do not count). */
function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - stripAnsi(text).length));
}

/** Aligned columns separated by three spaces, kubectl style; cells may be coloured. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(stripAnsi(h).length, ...rows.map((r) => stripAnsi(r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

const orDash = (v: string | number | undefined): string => (v === undefined || v === '' ? '-' : String(v));

/** ✓ for Pass, ✗ for Fail, ? otherwise. */
function markOf(verdict: string | undefined): string {
  return verdict === 'Pass' ? '✓' : verdict === 'Fail' ? '✗' : '?';
}

/** The gate line and its measurement rows: each measurement beside its threshold, ✓ within, ✗ over. */
function gateNode(g: GateResult, o: RenderOptions): TreeNode {
  const verdict = g.verdict ?? 'Unknown';
  const parts = [`gate ${painted(o.color, verdictStyle(verdict), `${markOf(verdict)} ${verdict}`)}`];
  if (g.consecutiveFailures) parts.push(`${g.consecutiveFailures} consecutive`);
  if (g.time) parts.push(`${formatAge(g.time, o.now)} ago`);
  const measured = g.measurements ?? {};
  const bounds = g.thresholds ?? {};
  const failed = new Set(g.failed ?? []);
  // Judged signals (with a threshold) first, in the evaluator's order, then informational ones.
  const names = [...Object.keys(bounds), ...Object.keys(measured).filter((n) => !(n in bounds))];
  const width = Math.max(0, ...names.map((n) => n.length));
  const valueWidth = Math.max(0, ...names.map((n) => (measured[n] === undefined ? 7 : formatSignal(n, measured[n]).length)));
  const rows: TreeNode[] = names.map((n) => {
    const v = measured[n];
    const bound = bounds[n];
    const shown = pad(v === undefined ? 'no data' : formatSignal(n, v), valueWidth);
    if (bound === undefined) return { line: `· ${pad(n, width)}   ${shown}` };
    if (v === undefined) return { line: `${paint(o.color, 'yellow', '?')} ${pad(n, width)}   ${shown}   (bound ${formatSignal(n, bound)})` };
    const over = failed.has(n) || v > bound;
    const m = over ? paint(o.color, 'red', '✗') : paint(o.color, 'green', '✓');
    return { line: `${m} ${pad(n, width)}   ${shown}   ${over ? '>' : '≤'} ${formatSignal(n, bound)}` };
  });
  return { line: parts.join('  '), notes: g.message ? [paint(o.color, 'dim', g.message)] : [], children: rows };
}

function clusterNode(c: ClusterStatus, stepsOfStage: number | undefined, o: RenderOptions): TreeNode {
  const parts = [paint(o.color, 'bold', c.name), painted(o.color, phaseStyle(c.phase), c.phase ?? 'Pending')];
  if (c.reachable === false) parts.push(paint(o.color, 'red', `unreachable${c.unreachableSince ? ` for ${formatAge(c.unreachableSince, o.now)}` : ''}`));
  else if (c.reachable === true) parts.push('reachable');
  parts.push(`nodes ${c.nodesUpdated ?? 0}/${orDash(c.nodesTotal)}`);
  if (c.step !== undefined) {
    parts.push(`step ${c.step + 1}/${stepsOfStage ?? '?'}${c.stepPercent !== undefined ? ` at ${c.stepPercent}%` : ''}`);
  }
  const children: TreeNode[] = [];
  if (c.lastGate) children.push(gateNode(c.lastGate, o));
  const base = c.baseline?.values;
  if (base && Object.keys(base).length) {
    const values = Object.entries(base).map(([k, v]) => `${k} ${formatSignal(k, v)}`);
    children.push({ line: `baseline${c.baseline?.capturedAt ? ` (${formatAge(c.baseline.capturedAt, o.now)} ago)` : ''}: ${values.join(', ')}` });
  }
  const p = c.projection;
  if (p && (p.verdict || p.projectedP99Seconds !== undefined)) {
    const bits = [`projection ${painted(o.color, verdictStyle(p.verdict), `${markOf(p.verdict)} ${p.verdict ?? 'Unknown'}`)}`];
    if (p.projectedP99Seconds !== undefined) bits.push(`p99 at 100% ${formatSignal('p99Seconds', p.projectedP99Seconds)}`);
    if (p.projectedRequestRate !== undefined) bits.push(`${formatSignal('requestRate', p.projectedRequestRate)}`);
    children.push({ line: bits.join('  '), notes: p.verdict === 'NoData' && p.message ? [paint(o.color, 'dim', p.message)] : [] });
  }
  const bg = c.breakGlass;
  if (bg) {
    const counts =
      `${bg.nodesStopped ?? 0} stopped, ${bg.nodesPending ?? 0} pending, ${bg.nodesFailed ?? 0} failed, ${bg.nodesTimedOut ?? 0} timed out` +
      `${bg.nodesTargeted !== undefined ? ` of ${bg.nodesTargeted}` : ''}${bg.inProgress ? ', writing' : ''}${(bg.attempts ?? 0) > 1 ? `, attempt ${bg.attempts}` : ''}`;
    const when = [bg.issuedAt ? `issued ${formatAge(bg.issuedAt, o.now)} ago` : '', bg.clearedAt ? `cleared ${formatAge(bg.clearedAt, o.now)} ago` : '']
      .filter(Boolean)
      .join(', ');
    children.push({
      line: `${paint(o.color, 'red', 'break-glass')}  ${counts}${bg.revision ? `  revision ${bg.revision}` : ''}${when ? `  (${when})` : ''}`,
      notes: [
        ...(bg.message ? [paint(o.color, 'dim', bg.message)] : []),
        // The nodes a person may have to go to by hand: at most 20 are kept in status.
        ...(bg.failingNodes ?? []).map((f) => paint(o.color, 'red', `${f.node}: ${f.message ?? 'failed'}`)),
      ],
    });
  }
  return { line: parts.join('  '), notes: c.message ? [paint(o.color, 'dim', c.message)] : [], children };
}

/**
 * The `get` tree: the rollout line (phase, reason, revision ← previous, progress, health, age), its
 * message and pending requests, then stages (spec order) → clusters → last gate (measurements beside
 * thresholds), baseline, projection and break-glass counts.
 */
export function renderRollout(ro: TelemetryRollout, o: RenderOptions): string {
  const s = ro.status ?? {};
  const name = ro.metadata?.name ?? '?';
  const phase = s.phase ?? 'Pending';
  const head = [
    `${paint(o.color, 'bold', name)}${ro.metadata?.namespace ? ` (${ro.metadata.namespace})` : ''}`,
    `${painted(o.color, phaseStyle(phase), phase)}${s.reason ? ` (${s.reason})` : ''}`,
  ];
  if (s.revision) head.push(`revision ${s.revision}${s.previousRevision ? ` ← ${s.previousRevision}` : ''}`);
  if (s.progress) head.push(s.progress);
  head.push(`health ${painted(o.color, verdictStyle(s.health), s.health ?? 'Unknown')}`);
  head.push(`age ${formatAge(ro.metadata?.creationTimestamp, o.now)}`);

  const notes: string[] = [];
  if (s.message) notes.push(s.message);
  if (ro.spec?.paused) notes.push(paint(o.color, 'yellow', 'spec.paused is true'));
  const pending = pendingRequests(ro);
  if (pending.length) notes.push(paint(o.color, 'yellow', `pending: ${pending.join(', ')} (not yet handled by the operator)`));
  const gen = ro.metadata?.generation;
  if (gen !== undefined && s.observedGeneration !== undefined && s.observedGeneration < gen) {
    notes.push(paint(o.color, 'yellow', `status is of generation ${s.observedGeneration}, spec is at ${gen}: the operator has not caught up`));
  }

  const specStages = ro.spec?.strategy?.stages ?? [];
  const clusters = s.clusters ?? [];
  const stageNames = [...specStages.map((x) => x.name)];
  for (const c of clusters) if (c.stage && !stageNames.includes(c.stage)) stageNames.push(c.stage);
  const stages: TreeNode[] = stageNames.map((st) => {
    const steps = specStages.find((x) => x.name === st)?.nodeSteps?.length;
    const mine = clusters.filter((c) => c.stage === st);
    const current = s.stage === st && phase !== 'Succeeded';
    return {
      line: `stage ${paint(o.color, 'bold', st)}${current ? paint(o.color, 'cyan', ' (current)') : ''}`,
      notes: mine.length ? [] : [paint(o.color, 'dim', clusters.length ? 'no clusters' : 'not planned yet')],
      children: mine.map((c) => clusterNode(c, steps, o)),
    };
  });
  const unstaged = clusters.filter((c) => !c.stage);
  if (unstaged.length) stages.push({ line: 'no stage', children: unstaged.map((c) => clusterNode(c, undefined, o)) });
  return renderTree({ line: head.join('  '), notes, children: stages });
}

/** The `list` table: one row per rollout (NAMESPACE first with `allNamespaces`). */
export function renderList(items: TelemetryRollout[], o: RenderOptions & { allNamespaces: boolean }): string {
  if (!items.length) return '';
  const header = [...(o.allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'PHASE', 'REASON', 'STAGE', 'PROGRESS', 'HEALTH', 'REVISION', 'AGE'];
  const rows = items.map((ro) => {
    const s = ro.status ?? {};
    return [
      ...(o.allNamespaces ? [orDash(ro.metadata?.namespace)] : []),
      orDash(ro.metadata?.name),
      painted(o.color, phaseStyle(s.phase), orDash(s.phase)),
      orDash(s.reason),
      orDash(s.stage),
      orDash(s.progress),
      painted(o.color, verdictStyle(s.health), orDash(s.health)),
      orDash(s.revision),
      formatAge(ro.metadata?.creationTimestamp, o.now),
    ];
  });
  return renderTable(header, rows);
}

/** The `history` table, oldest first as stored. */
export function renderHistory(entries: HistoryEntry[], o: RenderOptions): string {
  if (!entries.length) return '';
  const rows = entries.map((h) => [h.time, formatAge(h.time, o.now), h.reason, orDash(h.cluster), (h.message ?? '').replace(/\s*\n\s*/g, ' ')]);
  return renderTable(['TIME', 'AGE', 'REASON', 'CLUSTER', 'MESSAGE'], rows);
}
