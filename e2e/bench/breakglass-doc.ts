/**
 * The break-glass figures of docs/benchmarks.md, rendered from the benchmark's results file: the
 * section between {@link BREAKGLASS_BEGIN} and {@link BREAKGLASS_END} is generated (`npm run bench:docs`)
 * and a unit test fails when it differs from what the results say, so no figure there is typed by hand.
 */
import { POD_LIST_INTERVAL_MS } from '../../operator/src/rollout/pass.js';
import type { BreakGlassResults, PhaseRound, TransportRound } from './breakglass-results.js';
import { RESULTS_FILE } from './breakglass-results.js';
import { replaceSection } from './docsection.js';

/** The marker lines between which docs/benchmarks.md holds the generated break-glass figures. */
export const BREAKGLASS_BEGIN = `<!-- BEGIN GENERATED: break-glass figures (npm run bench:docs; from ${RESULTS_FILE}) -->`;
/** See {@link BREAKGLASS_BEGIN}. */
export const BREAKGLASS_END = '<!-- END GENERATED: break-glass figures -->';

/** The goal for local and exec (and for the ssh fleet model): every agent stopped within 10 s. */
export const GOAL_MS = 10_000;

/** Seconds, with two decimals below 10 s and one above (figures this noisy deserve no more). */
export function seconds(ms: number): string {
  const s = ms / 1000;
  return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
}

