// The handles of a fleet: ClusterHandle (with its fault controls) and Fleet, over the FleetState of
// fleet-state.ts, and the readiness waits that starting and restarting components share.
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { FleetState } from './fleet-state.js';
import type { ClusterHandle, ClusterInfo, Fleet, UserInfo } from './fleet-types.js';
import { httpGet, waitUntil } from './net.js';
import { exitReason, isAlive, isStopped, rssKiB, signalIfOurs, tail, type ProcessRecord, type Role } from './processes.js';

const API_READY_TIMEOUT_MS = 90_000;

/**
 * Blocks (at most 5 s) until `pid` is stopped (`stopped` true) or no longer stopped. Synchronous on
 * purpose: pause/resume are synchronous in the ClusterHandle contract, and the wait is milliseconds.
 */
function waitStateSync(pid: number, stopped: boolean): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 500 && isStopped(pid) !== stopped; i++) Atomics.wait(cell, 0, 0, 10);
}

/** Waits until the cluster's kube-apiserver answers /readyz (fails early when the process dies). */
export async function waitApiReady(st: FleetState, c: ClusterInfo, timeoutMs = API_READY_TIMEOUT_MS): Promise<void> {
  const ca = readFileSync(c.caFile);
  const pid = () => st.record(`${c.name}/kube-apiserver`).pid;
  await waitUntil(
    `${c.name}: kube-apiserver /readyz`,
    async () => {
      const r = await httpGet(`${c.apiServerURL}/readyz`, { ca, token: c.adminToken, timeoutMs: 5000 });
      return r.status === 200;
    },
    { timeoutMs, intervalMs: 300, abort: () => (isAlive(pid()) ? undefined : `kube-apiserver ${exitReason(pid()) ?? 'exited'}`) },
  );
}

/** Waits until `url` of the cluster's CoreDNS answers 200 (fails early when the process dies). */
export async function waitCoreDNS(st: FleetState, c: ClusterInfo, url: string, timeoutMs: number): Promise<void> {
  const pid = () => st.record(`${c.name}/coredns`).pid;
  await waitUntil(`${c.name}: CoreDNS ${url}`, async () => (await httpGet(url, { timeoutMs: 2000 })).status === 200, {
    timeoutMs,
    intervalMs: 200,
    abort: () => (isAlive(pid()) ? undefined : `coredns ${exitReason(pid()) ?? 'exited'}`),
  });
}

class Cluster implements ClusterHandle {
  private readonly st: FleetState;
  private readonly c: ClusterInfo;
  private kubeconfigText: string | undefined;

  constructor(st: FleetState, c: ClusterInfo) {
    this.st = st;
    this.c = c;
  }

  get kubeconfig(): string {
    this.kubeconfigText ??= readFileSync(this.c.kubeconfigPath, 'utf8');
    return this.kubeconfigText;
  }

  get name() {
    return this.c.name;
  }
  get kubeconfigPath() {
    return this.c.kubeconfigPath;
  }
  get context() {
    return this.c.context;
  }
  get apiServerURL() {
    return this.c.apiServerURL;
  }
  get adminToken() {
    return this.c.adminToken;
  }
  get caFile() {
    return this.c.caFile;
  }
  get nodes() {
    return this.c.nodes;
  }
  get dns() {
    return this.c.dns;
  }
  get coreDNSMetricsURL() {
    return this.c.coreDNSMetricsURL;
  }
  get users() {
    return this.c.users;
  }

  get pids(): Partial<Record<Role, number>> {
    const out: Partial<Record<Role, number>> = {};
    for (const p of this.st.info.processes) {
      if (p.cluster === this.c.name || (p.role === 'etcd' && p.cluster === undefined)) out[p.role] = p.pid;
    }
    return out;
  }

  user(name: string): UserInfo {
    const u = this.c.users.find((x) => x.name === name);
    if (!u) throw new Error(`cluster ${this.c.name} has no extra user ${name}`);
    return u;
  }

  kubeConfig(user?: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(user === undefined ? this.kubeconfig : readFileSync(this.user(user).kubeconfigPath, 'utf8'));
    return kc;
  }

  private apiServer(): ProcessRecord {
    this.st.reload();
    return this.st.record(`${this.c.name}/kube-apiserver`);
  }

  pauseApiServer(): void {
    const rec = this.apiServer();
    signalIfOurs(rec, 'SIGSTOP');
    // SIGSTOP reaches every thread of a Go process asynchronously; callers (and tests asserting the
    // fault) expect the process frozen when this returns, so wait for /proc to say so.
    waitStateSync(rec.pid, true);
  }

  resumeApiServer(): void {
    const rec = this.apiServer();
    signalIfOurs(rec, 'SIGCONT');
    waitStateSync(rec.pid, false);
  }

  async restartApiServer(): Promise<void> {
    await this.st.restart(`${this.c.name}/kube-apiserver`);
    await waitApiReady(this.st, this.c);
  }

  async restartCoreDNS(): Promise<void> {
    await this.st.restart(`${this.c.name}/coredns`);
    await waitCoreDNS(this.st, this.c, this.c.coreDNSHealthURL, 30_000);
  }

  async waitCoreDNSReady(timeoutMs = 60_000): Promise<void> {
    await waitCoreDNS(this.st, this.c, this.c.coreDNSReadyURL, timeoutMs);
  }
}

/** The {@link Fleet} handle over a fleet's state, whoever started it. */
export class RunningFleet implements Fleet {
  private readonly st: FleetState;
  readonly clusters: ClusterHandle[];

  constructor(st: FleetState) {
    this.st = st;
    this.clusters = st.info.clusters.map((c) => new Cluster(st, c));
  }

  get workDir() {
    return this.st.info.workDir;
  }
  get binDir() {
    return this.st.info.binDir;
  }
  get infoFile() {
    return this.st.infoFile;
  }
  get startupSeconds() {
    return this.st.info.startupSeconds;
  }

  cluster(name: string): ClusterHandle {
    const c = this.clusters.find((x) => x.name === name);
    if (!c) throw new Error(`fleet has no cluster ${name} (has ${this.clusters.map((x) => x.name).join(', ')})`);
    return c;
  }

  processes(): ProcessRecord[] {
    this.st.reload();
    return this.st.info.processes.map((p) => ({ ...p }));
  }

  rss() {
    return this.processes().map((p) => ({ id: p.id, role: p.role, pid: p.pid, rssKiB: rssKiB(p.pid) }));
  }

  logs(lines = 50): string {
    return this.processes()
      .map((p) => {
        const state = isAlive(p.pid) ? 'running' : (exitReason(p.pid) ?? 'not running');
        return `----- ${p.id} (pid ${p.pid}, ${state}) ${p.logFile}\n${tail(p.logFile, lines)}`;
      })
      .join('\n');
  }

  dumpLogs(lines = 50): void {
    process.stderr.write(`${this.logs(lines)}\n`);
  }

  stop(): Promise<void> {
    return this.st.stop();
  }
}
