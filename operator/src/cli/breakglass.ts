/**
 * `kubectl tro break-glass` and `kubectl tro inventory export`: the plugin's side of break-glass, on
 * the library in operator/src/breakglass.
 *
 * break-glass is fully offline: the nodes come from an inventory file exported earlier (`inventory
 * export`, while the management cluster was reachable), the transport from the rollout manifest the
 * person keeps (its `spec.breakGlass.transport`, or a bare transport spec document) or `--local-root`,
 * and ssh credentials from files they already have (`--ssh-key`, `--known-hosts`): no API server of any
 * cluster is contacted. The library is imported only when these commands run.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { BreakGlassResult, ClearBreakGlassResult, TransportSpecInput } from '../breakglass/breakglass.js';
import type { NodeInventory } from '../breakglass/inventory.js';
import type { NodeOutcome } from '../breakglass/transport.js';
import { KIND } from '../api/crd.js';
import type { Clock } from '#core/clock.js';
import { CliError, EXIT, oneLine } from './errors.js';

/** The options of `break-glass`, as parsed. */
export interface BreakGlassOptions {
  inventory?: string;
  filename?: string;
  localRoot?: string;
  sshKey?: string;
  knownHosts?: string;
  revision?: string;
  reason?: string;
  rollout?: string;
  scope?: 'revision' | 'all';
  stableRevision?: string;
  clear?: boolean;
  force?: boolean;
  dryRun?: boolean;
}

/** What a break-glass run did, for the report and the exit code. */
export type BreakGlassOutcome =
  | { action: 'issue'; cluster: string; result: BreakGlassResult }
  | { action: 'clear'; cluster: string; result: ClearBreakGlassResult }
  | { action: 'dry-run'; cluster: string; revision: string; scope: 'revision' | 'all'; transport: string; nodes: string[] };

const usage = (message: string, cause?: unknown) => new CliError(message, EXIT.usage, cause === undefined ? undefined : { cause });

/** The transport spec and the rollout name from `-f`: a TelemetryRollout manifest or a bare transport spec. */
export function transportFromFile(path: string, text: string): { spec: TransportSpecInput; rollout?: string } {
  let docs: unknown[];
  try {
    docs = parseAllDocuments(text).map((d) => {
      const syntax = d.errors[0];
      if (syntax) throw syntax;
      return d.toJS() as unknown;
    });
  } catch (err) {
    throw usage(`${path}: not valid YAML: ${oneLine(err)}`, err);
  }
  for (const doc of docs) {
    if (typeof doc !== 'object' || doc === null) continue;
    const o = doc as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown }; spec?: { breakGlass?: { transport?: unknown } }; type?: unknown };
    if (o.kind === KIND) {
      const spec = o.spec?.breakGlass?.transport;
      const name = typeof o.metadata?.name === 'string' ? o.metadata.name : undefined;
      if (typeof spec !== 'object' || spec === null) throw usage(`${path}: the TelemetryRollout ${name ?? ''} has no spec.breakGlass.transport`);
      const ns = typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : 'default';
      return { spec: spec as TransportSpecInput, ...(name ? { rollout: `${ns}/${name}` } : {}) };
    }
    if (typeof o.type === 'string') return { spec: o as TransportSpecInput };
  }
  throw usage(`${path}: neither a TelemetryRollout with spec.breakGlass.transport nor a transport spec (a document with "type")`);
}

/**
 * Runs `break-glass CLUSTER`: validates the input (usage errors, exit 2), builds the transport, then
 * writes (or with `clear`, removes) the stop files, or with `dryRun` only lists the nodes it would
 * reach. Node failures are in the outcome, not thrown.
 */
