/**
 * Break-glass actions: write a stop file, scoped to one revision and named after its issuer
 * (`auto-<rev>`, `manual-<rev>`, `manual-all`), on the nodes that run it, remove it again after recovery,
 * and list what is on the nodes; plus building the configured transport from `spec.breakGlass.transport`. Used by the operator's Auto action and by the CLI, which works from an
 * inventory file with no API server at all.
 *
 * Nothing here throws for a node's failure: results carry per-node outcomes and counts, ready for
 * `status.clusters[].breakGlass` ({@link breakGlassStatus}).
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { BreakGlassStatus, BreakGlassTransportSpec, BreakGlassTransportSsh } from '../api/types.generated.js';
import { isNotFound, requestOptions } from '../controller/kube.js';
import { REVISION_LABEL, type NodeInfo } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { TerminalError } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { ExecTransport } from './exec.js';
import { LocalTransport } from './local.js';
import { materializeSshCredentials, SshTransport } from './ssh.js';
import {
  ALL_REVISIONS,
  DEFAULT_STOP_DIRECTORY,
  DEFAULT_STOP_FILE_PATH,
  encodeStopFile,
  isValidRevision,
  parseStopFile,
  parseStopFileName,
  stopFileName,
  type StopFile,
  type StopIssuer,
} from './stopfile.js';
import { countOutcomes, TransportConfigError, type BreakGlassTransport, type NodeListing, type NodeOutcome } from './transport.js';

/**
 * Which nodes an action goes to:
 * - `revision`: the nodes whose revision label equals the revision (and, when the revision is the
 *   stable one, the unlabelled nodes, which the stable DaemonSet also runs on), and the nodes where a
 *   pod of the revision was seen running (`runs`: the cluster-mode watcher, a terminating agent);
 * - `all`: every node given. Safe for a revision-scoped stop file (agents of other revisions ignore
 *   it) and the right choice when the inventory may be stale (labels changed after it was captured).
 */
export type BreakGlassScope = 'revision' | 'all';

/** Options of {@link selectTargets}. */
export interface TargetSelection {
  revision: string;
  scope: BreakGlassScope;
  /** The stable revision, whose DaemonSet also covers nodes without the revision label. */
  stableRevision?: string;
}

/** The nodes an action goes to (see {@link BreakGlassScope}); `*` always means every node. */
export function selectTargets(nodes: readonly NodeInfo[], sel: TargetSelection): NodeInfo[] {
  if (sel.scope === 'all' || sel.revision === ALL_REVISIONS) return [...nodes];
  return nodes.filter((n) => {
    const label = n.labels[REVISION_LABEL];
    // A pod of the revision seen on the node (the watcher, or an agent whose node was relabelled while
    // it still ran) needs the stop file whatever the label says.
    if (n.runs?.includes(sel.revision)) return true;
    return label === sel.revision || (label === undefined && sel.stableRevision !== undefined && sel.stableRevision === sel.revision);
  });
}

/** Options of {@link issueBreakGlass}. */
export interface IssueBreakGlassOptions {
  transport: BreakGlassTransport;
  /** The cluster's nodes (from the live cache or an inventory). */
  nodes: readonly NodeInfo[];
  /** The rollout, as `namespace/name`. */
  rollout: string;
  /** The revision to stop, or `*` for every revision. */
  revision: string;
  /** Why (recorded in the file, status and logs). */
  reason: string;
  clock: Clock;
  /** Default `revision`. */
  scope?: BreakGlassScope;
  /** See {@link TargetSelection.stableRevision}. */
  stableRevision?: string;
  signal?: AbortSignal;
  /** Summary at info, failed nodes at warn (the first few by name, then a count). */
  logger?: Logger;
  /**
   * The `issuedAt` written in the file (default: now). A repeated attempt passes the first one's, so a
   * node written twice holds the same file and the stop keeps the moment it was first issued.
   */
  issuedAt?: string;
  /**
   * Who issues it, which names the file (`auto-<rev>` or `manual-<rev>` / `manual-all`): default `auto`,
   * the operator. The CLI passes `manual`, so a person's stop and the operator's never share a file.
   */
  issuer?: StopIssuer;
}

