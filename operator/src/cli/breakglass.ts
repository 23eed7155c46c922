/**
 * `kubectl tro break-glass`, `kubectl tro break-glass status` and `kubectl tro inventory export`: the
 * plugin's side of break-glass, on the library in operator/src/breakglass.
 *
 * break-glass is fully offline: the nodes come from an inventory file exported earlier (`inventory
 * export`, while the management cluster was reachable), the transport from the rollout manifest the
 * person keeps (its `spec.breakGlass.transport`, or a bare transport spec document) or `--local-root`,
 * and ssh credentials from files they already have (`--ssh-key`, `--known-hosts`): no API server of any
 * cluster is contacted. The library is imported only when these commands run.
 *
 * A person's stops are their own files (`manual-<rev>`, `manual-all`), next to the operator's
 * (`auto-<rev>`): an agent stays stopped while any of them names it, the operator never removes a manual
 * file, and `--clear` removes only the manual file it names (`--issuer auto` reaches the operator's own
 * file, for when the operator itself cannot). `status` shows, per node, which files are there and who
 * issued them.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { BreakGlassListing, BreakGlassResult, ClearBreakGlassResult, TransportSpecInput } from '../breakglass/breakglass.js';
import type { NodeInventory } from '../breakglass/inventory.js';
import type { StopIssuer } from '../breakglass/stopfile.js';
import type { BreakGlassTransport, NodeOutcome } from '../breakglass/transport.js';
import { KIND } from '../api/crd.js';
import type { Clock } from '#core/clock.js';
import { CliError, EXIT, oneLine } from './errors.js';
import { renderTable } from './render.js';

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
  /** Whose file to write or clear: `manual` (default, a person's) or `auto` (the operator's own). */
  issuer?: StopIssuer;
}

/** The options of `break-glass status`, as parsed. */
export interface BreakGlassStatusOptions {
  cluster?: string;
  inventory?: string;
  filename?: string;
  localRoot?: string;
  sshKey?: string;
  knownHosts?: string;
}

/** What a break-glass run did, for the report and the exit code. */
export type BreakGlassOutcome =
  | { action: 'issue'; cluster: string; result: BreakGlassResult }
  | { action: 'clear'; cluster: string; result: ClearBreakGlassResult }
  | { action: 'dry-run'; cluster: string; revision: string; scope: 'revision' | 'all'; transport: string; nodes: string[] };

const usage = (message: string, cause?: unknown) => new CliError(message, EXIT.usage, cause === undefined ? undefined : { cause });

/**
 * The transport spec and the rollout name from `-f`: a TelemetryRollout manifest or a bare transport
 * spec. With `want` (`name` or `namespace/name`), the TelemetryRollout of that name is taken, so a file
 * holding several rollouts works; a file with rollouts but none of that name is a usage error.
 */