export async function runBreakGlass(
  cluster: string,
  o: BreakGlassOptions,
  env: { clock: Clock; signal: AbortSignal; readFile?: (path: string) => string },
): Promise<BreakGlassOutcome> {
  const read = env.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  if (!o.inventory) throw usage('break-glass needs --inventory FILE (written earlier by `kubectl tro inventory export`)');
  if (!o.revision) throw usage("break-glass needs --revision REV (the collector revision to stop, or '*' for every revision)");
  if (!o.clear && !o.dryRun && !o.reason) throw usage('break-glass needs --reason TEXT (it is written into the stop file)');
  if (o.force && !o.clear) throw usage('--force only applies to --clear');
  if (!o.filename === !o.localRoot)
    throw usage('break-glass needs exactly one of -f FILE (a rollout manifest with spec.breakGlass.transport, or a transport spec) and --local-root DIR');
  if (!o.sshKey !== !o.knownHosts) throw usage('--ssh-key and --known-hosts go together');

  const bg = await import('../breakglass/breakglass.js');
  const inv = await import('../breakglass/inventory.js');
  const stop = await import('../breakglass/stopfile.js');
  if (!stop.isValidRevision(o.revision)) throw usage(`--revision ${JSON.stringify(o.revision)} is not a revision (a label value) or '*'`);

  let inventory: NodeInventory;
  try {
    inventory = await inv.loadInventoryFile(o.inventory);
  } catch (err) {
    throw usage(oneLine(err), err);
  }
  if (inventory.cluster !== cluster) throw usage(`${o.inventory} is the inventory of cluster ${inventory.cluster}, not ${cluster}`);

  let spec: TransportSpecInput;
  let rollout = o.rollout;
  if (o.localRoot) {
    spec = { type: 'local', local: { rootDir: o.localRoot } };
  } else {
    const path = o.filename ?? '';
    let text: string;
    try {
      text = read(path);
    } catch (err) {
      throw usage(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
    }
    const fromFile = transportFromFile(path, text);
    spec = fromFile.spec;
    rollout ??= fromFile.rollout;
  }
  if (spec.type === 'ssh' && !o.sshKey)
    throw usage('an ssh transport needs --ssh-key FILE and --known-hosts FILE (the Secrets the operator uses are not reachable offline)');
  const credentials = o.sshKey && o.knownHosts ? { sshCredentialFiles: { privateKeyPath: o.sshKey, knownHostsPath: o.knownHosts } } : {};

  let transport;
  try {
    transport = await bg.transportFromSpec(spec, { ...credentials, clock: env.clock, signal: env.signal });
  } catch (err) {
    throw usage(oneLine(err), err);
  }
  const revision = o.revision;
  const stable = o.stableRevision !== undefined ? { stableRevision: o.stableRevision } : {};
  try {
    if (o.dryRun) {
      const scope = o.scope ?? (o.clear ? 'all' : 'revision');
      const nodes = bg.selectTargets(inventory.nodes, { revision, scope, ...stable }).map((n) => n.name);
      return { action: 'dry-run', cluster, revision, scope, transport: transport.kind, nodes };
    }
    if (o.clear) {
      const result = await bg.clearBreakGlass({
        transport,
        nodes: inventory.nodes,
        revision,
        clock: env.clock,
        signal: env.signal,
        force: o.force === true,
        ...(o.scope ? { scope: o.scope } : {}),
        ...stable,
      });
      return { action: 'clear', cluster, result };
    }
    const result = await bg.issueBreakGlass({
      transport,
      nodes: inventory.nodes,
      rollout: rollout ?? 'kubectl-tro/break-glass',
      revision,
      reason: o.reason ?? '',
      clock: env.clock,
      signal: env.signal,
      ...(o.scope ? { scope: o.scope } : {}),
      ...stable,
    });
    return { action: 'issue', cluster, result };
  } finally {
    await transport.close();
  }
}

function outcomeLines(outcomes: readonly NodeOutcome[]): string[] {
  return outcomes
    .filter((x) => x.result !== 'ok')
    .map((x) => `  ${x.node}: ${x.result === 'timedOut' ? 'timed out' : 'failed'}${x.message ? `: ${x.message}` : ''}`);
}

/** The text report of a break-glass run. */
export function renderBreakGlass(out: BreakGlassOutcome): string {
  if (out.action === 'dry-run') {
    const head = `dry run: would ${out.scope === 'all' ? 'visit every node' : `reach the nodes of revision ${out.revision}`} of cluster ${out.cluster} via ${out.transport}: ${out.nodes.length} node(s)`;
    return `${[head, ...out.nodes.map((n) => `  ${n}`)].join('\n')}\n`;
  }
  const lines = [`cluster ${out.cluster}: ${out.result.message}`, ...outcomeLines(out.result.outcomes)];
  if (out.action === 'issue' && out.result.nodesTargeted === 0)
    lines.push('no node matched: if the inventory predates the last relabelling, retry with --scope all');
  return `${lines.join('\n')}\n`;
}

/** 0 when every targeted node is done (and there was one), 1 otherwise. */
export function breakGlassExitCode(out: BreakGlassOutcome): number {
  if (out.action === 'dry-run') return EXIT.ok;
  const r = out.result;
  return r.nodesTargeted > 0 && r.nodesFailed + r.nodesTimedOut === 0 ? EXIT.ok : EXIT.failed;
}