/** A pair of per-node times, in ms when both are under a second. */
function pair(a: number, b: number): string {
  return a < 1000 && b < 1000 ? `${a} / ${b} ms` : `${seconds(a).replace(' s', '')} / ${seconds(b)}`;
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

function transportName(t: TransportRound): string {
  if (t.transport !== 'ssh') return t.transport;
  return t.purpose === 'per-connection' ? 'ssh, one connection at a time (one loopback sshd)' : 'ssh (one loopback sshd)';
}

function outcome(t: TransportRound): string {
  const bad = [t.failed > 0 ? `${t.failed} failed` : '', t.timedOut > 0 ? `${t.timedOut} timed out` : ''].filter(Boolean).join(', ');
  return `${seconds(t.writeMs)} (${t.ok} ok${bad ? `, ${bad}` : ''})`;
}

function cpu(t: TransportRound): string {
  const parts = [
    t.childCpuMsPerNode !== undefined ? `${t.childCpuMsPerNode} ms ${t.transport === 'ssh' ? 'client' : 'child'}` : '',
    t.serverCpuMsPerNode !== undefined ? `${t.serverCpuMsPerNode} ms sshd` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : '–';
}

function phaseRow(p: PhaseRound): string {
  const within = p.allRunningStopped && p.filesOnDisk === p.nodesInventoried ? (p.triggerToAllStoppedMs <= GOAL_MS ? 'yes' : 'no') : 'no (not all stopped)';
  return `| ${p.phase} | ${p.transport} | ${p.nodes} | ${p.concurrency} | ${p.nodesInventoried} / ${p.nodesRunningCandidate} | ${seconds(p.triggerToAllStoppedMs)} | ${seconds(p.passMs)}${p.inProgressAfterPass ? ' (in progress)' : ''} | ${seconds(p.attemptEndMs)} | ${p.filesNamingRevision}/${p.nodesInventoried} | ${p.nodesPendingAfter} | ${within} | ${p.rolloutPhaseAfter} |`;
}

/** The generated section, markers included. */
export function renderBreakGlassSection(r: BreakGlassResults): string {
  const e = r.environment;
  const out: string[] = [BREAKGLASS_BEGIN, ''];
  out.push(
    `Run at ${e.date}: ${e.cores} cores (${e.cpuModel}), Node ${e.node}, ${e.platform}; load average ${e.loadAverageStart.toFixed(2)} at the start, ${e.loadAverageEnd.toFixed(2)} at the end.` +
      (e.note ? ` ${e.note}` : ''),
  );
  out.push('');
  out.push('Each transport writes (then clears) the stop file `auto-<revision>` in the stop directory of N nodes; every file is then looked for on');
  out.push('disk. "All stopped" is from the transport\'s call to the last node\'s outcome. The ssh rounds run the real ssh client against');
  out.push('one real loopback sshd standing for all N nodes (a distinct root directory per node): one sshd on these cores serving every');
  out.push(
    "connection is the bottleneck, where a real fleet has one sshd per node. CPU per connection: the transport's child processes (ssh, or the exec shell and its",
  );
  out.push('commands) and, for ssh, sshd with the sessions it forked.');
  out.push('');
  out.push('| transport | nodes | concurrency | all stopped | per node p50 / p95 | on disk | cleared | CPU per connection |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const t of r.transports) {
    out.push(
      `| ${transportName(t)} | ${t.nodes} | ${t.concurrency} | ${outcome(t)} | ${pair(t.nodeP50Ms, t.nodeP95Ms)} | ${t.filesOnDisk}/${t.nodes} | ${seconds(t.clearMs)} | ${cpu(t)} |`,
    );
  }
  const failures = r.transports.flatMap((t) => t.sampleFailures.map((f) => `${transportName(t)}: ${f}`));
  if (failures.length) {
    out.push('');
    out.push(`Sample failures: ${failures.map((f) => `\`${f.replace(/`/g, "'")}\``).join('; ')}.`);
  }
  if (r.phases.length) {
    out.push('');
    out.push("In the rollout, through the real reconciler (the unit tests' fake target cluster and fake clock, the real `TransportBreakGlass`");
    out.push('actuator over the real transport, files on disk): the trigger is the pass at which the API server has been unreachable for');
    out.push('`unreachableAfterSeconds`. That pass starts the fan-out in the background and returns ("the pass"; "in progress": the status');
    out.push('said so after it); the figure runs, in real time, to the last targeted node\'s stop file found on disk; "attempt ended" is when');
    out.push('the actuator had every outcome and had closed the transport (measured once the last file was seen, so equal figures mean it had');
    out.push('ended by then or within the millisecond); "pending" is `nodesPending` in the status of the next pass, which');
    out.push('reads the outcome. "Targeted / running": nodes the actuator targets from the stored inventory (labelled with the revision, or');
    out.push("with a pod of it in the last pod list: the stop files expected) and nodes the candidate's agents actually ran on. The rollback");
    out.push(`records the inventory after every relabel batch, but lists the pods at most every ${POD_LIST_INTERVAL_MS / 1000} s, so in \`RollingBack\` nodes`);
    out.push('relabelled since the last pod list are still targeted (an agent outlives its relabel until it exits).');
    out.push('');
    out.push(
      '| phase | transport | nodes | concurrency | targeted / running | trigger → all stopped | of which the pass | attempt ended | files naming the revision | pending | ≤ 10 s | rollout phase after |',
    );
    out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const p of r.phases) out.push(phaseRow(p));
  }
  const m = r.sshModel;
  if (m) {
    out.push('');
    out.push(
      `ssh at ${m.nodes.toLocaleString('en-US')} nodes (model): the transports' engine (\`runPerNode\`) over ${m.nodes.toLocaleString('en-US')} nodes, each costing one of ` +
        `the ${m.costFrom.nodes} per-node times of the one-at-a-time ssh round in turn (p50 ${m.costFrom.p50Ms} ms, p95 ${m.costFrom.p95Ms} ms), on a fake ` +
        `clock, with the CRD's default concurrency ${m.defaultConcurrency} and timeout ${seconds(m.timeoutMs)}: every node stopped after ` +
        `**${seconds(m.wallMsAtDefault)}** (${m.okAtDefault} ok), ${m.wallMsAtDefault <= m.budgetMs ? 'within' : 'over'} the ${seconds(m.budgetMs)} goal.`,
    );
    if (m.wallMsAtDefault > m.budgetMs) {
      out.push(
        m.concurrencyForBudget !== undefined
          ? `The smallest concurrency that stops them within ${seconds(m.budgetMs)}: **${m.concurrencyForBudget}** (${seconds(m.wallMsAtConcurrencyForBudget ?? 0)}).`
          : `No concurrency up to 512 stops them within ${seconds(m.budgetMs)}.`,
      );
    }
    if (m.clientCpuSeconds !== undefined) {
      out.push(
        `The model prices latency, not the operator's CPU: the ssh clients alone cost ${m.clientCpuSeconds.toFixed(1)} CPU-seconds for ${m.nodes.toLocaleString('en-US')} nodes ` +
          `(the client CPU per connection of the one-at-a-time round), which is a floor of ${seconds((m.clientCpuSeconds * 1000) / e.cores)} on these ${e.cores} cores whatever the concurrency. ` +
          'A real network adds its round trips (TCP, key exchange, authentication, the session) to every connection.',
      );
    }
  }
  if (r.inventory.length) {
    out.push('');
    out.push(
      `The persisted node inventory: ${r.inventory.map((i) => `${i.nodes} nodes are ${kib(i.jsonBytes)} of JSON and ${kib(i.storedBytes)} stored (gzip, base64, chunked)`).join('; ')}.`,
    );
  }
  out.push('', BREAKGLASS_END);
  return out.join('\n');
}

/** `doc` with its break-glass section replaced by the one rendered from `r` (the markers must be present). */
export function withBreakGlassSection(doc: string, r: BreakGlassResults): string {
  return replaceSection(doc, BREAKGLASS_BEGIN, BREAKGLASS_END, renderBreakGlassSection(r), 'break-glass');
}