/** What {@link issueBreakGlass} did. */
export interface BreakGlassResult {
  /** When the stop file was issued (the `issuedAt` inside it). */
  issuedAt: string;
  revision: string;
  /** The exact stop file written. */
  stopFile: StopFile;
  /** Its name in the stop directory. */
  file: string;
  nodesTargeted: number;
  /** Nodes where the file was written. */
  nodesStopped: number;
  nodesFailed: number;
  nodesTimedOut: number;
  /** One per targeted node, in target order. */
  outcomes: NodeOutcome[];
  /** Wall time of the whole action on the clock. */
  durationMs: number;
  /** One line for status.message and Events. */
  message: string;
}

/** Failed nodes named in a log line before the rest are only counted (5000 names help nobody). */
const MAX_LOGGED_FAILURES = 20;

/**
 * Writes the stop file `{ rollout, revision, reason, issuedAt }` as the issuer's file for the revision
 * on the targeted nodes through the transport. Throws only for invalid input (a bad revision); node
 * failures are in the result.
 */
export async function issueBreakGlass(opts: IssueBreakGlassOptions): Promise<BreakGlassResult> {
  if (!isValidRevision(opts.revision)) throw new Error(`break-glass: invalid revision ${JSON.stringify(opts.revision)}`);
  const file = stopFileName(opts.issuer ?? 'auto', opts.revision);
  const start = opts.clock.now();
  const stopFile: StopFile = { rollout: opts.rollout, revision: opts.revision, reason: opts.reason, issuedAt: opts.issuedAt ?? start.toISOString() };
  const content = encodeStopFile(stopFile);
  const targets = selectTargets(opts.nodes, { revision: opts.revision, scope: opts.scope ?? 'revision', stableRevision: opts.stableRevision });
  const outcomes = targets.length === 0 ? [] : await opts.transport.write(targets, file, content, opts.signal);
  const c = countOutcomes(outcomes);
  const durationMs = opts.clock.now().getTime() - start.getTime();
  const message =
    targets.length === 0
      ? `no node runs revision ${opts.revision}: no stop file written`
      : `stop file ${file} for revision ${opts.revision} written to ${c.ok}/${targets.length} nodes via ${opts.transport.kind}` +
        (c.failed + c.timedOut > 0 ? ` (${c.failed} failed, ${c.timedOut} timed out)` : '');
  log(opts.logger, 'break-glass stop file issued', message, outcomes, { rollout: opts.rollout, revision: opts.revision, file, durationMs });
  return {
    issuedAt: stopFile.issuedAt,
    revision: opts.revision,
    stopFile,
    file,
    nodesTargeted: targets.length,
    nodesStopped: c.ok,
    nodesFailed: c.failed,
    nodesTimedOut: c.timedOut,
    outcomes,
    durationMs,
    message,
  };
}

/** Options of {@link clearBreakGlass}. */
export interface ClearBreakGlassOptions {
  transport: BreakGlassTransport;
  /** Candidate nodes; pass the whole inventory (see `scope`). */
  nodes: readonly NodeInfo[];
  /** The revision whose stop files to remove (`*` for a wildcard stop file). */
  revision: string;
  clock: Clock;
  /**
   * Default `all`: after a rollback the revision labels no longer say where the bad revision ran, so
   * every node is visited and only files naming `revision` are removed.
   */
  scope?: BreakGlassScope;
  stableRevision?: string;
  /**
   * Remove the issuer's file whatever revision it names (default false: a file naming another revision
   * stays, and the legacy single stop file is removed too when it names the revision).
   */
  force?: boolean;
  signal?: AbortSignal;
  logger?: Logger;
  /**
   * Whose file to remove: default `auto` (the operator removes only its own `auto-<rev>`, never a
   * person's `manual-*` stop); the CLI passes `manual`.
   */
  issuer?: StopIssuer;
}

/** What {@link clearBreakGlass} did. */
export interface ClearBreakGlassResult {
  clearedAt: string;
  revision: string;
  /** The name of the file removed in the stop directory. */
  file: string;
  nodesTargeted: number;
  /** Nodes where no stop file of the revision remains (removed, absent, or another revision's left in place). */
  nodesCleared: number;
  nodesFailed: number;
  nodesTimedOut: number;
  outcomes: NodeOutcome[];
  durationMs: number;
  message: string;
}

