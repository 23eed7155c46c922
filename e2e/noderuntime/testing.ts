/**
 * Helpers shared by the collector e2e test and `npm run bench:collector`: the collector's objects as the
 * operator renders them, node labelling, and measurements AT the API server (its /metrics and its audit
 * log), so that what is asserted or reported is what the control plane saw, not what the agents say.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { CollectorConfigInput } from '#collector/config.js';
import { validateRollout } from '../../operator/src/api/validate.js';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { histogramQuantile, histogramIncrease } from '../../operator/src/gates/quantile.js';
import { keepFamilies, samplesNamed } from '../../operator/src/gates/promselect.js';
import { parsePrometheusText, type Sample } from '../../operator/src/gates/promtext.js';
import { revisionObjects, sharedObjects } from '../../operator/src/rollout/desired.js';
import { REVISION_LABEL } from '../../operator/src/rollout/interfaces.js';
import type { ClusterHandle, Fleet, FleetInfo } from '../controlplane/fleet.js';
import { httpGet } from '../controlplane/net.js';

/** The field manager of the objects the e2e applies. */
export const E2E_FIELD_MANAGER = 'tro-e2e-collector';

/** A TelemetryRollout for `config`, validated and defaulted as the operator would; throws when invalid. */
export function collectorRollout(name: string, config: CollectorConfigInput): TelemetryRollout {
  const r = validateRollout({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name, namespace: 'telemetry-rollout-system' },
    spec: {
      collector: { image: 'ghcr.io/telemetry-rollout/collector:0.1.0', config },
      targets: { clusters: [{ name: 'big', kubeconfigSecretRef: { name: 'big-kubeconfig' } }] },
    },
  });
  if (!r.valid) throw new Error(`invalid rollout: ${JSON.stringify(r.errors)}`);
  return r.defaulted as unknown as TelemetryRollout;
}

