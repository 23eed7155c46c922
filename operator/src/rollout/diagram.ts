/**
 * The documentation of the phase machine, generated from its table: Mermaid state diagrams of the
 * rollout and of a cluster, and the per-phase capability table. `npm run generate` writes them into
 * docs/concepts.md between markers; a unit test fails when the document is stale.
 */
import { CLUSTER_MACHINE, CLUSTER_PHASES, CONTROL_EVENTS, ROLLOUT_MACHINE, ROLLOUT_PHASES, type Edge, type RolloutCapabilities } from './machine.js';

/** The marker lines between which docs/concepts.md holds the generated section. */
export const DIAGRAM_BEGIN = '<!-- BEGIN GENERATED: phase machine (npm run generate; from operator/src/rollout/machine.ts) -->';
/** See DIAGRAM_BEGIN. */
export const DIAGRAM_END = '<!-- END GENERATED: phase machine -->';

function edgeLines<P extends string>(from: P, on: Partial<Record<string, Edge<P>>>, initial: boolean, label: (event: string) => string): string[] {
  const lines: string[] = [];
  for (const [event, edge] of Object.entries(on)) {
    if (!edge) continue;
    const targets = typeof edge.to === 'string' ? [[edge.to, '']] : Object.entries(edge.to).map(([policy, to]) => [to, ` (${policy})`]);
    for (const [to, policy] of targets) {
      // Self-loops that only record (Promote, Unreachable) would crowd the picture; the table lists them.
      if (to === from && !initial) continue;
      lines.push(`  ${from} --> ${to}: ${label(event)}${policy}`);
    }
  }
  return lines;
}

/** The rollout's state diagram (Mermaid stateDiagram-v2). */
export function rolloutDiagram(): string {
  const lines = ['stateDiagram-v2', '  [*] --> Pending'];
  for (const phase of ROLLOUT_PHASES) {
    const label = (e: string) => (CONTROL_EVENTS.has(e as never) ? `${e} (control)` : e);
    lines.push(...edgeLines(phase, ROLLOUT_MACHINE[phase].on, false, label).filter((l) => !l.includes(': SpecChanged (control)')));
  }
  lines.push('  note right of Pending: SpecChanged (a new revision) leads here from every phase');
  return lines.join('\n');
}

/** A cluster's state diagram (Mermaid stateDiagram-v2). Reset (a retry) leads back to Pending from every phase. */
export function clusterDiagram(): string {
  const lines = ['stateDiagram-v2', '  [*] --> Pending'];
  for (const phase of CLUSTER_PHASES) lines.push(...edgeLines(phase, CLUSTER_MACHINE[phase].on, false, (e) => e).filter((l) => !l.endsWith(': Reset')));
  lines.push('  note right of Pending: Reset (a retry) leads here from every phase');
  return lines.join('\n');
}

const CAPABILITY_COLUMNS: Array<[keyof Omit<RolloutCapabilities, 'conditions'>, string]> = [
  ['probesReachability', 'probes targets'],
  ['breakGlassArmed', 'break-glass armed'],
  ['afterSuccessPolicy', 'afterSuccess policy'],
  ['gatesEvaluated', 'gates evaluated'],
  ['gatesAct', 'gate breach acts'],
  ['relabelsForward', 'relabels forward'],
  ['relabelsBack', 'relabels back'],
  ['candidateMayRun', 'candidate may run'],
  ['terminal', 'terminal'],
];

/** The per-phase capability table (Markdown). */
export function capabilityTable(): string {
  const yes = (b: boolean) => (b ? 'yes' : '—');
  const head = `| phase | ${CAPABILITY_COLUMNS.map(([, t]) => t).join(' | ')} | conditions True | ignores |`;
  const sep = `| --- | ${CAPABILITY_COLUMNS.map(() => '---').join(' | ')} | --- | --- |`;
  const rows = ROLLOUT_PHASES.map((phase) => {
    const st = ROLLOUT_MACHINE[phase];
    const c = st.capabilities;
    const conds =
      Object.entries(c.conditions)
        .filter(([, v]) => v)
        .map(([k]) => k)
        .join(', ') || '—';
    return `| ${phase} | ${CAPABILITY_COLUMNS.map(([k]) => yes(c[k])).join(' | ')} | ${conds} | ${st.ignores.join(', ')} |`;
  });
  return [head, sep, ...rows].join('\n');
}

/** The generated section, markers included. */
export function machineSection(): string {
  return [
    DIAGRAM_BEGIN,
    '',
    'The rollout:',
    '',
    '```mermaid',
    rolloutDiagram(),
    '```',
    '',
    'Each cluster:',
    '',
    '```mermaid',
    clusterDiagram(),
    '```',
    '',
    'What each rollout phase does (a row is what runs, gaps included):',
    '',
    capabilityTable(),
    '',
    DIAGRAM_END,
  ].join('\n');
}

/** `doc` with its generated section replaced by the current one (the markers must be present). */
export function withMachineSection(doc: string): string {
  const a = doc.indexOf(DIAGRAM_BEGIN);
  const b = doc.indexOf(DIAGRAM_END);
  if (a < 0 || b < a) throw new Error('docs/concepts.md has no generated phase-machine section (markers missing)');
  return doc.slice(0, a) + machineSection() + doc.slice(b + DIAGRAM_END.length);
}