/**
 * Removes the issuer's stop file of `revision` (only that file: other issuers' stops stay, so an agent
 * another stop names stays stopped). The caller guarantees the precondition: no agent of the bad
 * revision runs any more (clearing earlier would restart it against the API server).
 */
export async function clearBreakGlass(opts: ClearBreakGlassOptions): Promise<ClearBreakGlassResult> {
  if (!isValidRevision(opts.revision)) throw new Error(`break-glass clear: invalid revision ${JSON.stringify(opts.revision)}`);
  const file = stopFileName(opts.issuer ?? 'auto', opts.revision);
  const start = opts.clock.now();
  const targets = selectTargets(opts.nodes, { revision: opts.revision, scope: opts.scope ?? 'all', stableRevision: opts.stableRevision });
  const outcomes =
    targets.length === 0
      ? []
      : await opts.transport.clear(targets, opts.force ? { file, signal: opts.signal } : { file, signal: opts.signal, ifRevision: opts.revision });
  const c = countOutcomes(outcomes);
  const durationMs = opts.clock.now().getTime() - start.getTime();
  const message =
    `stop file ${file} of revision ${opts.revision} cleared on ${c.ok}/${targets.length} nodes via ${opts.transport.kind}` +
    (c.failed + c.timedOut > 0 ? ` (${c.failed} failed, ${c.timedOut} timed out)` : '');
  log(opts.logger, 'break-glass stop files cleared', message, outcomes, { revision: opts.revision, file, durationMs });
  return {
    clearedAt: opts.clock.now().toISOString(),
    revision: opts.revision,
    file,
    nodesTargeted: targets.length,
    nodesCleared: c.ok,
    nodesFailed: c.failed,
    nodesTimedOut: c.timedOut,
    outcomes,
    durationMs,
    message,
  };
}

/** One stop file on a node as `break-glass status` shows it: who (from the name) and what (from the content). */
export interface StopFileEntry {
  /** Its name in the stop directory (or the legacy file's base name). */
  name: string;
  /** From the name: `auto` (the operator), `manual` (a person), `legacy` (the previous single file), or `unknown` (a name none of ours). */
  issuer: StopIssuer | 'legacy' | 'unknown';
  /** From the content when it parses: the rollout, revision (`*`: every revision), reason and time. */
  rollout?: string;
  revision?: string;
  reason?: string;
  issuedAt?: string;
  /**
   * Why the content could not be read or is not a valid stop file. Agents treat such a file as a stop
   * of every revision (fail-safe), so it is shown, never hidden.
   */
  error?: string;
}

/** One node's stop files, or why they could not be listed. */
export interface NodeStopFiles {
  node: string;
  result: NodeOutcome['result'];
  message?: string;
  files: StopFileEntry[];
  /** More files than were listed. */
  truncated?: boolean;
}

/** What {@link breakGlassListing} found on a cluster's nodes. */
export interface BreakGlassListing {
  nodes: NodeStopFiles[];
  /** Nodes listed, and of those, with at least one stop file. */
  nodesListed: number;
  nodesWithStops: number;
  nodesFailed: number;
  nodesTimedOut: number;
}

/** Turns a transport's listing into entries: the issuer from the name, the rest from the content. */
export function stopFileEntries(listing: NodeListing): StopFileEntry[] {
  return (listing.files ?? []).map((f) => {
    const parts = f.legacy ? undefined : parseStopFileName(f.name);
    const e: StopFileEntry = { name: f.name, issuer: f.legacy ? 'legacy' : (parts?.issuer ?? 'unknown') };
    if (f.text === undefined) {
      e.error = f.error ?? 'unreadable';
      return e;
    }
    try {
      const c = parseStopFile(f.text);
      Object.assign(e, { rollout: c.rollout, revision: c.revision, reason: c.reason, issuedAt: c.issuedAt });
      if (parts !== undefined && parts.revision !== c.revision) e.error = `the name says revision ${parts.revision}, the content ${c.revision}`;
    } catch (err) {
      e.error = (err as Error).message;
    }
    return e;
  });
}

/**
 * Lists the stop files on `nodes` through the transport (read-only: `kubectl tro break-glass status`).
 * Node failures are in the result, never thrown.
 */