export function transportFromFile(path: string, text: string, want?: string): { spec: TransportSpecInput; rollout?: string } {
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
  let sawRollout = false;
  for (const doc of docs) {
    if (typeof doc !== 'object' || doc === null) continue;
    const o = doc as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown }; spec?: { breakGlass?: { transport?: unknown } }; type?: unknown };
    if (o.kind === KIND) {
      sawRollout = true;
      const spec = o.spec?.breakGlass?.transport;
      const name = typeof o.metadata?.name === 'string' ? o.metadata.name : undefined;
      const ns = typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : 'default';
      if (want !== undefined && want !== name && want !== `${ns}/${name ?? ''}`) continue;
      if (typeof spec !== 'object' || spec === null) throw usage(`${path}: the TelemetryRollout ${name ?? ''} has no spec.breakGlass.transport`);
      return { spec: spec as TransportSpecInput, ...(name ? { rollout: `${ns}/${name}` } : {}) };
    }
    if (typeof o.type === 'string') return { spec: o as TransportSpecInput };
  }
  if (sawRollout && want !== undefined) throw usage(`${path}: no TelemetryRollout named ${want}`);
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
  if (!o.inventory) throw usage('break-glass needs --inventory FILE (written earlier by `kubectl tro inventory export`)');
  if (!o.revision) throw usage("break-glass needs --revision REV (the collector revision to stop, or '*' for every revision)");
  if (!o.clear && !o.dryRun && !o.reason) throw usage('break-glass needs --reason TEXT (it is written into the stop file)');
  if (o.force && !o.clear) throw usage('--force only applies to --clear');
  if (o.issuer !== undefined && o.issuer !== 'manual' && o.issuer !== 'auto') throw usage(`--issuer must be manual or auto, got ${JSON.stringify(o.issuer)}`);

  const bg = await import('../breakglass/breakglass.js');
  const stop = await import('../breakglass/stopfile.js');
  if (!stop.isValidRevision(o.revision)) throw usage(`--revision ${JSON.stringify(o.revision)} is not a revision (a label value) or '*'`);
  if (o.revision === stop.ALL_SCOPE) throw usage(`--revision ${stop.ALL_SCOPE} cannot be told apart from every revision ('*') in a stop file's name`);
  const { inventory, transport, rollout: fromFile } = await openOffline(cluster, o, env);
  const rollout = o.rollout ?? fromFile;
  const revision = o.revision;
  const issuer = o.issuer ?? 'manual';
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
        issuer,
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
      issuer,
      ...(o.scope ? { scope: o.scope } : {}),
      ...stable,
    });
    return { action: 'issue', cluster, result };
  } finally {
    await transport.close();
  }
}

/** What the offline commands share: the inventory (checked against the cluster) and the transport. */
interface Offline {
  inventory: NodeInventory;
  transport: BreakGlassTransport;
  /** The rollout named by `-f`, when it is a TelemetryRollout manifest. */
  rollout?: string;
}

/**
 * Loads the inventory and builds the transport from `-f` or `--local-root` (and ssh credential files),
 * with every mistake a usage error (exit 2). `rolloutName` picks the rollout in a multi-document `-f`.
 */
async function openOffline(
  cluster: string,
  o: Pick<BreakGlassOptions, 'inventory' | 'filename' | 'localRoot' | 'sshKey' | 'knownHosts'>,
  env: { clock: Clock; signal: AbortSignal; readFile?: (path: string) => string },
  rolloutName?: string,
): Promise<Offline> {
  const read = env.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  if (!o.inventory) throw usage('break-glass needs --inventory FILE (written earlier by `kubectl tro inventory export`)');
  if (!o.filename === !o.localRoot)
    throw usage('break-glass needs exactly one of -f FILE (a rollout manifest with spec.breakGlass.transport, or a transport spec) and --local-root DIR');
  if (!o.sshKey !== !o.knownHosts) throw usage('--ssh-key and --known-hosts go together');
  const bg = await import('../breakglass/breakglass.js');
  const inv = await import('../breakglass/inventory.js');

  let inventory: NodeInventory;
  try {
    inventory = await inv.loadInventoryFile(o.inventory);
  } catch (err) {
    throw usage(oneLine(err), err);
  }
  if (inventory.cluster !== cluster) throw usage(`${o.inventory} is the inventory of cluster ${inventory.cluster}, not ${cluster}`);

  let spec: TransportSpecInput;
  let rollout: string | undefined;
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
    const fromFile = transportFromFile(path, text, rolloutName);
    spec = fromFile.spec;
    rollout = fromFile.rollout;
  }
  if (spec.type === 'ssh' && !o.sshKey)
    throw usage('an ssh transport needs --ssh-key FILE and --known-hosts FILE (the Secrets the operator uses are not reachable offline)');
  const credentials = o.sshKey && o.knownHosts ? { sshCredentialFiles: { privateKeyPath: o.sshKey, knownHostsPath: o.knownHosts } } : {};

  let transport: BreakGlassTransport;
  try {
    transport = await bg.transportFromSpec(spec, { ...credentials, clock: env.clock, signal: env.signal });
  } catch (err) {
    throw usage(oneLine(err), err);
  }
  return rollout === undefined ? { inventory, transport } : { inventory, transport, rollout };
}