/** Server-side applies objects (in order) with {@link E2E_FIELD_MANAGER}. */
export async function applyObjects(kc: KubeConfig, objects: object[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const obj of objects) {
    await api.patch(obj, undefined, undefined, E2E_FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

/** Applies the shared objects and one revision's objects of `rollout`, as the operator renders them. */
export async function applyCollector(kc: KubeConfig, rollout: TelemetryRollout, revision: string, stable: boolean): Promise<void> {
  await applyObjects(kc, [...sharedObjects(rollout), ...revisionObjects(rollout, revision, stable)]);
}

/**
 * Sets (or with `revision` null removes) the node label that places a revision's agents, on every named
 * node, a few at a time like the operator's paced relabelling.
 */
export async function labelNodes(kc: KubeConfig, nodes: string[], revision: string | null): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  let next = 0;
  const worker = async () => {
    while (next < nodes.length) {
      const name = nodes[next++] ?? '';
      // A merge patch with null removes the label; the object API sends the body as given.
      const body = { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [REVISION_LABEL]: revision } } };
      // A busy API server (the naive mode at work) may time a request out: retry a few times.
      for (let attempt = 1; ; attempt++) {
        try {
          await api.patch(body as unknown as KubernetesObject, undefined, undefined, E2E_FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 1000 * attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** The names of a cluster's nodes, sorted. */
export async function nodeNames(kc: KubeConfig): Promise<string[]> {
  const list = await kc.makeApiClient(CoreV1Api).listNode();
  return list.items
    .map((n) => n.metadata?.name ?? '')
    .filter(Boolean)
    .sort();
}

// ---------------------------------------------------------------------------------------------------
// The API server's /metrics

const FAMILIES = new Set(['apiserver_request_total', 'apiserver_response_sizes', 'apiserver_request_duration_seconds']);

/** One scrape of the families the measurements use. */
export interface ApiScrape {
  at: number;
  requests: Sample[];
  sizesSum: Sample[];
  durationBuckets: Sample[];
}

/** Scrapes a cluster's kube-apiserver /metrics (as the admin) keeping only what the measurements need. */
export async function scrapeApiServer(c: ClusterHandle): Promise<ApiScrape> {
  const r = await httpGet(`${c.apiServerURL}/metrics`, { ca: readFileSync(c.caFile), token: c.adminToken, timeoutMs: 60_000 });
  if (r.status !== 200) throw new Error(`${c.name}: GET /metrics: HTTP ${r.status}`);
  const parsed = parsePrometheusText(keepFamilies(r.body, FAMILIES));
  return {
    at: Date.now(),
    requests: samplesNamed(parsed, 'apiserver_request_total'),
    sizesSum: samplesNamed(parsed, 'apiserver_response_sizes_sum'),
    durationBuckets: samplesNamed(parsed, 'apiserver_request_duration_seconds_bucket'),
  };
}

/** Requests and response bytes of one verb/resource/scope over a window. */
export interface ApiRow {
  verb: string;
  resource: string;
  scope: string;
  requests: number;
  bytes: number;
}

/** What the API server did between two scrapes. */
export interface ApiWindow {
  seconds: number;
  rows: ApiRow[];
  /** p99 of request latency excluding WATCH/CONNECT and streaming subresources, seconds (NaN: none). */
  p99Seconds: number;
  /** Non-WATCH requests observed by the latency histogram in the window. */
  observations: number;
}

const rowKey = (l: Readonly<Record<string, string>>) => `${l.verb ?? ''}\t${l.resource ?? ''}\t${l.scope ?? ''}`;

function sumBy(samples: Sample[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of samples) m.set(rowKey(s.labels), (m.get(rowKey(s.labels)) ?? 0) + s.value);
  return m;
}

const LONG_RUNNING = new Set(['log', 'exec', 'portforward', 'attach', 'proxy']);

/** The API server's work between scrapes `a` and `b` (counter deltas; apiserver restarts not handled). */
export function apiWindow(a: ApiScrape, b: ApiScrape): ApiWindow {
  const ra = sumBy(a.requests);
  const rb = sumBy(b.requests);
  const ba = sumBy(a.sizesSum);
  const bb = sumBy(b.sizesSum);
  const rows: ApiRow[] = [];
  for (const [k, v] of rb) {
    const [verb = '', resource = '', scope = ''] = k.split('\t');
    const requests = v - (ra.get(k) ?? 0);
    const bytes = (bb.get(k) ?? 0) - (ba.get(k) ?? 0);
    if (requests > 0 || bytes > 0) rows.push({ verb, resource, scope, requests, bytes });
  }
  const filter = (l: Readonly<Record<string, string>>) => l.verb !== 'WATCH' && l.verb !== 'CONNECT' && !LONG_RUNNING.has(l.subresource ?? '');
  const inc = histogramIncrease(a.durationBuckets, b.durationBuckets, filter);
  return {
    seconds: (b.at - a.at) / 1000,
    rows,
    p99Seconds: inc.observations > 0 ? histogramQuantile(0.99, inc.buckets) : NaN,
    observations: inc.observations,
  };
}

/** Sums requests and bytes of the rows `pred` selects. */
export function total(w: ApiWindow, pred: (r: ApiRow) => boolean = () => true): { requests: number; bytes: number } {
  return w.rows.filter(pred).reduce((t, r) => ({ requests: t.requests + r.requests, bytes: t.bytes + r.bytes }), { requests: 0, bytes: 0 });
}

// ---------------------------------------------------------------------------------------------------
// The API server's audit log

/**
 * Turns on kube-apiserver's audit log for the requests of `users` (Metadata level: who, what, when,
 * user agent; no bodies) and restarts the API server so the flags apply.
 *
 * Why this way: the harness has no option for extra kube-apiserver flags, but restarts a process with
 * the command line recorded in the fleet's info file (`FleetInfo.processes`), so the flags are added
 * there. Only for a fleet the caller started itself. Resolves with the audit log's path once the API
 * server is ready again.
 */
export async function enableAuditLog(fleet: Fleet, cluster: string, users: string[]): Promise<string> {
  const dir = path.join(fleet.workDir, cluster);
  const policyFile = path.join(dir, 'audit-policy.yaml');
  const logFile = path.join(dir, 'audit.log');
  writeFileSync(
    policyFile,
    stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      // One event when a request arrives (its time is what the stop-file check needs) and one when it ends.
      omitStages: ['ResponseStarted'],
      rules: [{ level: 'Metadata', users }, { level: 'None' }],
    }),
  );
  const info = JSON.parse(readFileSync(fleet.infoFile, 'utf8')) as FleetInfo;
  const rec = info.processes.find((p) => p.id === `${cluster}/kube-apiserver`);
  if (!rec) throw new Error(`fleet has no ${cluster}/kube-apiserver`);
  rec.args = [
    ...rec.args.filter((a) => !a.startsWith('--audit-')),
    `--audit-policy-file=${policyFile}`,
    `--audit-log-path=${logFile}`,
    '--audit-log-format=json',
    // Blocking: the event is written before the request proceeds, so its timestamp is exact.
    '--audit-log-mode=blocking',
    '--audit-log-maxsize=0',
  ];
  const tmp = `${fleet.infoFile}.${process.pid}.audit.tmp`;
  writeFileSync(tmp, JSON.stringify(info, null, 2), { mode: 0o600 });
  renameSync(tmp, fleet.infoFile);
  await fleet.cluster(cluster).restartApiServer();
  return logFile;
}

/** One audit event, the fields the measurements read. */
export interface AuditEvent {
  /** Same for the RequestReceived and ResponseComplete events of one request. */
  auditID: string;
  stage: string;
  verb: string;
  userAgent: string;
  requestURI: string;
  objectRef?: { resource?: string; namespace?: string; name?: string };
  requestReceivedTimestamp: string;
  /** When this stage happened (for ResponseComplete: when the response, or the watch, ended). */
  stageTimestamp?: string;
  responseStatus?: { code?: number };
}

/** Reads an audit log incrementally: each call returns the events appended since the previous one. */
export class AuditReader {
  private offset = 0;
  private rest = '';
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  /** Skips everything written so far. */
  async skipToEnd(): Promise<void> {
    await this.read();
  }

  /** Events appended since the last call. */
  async read(): Promise<AuditEvent[]> {
    const fh = await open(this.file, 'r').catch(() => undefined);
    if (!fh) return [];
    try {
      const { size } = await fh.stat();
      if (size <= this.offset) return [];
      const buf = Buffer.alloc(size - this.offset);
      await fh.read(buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.rest + buf.toString('utf8');
      const lines = text.split('\n');
      this.rest = lines.pop() ?? '';
      return lines.filter((l) => l.trim()).map((l) => JSON.parse(l) as AuditEvent);
    } finally {
      await fh.close();
    }
  }
}

/** Requests as they arrived (one RequestReceived event each). */
export function arrivals(events: AuditEvent[]): AuditEvent[] {
  return events.filter((e) => e.stage === 'RequestReceived');
}

/**
 * The most requests selected by `pred` that were open at the same time, from their RequestReceived and
 * ResponseComplete events (a request with no ResponseComplete yet is still open). For watches, this is
 * the number of watch connections, whatever the number of reconnections.
 */
export function maxConcurrent(events: AuditEvent[], pred: (e: AuditEvent) => boolean): number {
  const points: Array<[number, number]> = [];
  for (const e of events) {
    if (!pred(e)) continue;
    if (e.stage === 'RequestReceived') points.push([Date.parse(e.requestReceivedTimestamp), 1]);
    // ResponseComplete events carry stageTimestamp; the arrival time sorts a close after its open.
    else if (e.stage === 'ResponseComplete') points.push([Date.parse(e.stageTimestamp ?? e.requestReceivedTimestamp), -1]);
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) {
    open += d;
    max = Math.max(max, open);
  }
  return max;
}

/** Whether an audited request is a cluster-wide LIST or WATCH (no namespace, no name). */
export function isClusterWideListOrWatch(e: AuditEvent): boolean {
  return (e.verb === 'list' || e.verb === 'watch') && !e.objectRef?.namespace && !e.objectRef?.name;
}