export async function breakGlassListing(transport: BreakGlassTransport, nodes: readonly NodeInfo[], signal?: AbortSignal): Promise<BreakGlassListing> {
  const listings = nodes.length === 0 ? [] : await transport.list(nodes, signal);
  const out: NodeStopFiles[] = listings.map((l) => {
    const n: NodeStopFiles = { node: l.node, result: l.result, files: stopFileEntries(l) };
    if (l.message !== undefined) n.message = l.message;
    if (l.truncated) n.truncated = true;
    return n;
  });
  const c = countOutcomes(listings);
  return { nodes: out, nodesListed: c.ok, nodesWithStops: out.filter((n) => n.files.length > 0).length, nodesFailed: c.failed, nodesTimedOut: c.timedOut };
}

function log(logger: Logger | undefined, event: string, message: string, outcomes: readonly NodeOutcome[], fields: Record<string, unknown>): void {
  if (logger === undefined) return;
  const bad = outcomes.filter((o) => o.result !== 'ok');
  logger.log(bad.length === 0 ? 'info' : 'warn', event, { ...fields, summary: message });
  for (const o of bad.slice(0, MAX_LOGGED_FAILURES)) {
    logger.warn('break-glass node not done', { node: o.node, result: o.result, detail: o.message, durationMs: o.durationMs });
  }
  if (bad.length > MAX_LOGGED_FAILURES) logger.warn('break-glass: more nodes not done', { count: bad.length - MAX_LOGGED_FAILURES });
}

/**
 * The status record of a cluster's break-glass (`status.clusters[].breakGlass`): the issue's counts,
 * and `clearedAt` once the files were cleared on every targeted node.
 */
export function breakGlassStatus(issued: BreakGlassResult, cleared?: ClearBreakGlassResult): BreakGlassStatus {
  const s: BreakGlassStatus = {
    issuedAt: issued.issuedAt,
    revision: issued.revision,
    nodesTargeted: issued.nodesTargeted,
    nodesStopped: issued.nodesStopped,
    nodesFailed: issued.nodesFailed,
    nodesTimedOut: issued.nodesTimedOut,
    message: issued.message,
  };
  if (cleared !== undefined) {
    if (cleared.nodesFailed + cleared.nodesTimedOut === 0) s.clearedAt = cleared.clearedAt;
    s.message = `${issued.message}; ${cleared.message}`;
  }
  return s;
}

/** Reads one key of a Secret (decoded). Implementations never put the value in an error. */
export interface SecretKeyReader {
  readSecretKey(ref: { name: string; key: string }, signal?: AbortSignal): Promise<string>;
}

/** {@link SecretKeyReader} over the management cluster's Secrets in one namespace (the rollout's). */
export class KubeSecretReader implements SecretKeyReader {
  private readonly api: Pick<CoreV1Api, 'readNamespacedSecret'>;
  private readonly namespace: string;

  /** `api`: a management-cluster KubeConfig or the API object; `namespace`: the rollout's. */
  constructor(api: KubeConfig | Pick<CoreV1Api, 'readNamespacedSecret'>, namespace: string) {
    this.api = api instanceof KubeConfig ? api.makeApiClient(CoreV1Api) : api;
    this.namespace = namespace;
  }

  async readSecretKey(ref: { name: string; key: string }, signal?: AbortSignal): Promise<string> {
    let secret;
    try {
      secret = await this.api.readNamespacedSecret({ name: ref.name, namespace: this.namespace }, signal && requestOptions(signal));
    } catch (err) {
      // The API error of a failed GET carries no Secret data; keep it as the cause for the status code.
      if (isNotFound(err)) throw new Error(`Secret ${this.namespace}/${ref.name} not found`, { cause: err });
      throw new Error(`read Secret ${this.namespace}/${ref.name}`, { cause: err });
    }
    const value = secret.data?.[ref.key];
    if (value === undefined) throw new Error(`Secret ${this.namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}`);
    return Buffer.from(value, 'base64').toString('utf8');
  }
}

/**
 * A transport spec as it may arrive: from the API server (defaults applied) or from a YAML file the
 * CLI reads offline (defaults missing). {@link transportFromSpec} applies the CRD's defaults.
 */