/** What `break-glass status` found: the listing, and where it looked. */
export interface BreakGlassStatusReport extends BreakGlassListing {
  /** The rollout asked about (from the command line, or `-f`'s). */
  rollout: string;
  cluster: string;
  transport: string;
  stopDirectory: string;
  /** When the inventory was captured: nodes added since are not listed. */
  inventoryCapturedAt: string;
}

/**
 * Runs `break-glass status ROLLOUT --cluster C`: lists, on every node of the inventory, the stop files
 * present and who issued them, through the rollout's transport, read-only and offline like
 * `break-glass`. Node failures are in the report, not thrown.
 */
export async function runBreakGlassStatus(
  rollout: string,
  o: BreakGlassStatusOptions,
  env: { clock: Clock; signal: AbortSignal; readFile?: (path: string) => string },
): Promise<BreakGlassStatusReport> {
  if (!o.cluster) throw usage('break-glass status needs --cluster NAME (the target cluster of the inventory)');
  const bg = await import('../breakglass/breakglass.js');
  const offline = await openOffline(o.cluster, o, env, o.filename ? rollout : undefined);
  try {
    const listing = await bg.breakGlassListing(offline.transport, offline.inventory.nodes, env.signal);
    return {
      rollout: offline.rollout ?? rollout,
      cluster: o.cluster,
      transport: offline.transport.kind,
      stopDirectory: offline.transport.stopDirectory,
      inventoryCapturedAt: offline.inventory.capturedAt,
      ...listing,
    };
  } finally {
    await offline.transport.close();
  }
}

/**
 * The text report of `break-glass status`: a headline, then one row per stop file (issuer from the
 * name, the rest from the content), a row per node without files, and a row per node that could not be
 * listed. A file that is not a valid stop file is flagged: agents treat it as a stop of every revision.
 */
export function renderBreakGlassStatus(r: BreakGlassStatusReport): string {
  const notListed = r.nodesFailed + r.nodesTimedOut;
  const head =
    `rollout ${r.rollout}, cluster ${r.cluster}: ${r.nodesWithStops}/${r.nodes.length} node(s) with stop files in ${r.stopDirectory} via ${r.transport}` +
    (notListed > 0 ? `, ${notListed} not listed` : '') +
    ` (inventory captured ${r.inventoryCapturedAt})`;
  const rows: string[][] = [];
  for (const n of r.nodes) {
    if (n.result !== 'ok') {
      rows.push([n.node, '-', '-', '-', '-', '-', `not listed: ${n.result === 'timedOut' ? 'timed out' : 'failed'}${n.message ? `: ${n.message}` : ''}`]);
      continue;
    }
    if (n.files.length === 0) rows.push([n.node, '-', '-', '-', '-', '-', 'no stop file']);
    for (const f of n.files) {
      const note = f.error !== undefined ? `INVALID (${f.error}): agents stop every revision` : (f.reason ?? '');
      rows.push([n.node, f.name, f.issuer, f.revision ?? '-', f.issuedAt ?? '-', f.rollout ?? '-', note]);
    }
    if (n.truncated) rows.push([n.node, '…', '-', '-', '-', '-', 'more files than listed']);
  }
  return `${head}
${renderTable(['NODE', 'FILE', 'ISSUER', 'REVISION', 'ISSUED', 'ROLLOUT', 'REASON'], rows)}`;
}

/** 0 when every node of the inventory was listed (stop files or not), 1 otherwise. */
export function breakGlassStatusExitCode(r: BreakGlassStatusReport): number {
  return r.nodesFailed + r.nodesTimedOut === 0 ? EXIT.ok : EXIT.failed;
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