export type TransportSpecInput = Pick<BreakGlassTransportSpec, 'type'> &
  Partial<Pick<BreakGlassTransportSpec, 'concurrency' | 'timeoutSeconds' | 'stopDirectory' | 'stopFilePath' | 'exec' | 'local'>> & {
    ssh?: Partial<BreakGlassTransportSsh>;
  };

/** Options of {@link transportFromSpec}. */
export interface TransportFromSpecOptions {
  /** Where ssh credentials come from in the operator: the Secrets the spec names. */
  secrets?: SecretKeyReader;
  /** Where they come from for the CLI: files the person already has (used as they are, never copied). */
  sshCredentialFiles?: { privateKeyPath: string; knownHostsPath: string };
  /** Parent directory of the private temp directory for Secret-sourced credentials (default os.tmpdir()). */
  credentialsDir?: string;
  clock?: Clock;
  signal?: AbortSignal;
}

/**
 * Builds the transport `spec` describes, with the CRD's defaults (concurrency 20, timeout 10 s, the
 * default stop directory and legacy stop-file path, ssh port 22, InternalIP). For ssh the key and known_hosts come from
 * `sshCredentialFiles` or, through `secrets`, from the Secrets the spec names; the latter are written to
 * a private temp directory that the transport's `close()` removes, so always close it. Configuration
 * errors throw a {@link TerminalError} (reason `InvalidBreakGlassTransport`).
 */
export async function transportFromSpec(spec: TransportSpecInput, opts: TransportFromSpecOptions = {}): Promise<BreakGlassTransport> {
  const invalid = (msg: string): TerminalError => new TerminalError('InvalidBreakGlassTransport', `spec.breakGlass.transport: ${msg}`);
  const common = {
    concurrency: spec.concurrency ?? 20,
    timeoutSeconds: spec.timeoutSeconds ?? 10,
    stopDirectory: spec.stopDirectory ?? DEFAULT_STOP_DIRECTORY,
    stopFilePath: spec.stopFilePath ?? DEFAULT_STOP_FILE_PATH,
    clock: opts.clock,
  };
  try {
    switch (spec.type) {
      case 'local':
        if (!spec.local?.rootDir) throw invalid('type local needs local.rootDir');
        return new LocalTransport({ ...common, rootDir: spec.local.rootDir });
      case 'exec':
        if (!spec.exec?.command?.length) throw invalid('type exec needs exec.command');
        return new ExecTransport({ ...common, command: spec.exec.command });
      case 'ssh': {
        const ssh = spec.ssh;
        if (!ssh?.user) throw invalid('type ssh needs ssh.user');
        const base = { ...common, user: ssh.user, port: ssh.port ?? 22, addressType: ssh.addressType ?? 'InternalIP', sudo: ssh.sudo ?? false };
        if (opts.sshCredentialFiles !== undefined) return new SshTransport({ ...base, ...opts.sshCredentialFiles });
        if (opts.secrets === undefined) throw invalid('type ssh needs credentials: a Secret reader or credential files');
        if (!ssh.privateKeySecretRef || !ssh.knownHostsSecretRef) throw invalid('type ssh needs ssh.privateKeySecretRef and ssh.knownHostsSecretRef');
        const key = await opts.secrets.readSecretKey(ssh.privateKeySecretRef, opts.signal);
        const knownHosts = await opts.secrets.readSecretKey(ssh.knownHostsSecretRef, opts.signal);
        const files = await materializeSshCredentials(key, knownHosts, { parentDir: opts.credentialsDir });
        try {
          return new SshTransport({ ...base, privateKeyPath: files.privateKeyPath, knownHostsPath: files.knownHostsPath, onClose: files.cleanup });
        } catch (err) {
          await files.cleanup();
          throw err;
        }
      }
      default:
        throw invalid(`unknown type ${JSON.stringify((spec as { type: unknown }).type)}`);
    }
  } catch (err) {
    if (err instanceof TerminalError) throw err;
    // Constructor validation (a bad path, user, template, limit) is a configuration error too; Secret
    // reads and file writes are not (they may succeed on retry).
    if (err instanceof TransportConfigError) throw new TerminalError('InvalidBreakGlassTransport', `spec.breakGlass.transport: ${err.message}`, { cause: err });
    throw err;
  }
}
