// The local control-plane harness: a fleet of real Kubernetes clusters on one machine.
//
// Per cluster: kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes and pods) and an
// out-of-cluster CoreDNS; one etcd shared by every cluster (distinct key prefixes) unless asked otherwise.
// Everything listens on 127.0.0.1 on ports chosen at start.
//
// The fleet is described by a JSON info file so that other processes (jest workers, the teardown, a
// person's shell) can attach to it: `attachFleet(infoFile)` gives handles whose fault controls work from
// there, and a restart writes the new pid back so the teardown kills the current process.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig, CoreV1Api } from '@kubernetes/client-node';
import {
  apiServerArgs, controllerManagerArgs, coreDNSArgs, corefile, etcdArgs, kubeconfig, kwokArgs, schedulerArgs, tokenFile,
  type ClusterLayout, type StaticToken,
} from './components.js';
import { freePort, httpGet, waitUntil } from './net.js';
import { createNodes, populatePods } from './nodes.js';
import { caData, createPki } from './pki.js';
import { findRepoRoot } from '../../operator/src/api/crd.js';
import {
  exitReason, isAlive, isStopped, killNow, rssKiB, signalIfOurs, spawnLogged, stopProcesses, tail, type ProcessRecord, type ProcessSpec, type Role,
} from './processes.js';

/** One cluster of a fleet to start. */
export interface ClusterSpec {
  /** DNS-1123 label, unique in the fleet (e.g. `east`). */
  name: string;
  /** Number of kwok nodes to register (0 is allowed: a control plane without nodes). */
  nodes: number;
  /** Pause pods per node from Deployments in namespace `tro-population`; 0 (default) for none. */
  podsPerNode?: number;
}

/**
 * A user added to every cluster's static token file, for running code under real RBAC instead of
 * cluster-admin. `name` may be a service account's user name (`system:serviceaccount:<ns>:<sa>`): RBAC
 * bindings to that ServiceAccount then apply, and its groups default to that of a service account.
 */
export interface ExtraUser {
  name: string;
  /** Groups besides `system:authenticated` (which the API server adds itself). */
  groups?: string[];
}

/** Options of {@link startFleet}. */
export interface StartFleetOptions {
  clusters: ClusterSpec[];
  /** Parent directory of the fleet's fresh work dir (default: the OS temp dir). */
  workDir?: string;
  /** One etcd for all clusters (default) or one etcd per cluster. */
  sharedEtcd?: boolean;
  extraUsers?: ExtraUser[];
  /** Directory with the binaries; default: env TRO_CONTROLPLANE_BIN, else the output of build.sh. */
  binDir?: string;
  /** Progress lines (default: stderr with a timestamp). */
  log?: (line: string) => void;
  /** Keep the work dir (logs, kubeconfigs) after stop() for debugging; default env TRO_E2E_KEEP_WORKDIR=1. */
  keepWorkDir?: boolean;
  /**
   * Stop the fleet on SIGINT/SIGTERM/SIGHUP and then exit the process (default true). Whatever the value, a
   * process that exits kills the fleet's processes synchronously.
   */
  handleSignals?: boolean;
}

/** Credentials of an extra user in one cluster. */
export interface UserInfo {
  name: string;
  groups: string[];
  token: string;
  context: string;
  kubeconfigPath: string;
}

/** The serialisable description of one cluster (part of the info file). */
export interface ClusterInfo {
  name: string;
  /** Position in the fleet; decides the nodes' InternalIP range 10.<100+index>.0.0/16. */
  index: number;
  nodes: number;
  podsPerNode: number;
  context: string;
  kubeconfigPath: string;
  apiServerURL: string;
  adminToken: string;
  caFile: string;
  etcdPrefix: string;
  dns: { host: string; port: number };
  coreDNSMetricsURL: string;
  coreDNSReadyURL: string;
  coreDNSHealthURL: string;
  users: UserInfo[];
}

/** The info file's content. Contains tokens: the file is mode 0600 inside the fleet's private work dir. */
export interface FleetInfo {
  version: 1;
  /** The process that started the fleet. */
  ownerPid: number;
  workDir: string;
  binDir: string;
  keepWorkDir: boolean;
  createdAt: string;
  /** Seconds from startFleet() to a fleet with every node Ready (binaries already built). */
  startupSeconds?: number;
  processes: ProcessRecord[];
  clusters: ClusterInfo[];
}

/**
 * Handle of one running cluster. Fault controls act on the real processes. A process that a restart
 * starts belongs to the calling process: it is killed when that process dies (run e2e tests in band).
 */
export interface ClusterHandle {
  readonly name: string;
  readonly kubeconfigPath: string;
  /** The admin kubeconfig (CA data and token embedded). */
  readonly kubeconfig: string;
  readonly context: string;
  readonly apiServerURL: string;
  /** Bearer token of a `system:masters` user. Never log it. */
  readonly adminToken: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  readonly caFile: string;
  readonly nodes: number;
  /** Where this cluster's CoreDNS answers (UDP and TCP). */
  readonly dns: { host: string; port: number };
  /** CoreDNS's Prometheus endpoint. */
  readonly coreDNSMetricsURL: string;
  /** Current pid per role (the shared etcd under `etcd` too). Updated by restarts. */
  readonly pids: Partial<Record<Role, number>>;
  /** Extra users' credentials, in the order given to startFleet. */
  readonly users: UserInfo[];
  /** An extra user's credentials by name; throws when unknown. */
  user(name: string): UserInfo;
  /** A client-node KubeConfig for the admin (or the named extra user). */
  kubeConfig(user?: string): KubeConfig;
  /** SIGSTOP the kube-apiserver: connections hang, nothing answers (like an overloaded server). */
  pauseApiServer(): void;
  /** SIGCONT the kube-apiserver. */
  resumeApiServer(): void;
  /** Stop (SIGTERM) and start the kube-apiserver again on the same port; resolves once /readyz is ok. */
  restartApiServer(): Promise<void>;
  /**
   * Stop and start CoreDNS on the same ports; resolves once it serves (/health ok), not when it has
   * synced with the API server, so it can be used while the API server is paused.
   */
  restartCoreDNS(): Promise<void>;
  /** Resolves once CoreDNS reports ready (its kubernetes plugin has synced). */
  waitCoreDNSReady(timeoutMs?: number): Promise<void>;
}

/**
 * Blocks (at most 5 s) until `pid` is stopped (`stopped` true) or no longer stopped. Synchronous on
 * purpose: pause/resume are synchronous in the ClusterHandle contract, and the wait is milliseconds.
 */
function waitStateSync(pid: number, stopped: boolean): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 500 && isStopped(pid) !== stopped; i++) Atomics.wait(cell, 0, 0, 10);
}

/** A running fleet. */
export interface Fleet {
  readonly workDir: string;
  /** Directory of the binaries the fleet runs (also holds a kubectl of the same version). */
  readonly binDir: string;
  /** Path of the JSON info file; give it to {@link attachFleet} in another process. */
  readonly infoFile: string;
  readonly clusters: ClusterHandle[];
  /** The cluster by name; throws when unknown. */
  cluster(name: string): ClusterHandle;
  /** Every process of the fleet with its current pid. */
  processes(): ProcessRecord[];
  /** Seconds the start took (undefined while starting). */
  readonly startupSeconds: number | undefined;
  /** RSS in KiB of every running process. */
  rss(): Array<{ id: string; role: Role; pid: number; rssKiB: number | undefined }>;
  /** The last `lines` lines of every process's log, with a header per process. */
  logs(lines?: number): string;
  /** Prints {@link logs} to stderr. */
  dumpLogs(lines?: number): void;
  /**
   * Kills every process (SIGCONT, SIGTERM, SIGKILL after 10 s) and removes the work dir. Idempotent;
   * throws if a process survives, after removing what it could.
   */
  stop(): Promise<void>;
}

const HERE = dirname(fileURLToPath(import.meta.url));
/** The build script the harness runs to get binaries (found from the repository root, wherever the harness runs from). */
export const BUILD_SCRIPT = join(findRepoRoot(HERE), 'e2e', 'controlplane', 'build.sh');
const DNS_LABEL = /^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/;
const API_READY_TIMEOUT_MS = 90_000;

function defaultLog(line: string): void {
  process.stderr.write(`[fleet ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** Runs build.sh (its progress goes to our stderr) and returns the bin dir it prints last. */
export async function ensureBinaries(): Promise<string> {
  if (process.env.TRO_CONTROLPLANE_BIN) return resolve(process.env.TRO_CONTROLPLANE_BIN);
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', (err) => rej(new Error(`run ${BUILD_SCRIPT}`, { cause: err })));
    child.on('exit', (c) => res(c));
  });
  if (code !== 0) throw new Error(`${BUILD_SCRIPT} failed with exit code ${code}`);
  const dir = out.trim().split('\n').pop();
  if (!dir) throw new Error(`${BUILD_SCRIPT} printed no bin dir`);
  return dir;
}

function writeJSONAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

function readInfo(file: string): FleetInfo {
  let info: FleetInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as FleetInfo;
  } catch (cause) {
    throw new Error(`read fleet info ${file}`, { cause });
  }
  if (info.version !== 1) throw new Error(`fleet info ${file}: unsupported version ${String(info.version)}`);
  return info;
}

function safeName(s: string): string {
  return s.replace(/[^a-zA-Z0-9_.-]+/g, '-');
}

// Fleets owned (started) by this process: the exit hook kills them even when stop() was never called.
const owned = new Set<FleetState>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

function installHooks(handleSignals: boolean): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const st of owned) {
        killNow(st.info.processes);
        if (!st.info.keepWorkDir) rmSync(st.info.workDir, { recursive: true, force: true });
      }
    });
  }
  if (handleSignals && !signalHooksInstalled) {
    signalHooksInstalled = true;
    const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        defaultLog(`${sig}: stopping ${owned.size} fleet(s)`);
        void Promise.allSettled([...owned].map((st) => st.stop())).then(() => process.exit(codes[sig]));
      });
    }
  }
}

/** The mutable state behind a fleet's handles: the info file and its process records. */
class FleetState {
  info: FleetInfo;
  readonly infoFile: string;
  private stopping: Promise<void> | undefined;

  constructor(info: FleetInfo, infoFile: string) {
    this.info = info;
    this.infoFile = infoFile;
  }

  save(): void {
    writeJSONAtomic(this.infoFile, this.info);
  }

  /**
   * Re-reads pids another process may have changed (a restart in a jest worker). When the file is gone
   * (the fleet was stopped through another handle) it keeps what it knows.
   */
  reload(): void {
    if (!existsSync(this.infoFile)) return;
    this.info = readInfo(this.infoFile);
  }

  record(id: string): ProcessRecord {
    const rec = this.info.processes.find((p) => p.id === id);
    if (!rec) throw new Error(`fleet has no process ${id}`);
    return rec;
  }

  /**
   * Spawns a spec and records it (replacing an earlier incarnation with the same id). Refuses once the
   * fleet is stopping, so a start still in progress when a signal stopped the fleet leaves nothing behind.
   */
  start(spec: ProcessSpec): ProcessRecord {
    if (this.stopping) throw new Error(`fleet ${this.info.workDir} is stopping: not starting ${spec.id}`);
    const rec = spawnLogged(spec);
    this.info.processes = [...this.info.processes.filter((p) => p.id !== spec.id), rec];
    this.save();
    return rec;
  }

  /** Stop and start one process again with the same command line. */
  async restart(id: string): Promise<ProcessRecord> {
    this.reload();
    const old = this.record(id);
    try {
      await stopProcesses([old]);
    } catch (cause) {
      throw new Error(`restart ${id}: stop pid ${old.pid}`, { cause });
    }
    const { pid: _pid, ...spec } = old;
    return this.start(spec);
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    // Let stop() record the promise first, so start() sees the fleet as stopping from here on.
    await Promise.resolve();
    this.reload();
    const errors: unknown[] = [];
    const procs = this.info.processes;
    // Everything that talks to etcd goes first so etcd is not killed under live API servers.
    try {
      await stopProcesses(procs.filter((p) => p.role !== 'etcd'));
    } catch (err) {
      errors.push(err);
    }
    try {
      await stopProcesses(procs.filter((p) => p.role === 'etcd'));
    } catch (err) {
      errors.push(err);
    }
    owned.delete(this);
    if (!this.info.keepWorkDir) {
      try {
        rmSync(this.info.workDir, { recursive: true, force: true });
      } catch (err) {
        errors.push(new Error(`remove ${this.info.workDir}`, { cause: err }));
      }
    }
    if (errors.length > 0) throw new Error(`stop fleet ${this.info.workDir}: ${errors.length} error(s)`, { cause: errors[0] });
  }
}

async function waitApiReady(st: FleetState, c: ClusterInfo, timeoutMs = API_READY_TIMEOUT_MS): Promise<void> {
  const ca = readFileSync(c.caFile);
  const pid = () => st.record(`${c.name}/kube-apiserver`).pid;
  await waitUntil(`${c.name}: kube-apiserver /readyz`, async () => {
    const r = await httpGet(`${c.apiServerURL}/readyz`, { ca, token: c.adminToken, timeoutMs: 5000 });
    return r.status === 200;
  }, { timeoutMs, intervalMs: 300, abort: () => (isAlive(pid()) ? undefined : `kube-apiserver ${exitReason(pid()) ?? 'exited'}`) });
}

async function waitCoreDNS(st: FleetState, c: ClusterInfo, url: string, timeoutMs: number): Promise<void> {
  const pid = () => st.record(`${c.name}/coredns`).pid;
  await waitUntil(`${c.name}: CoreDNS ${url}`, async () => (await httpGet(url, { timeoutMs: 2000 })).status === 200, {
    timeoutMs, intervalMs: 200, abort: () => (isAlive(pid()) ? undefined : `coredns ${exitReason(pid()) ?? 'exited'}`),
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

  get name() { return this.c.name; }
  get kubeconfigPath() { return this.c.kubeconfigPath; }
  get context() { return this.c.context; }
  get apiServerURL() { return this.c.apiServerURL; }
  get adminToken() { return this.c.adminToken; }
  get caFile() { return this.c.caFile; }
  get nodes() { return this.c.nodes; }
  get dns() { return this.c.dns; }
  get coreDNSMetricsURL() { return this.c.coreDNSMetricsURL; }
  get users() { return this.c.users; }

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

class RunningFleet implements Fleet {
  private readonly st: FleetState;
  readonly clusters: ClusterHandle[];

  constructor(st: FleetState) {
    this.st = st;
    this.clusters = st.info.clusters.map((c) => new Cluster(st, c));
  }

  get workDir() { return this.st.info.workDir; }
  get binDir() { return this.st.info.binDir; }
  get infoFile() { return this.st.infoFile; }
  get startupSeconds() { return this.st.info.startupSeconds; }

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
    return this.processes().map((p) => {
      const state = isAlive(p.pid) ? 'running' : (exitReason(p.pid) ?? 'not running');
      return `----- ${p.id} (pid ${p.pid}, ${state}) ${p.logFile}\n${tail(p.logFile, lines)}`;
    }).join('\n');
  }

  dumpLogs(lines = 50): void {
    process.stderr.write(`${this.logs(lines)}\n`);
  }

  stop(): Promise<void> {
    return this.st.stop();
  }
}

/**
 * Attaches to a fleet started elsewhere (another process or module) through its info file. The handles'
 * fault controls work from here; restarts are recorded in the info file. `stop()` stops the fleet for
 * everyone. Attaching installs no exit hook: the fleet belongs to its starter.
 */
export function attachFleet(infoFile: string): Fleet {
  return new RunningFleet(new FleetState(readInfo(infoFile), infoFile));
}

/**
 * Stops the processes and removes the work dirs of fleets under `base` whose owner process is dead (a
 * run killed with SIGKILL gets no exit hook). Fleets of live owners and kept work dirs are left alone; a
 * pid is only signalled while it still runs the fleet's binary. Returns the work dirs it reaped.
 */
export async function reapStaleFleets(base: string = tmpdir()): Promise<string[]> {
  const reaped: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(base).filter((e) => e.startsWith('tro-fleet-'));
  } catch {
    return reaped;
  }
  for (const e of entries) {
    const infoFile = join(base, e, 'fleet.json');
    if (!existsSync(infoFile)) continue;
    let info: FleetInfo;
    try {
      info = readInfo(infoFile);
    } catch {
      continue; // Half-written by a live starter, or not ours: leave it.
    }
    if (isAlive(info.ownerPid) || info.keepWorkDir) continue;
    await stopProcesses(info.processes);
    rmSync(info.workDir, { recursive: true, force: true });
    reaped.push(info.workDir);
  }
  return reaped;
}

function validate(specs: ClusterSpec[]): void {
  if (specs.length === 0) throw new Error('startFleet: no clusters');
  if (specs.length > 140) throw new Error('startFleet: at most 140 clusters');
  const seen = new Set<string>();
  for (const s of specs) {
    if (!DNS_LABEL.test(s.name)) throw new Error(`startFleet: cluster name ${JSON.stringify(s.name)} is not a DNS label of at most 32 characters`);
    if (seen.has(s.name)) throw new Error(`startFleet: duplicate cluster name ${s.name}`);
    seen.add(s.name);
    if (!Number.isInteger(s.nodes) || s.nodes < 0) throw new Error(`startFleet: ${s.name}: nodes must be an integer >= 0`);
    if (s.podsPerNode !== undefined && (!Number.isInteger(s.podsPerNode) || s.podsPerNode < 0)) {
      throw new Error(`startFleet: ${s.name}: podsPerNode must be an integer >= 0`);
    }
  }
}

function serviceAccountGroups(name: string): string[] {
  const m = /^system:serviceaccount:([^:]+):[^:]+$/.exec(name);
  return m ? ['system:serviceaccounts', `system:serviceaccounts:${m[1]}`] : [];
}

const token = () => randomBytes(24).toString('hex');

/**
 * Starts a fleet and resolves once every API server is ready, every node Ready, every CoreDNS synced and
 * the pod population (if any) available. Binaries come from build.sh (built on first use, minutes).
 * On failure it prints the processes' last log lines to stderr, stops what it started and rethrows.
 * First it reaps fleets left in the same parent dir by dead owners (see {@link reapStaleFleets}).
 */
export async function startFleet(opts: StartFleetOptions): Promise<Fleet> {
  validate(opts.clusters);
  const log = opts.log ?? defaultLog;
  const t0 = Date.now();
  const binDir = opts.binDir ?? (await ensureBinaries());
  const bin = (name: string) => join(binDir, name);
  const base = opts.workDir ?? tmpdir();
  mkdirSync(base, { recursive: true });
  for (const dir of await reapStaleFleets(base)) log(`reaped a stale fleet whose owner is gone: ${dir}`);
  const workDir = mkdtempSync(join(base, 'tro-fleet-'));
  chmodSync(workDir, 0o700);
  const logDir = join(workDir, 'logs');
  mkdirSync(logDir);
  const st = new FleetState({
    version: 1,
    ownerPid: process.pid,
    workDir,
    binDir,
    keepWorkDir: opts.keepWorkDir ?? process.env.TRO_E2E_KEEP_WORKDIR === '1',
    createdAt: new Date().toISOString(),
    processes: [],
    clusters: [],
  }, join(workDir, 'fleet.json'));
  st.save();
  owned.add(st);
  installHooks(opts.handleSignals ?? true);
  const logFile = (id: string) => join(logDir, `${safeName(id.replace('/', '_'))}.log`);

  try {
    const pki = createPki(join(workDir, 'pki'));
    const ca = caData(pki);

    const startEtcd = async (id: string, cluster?: string): Promise<string> => {
      const clientPort = await freePort();
      const peerPort = await freePort();
      const dataDir = join(workDir, safeName(id.replace('/', '_')));
      st.start({
        id, role: 'etcd', ...(cluster ? { cluster } : {}), command: bin('etcd'), logFile: logFile(id),
        args: etcdArgs({ name: 'tro-e2e', dataDir, clientPort, peerPort }),
      });
      const url = `http://127.0.0.1:${clientPort}`;
      await waitUntil(`${id} /health`, async () => {
        const r = await httpGet(`${url}/health`, { timeoutMs: 2000 });
        return r.status === 200 && r.body.includes('"true"');
      }, { timeoutMs: 30_000, abort: () => (isAlive(st.record(id).pid) ? undefined : `etcd ${exitReason(st.record(id).pid) ?? 'exited'}`) });
      log(`${id} ready at ${url}`);
      return url;
    };

    const sharedEtcd = opts.sharedEtcd ?? true;
    const sharedEtcdURL = sharedEtcd ? await startEtcd('etcd') : undefined;

    // API servers start one after the other: several at once on two cores make each take minutes.
    for (const [index, spec] of opts.clusters.entries()) {
      const t = Date.now();
      const name = spec.name;
      const dir = join(workDir, name);
      mkdirSync(join(dir, 'users'), { recursive: true });
      const etcdURL = sharedEtcdURL ?? (await startEtcd(`${name}/etcd`, name));
      const layout: ClusterLayout = {
        name,
        etcdURL,
        etcdPrefix: `/tro/${name}`,
        apiServerPort: await freePort(),
        dnsPort: await freePort(),
        dnsMetricsPort: await freePort(),
        dnsHealthPort: await freePort(),
        dnsReadyPort: await freePort(),
        files: {
          tokenFile: join(dir, 'tokens.csv'),
          certDir: join(dir, 'apiserver-certs'),
          caCert: pki.caCert,
          serverCert: pki.serverCert,
          serverKey: pki.serverKey,
          serviceAccountKey: pki.serviceAccountKey,
          serviceAccountPub: pki.serviceAccountPub,
          controllerManagerKubeconfig: join(dir, 'kube-controller-manager.kubeconfig'),
          schedulerKubeconfig: join(dir, 'kube-scheduler.kubeconfig'),
          kwokKubeconfig: join(dir, 'kwok.kubeconfig'),
          coreDNSKubeconfig: join(dir, 'coredns.kubeconfig'),
          corefile: join(dir, 'Corefile'),
        },
      };
      const server = `https://127.0.0.1:${layout.apiServerPort}`;
      const adminToken = token();
      const components: Array<{ role: Role; user: string; file: string; token: string }> = [
        { role: 'kube-controller-manager', user: 'system:kube-controller-manager', file: layout.files.controllerManagerKubeconfig, token: token() },
        { role: 'kube-scheduler', user: 'system:kube-scheduler', file: layout.files.schedulerKubeconfig, token: token() },
        { role: 'kwok', user: 'kwok-controller', file: layout.files.kwokKubeconfig, token: token() },
        { role: 'coredns', user: 'system:serviceaccount:kube-system:coredns', file: layout.files.coreDNSKubeconfig, token: token() },
      ];
      const users: UserInfo[] = (opts.extraUsers ?? []).map((u) => ({
        name: u.name,
        groups: u.groups ?? serviceAccountGroups(u.name),
        token: token(),
        context: `${name}-${safeName(u.name)}`,
        kubeconfigPath: join(dir, 'users', `${safeName(u.name)}.kubeconfig`),
      }));
      const tokens: StaticToken[] = [
        { token: adminToken, user: 'admin', uid: 'admin', groups: ['system:masters'] },
        // Components run with full rights under their usual user names, so API server logs and metrics attribute their requests.
        ...components.map((c) => ({ token: c.token, user: c.user, uid: c.user, groups: ['system:masters'] })),
        ...users.map((u) => ({ token: u.token, user: u.name, uid: `uid-${safeName(u.name)}`, groups: u.groups })),
      ];
      writeFileSync(layout.files.tokenFile, tokenFile(tokens), { mode: 0o600 });
      const kubeconfigPath = join(dir, 'kubeconfig');
      writeFileSync(kubeconfigPath, kubeconfig({ cluster: name, server, caData: ca, user: `${name}-admin`, token: adminToken, context: name }), { mode: 0o600 });
      for (const c of components) {
        writeFileSync(c.file, kubeconfig({ cluster: name, server, caData: ca, user: c.user, token: c.token, context: name }), { mode: 0o600 });
      }
      for (const u of users) {
        writeFileSync(u.kubeconfigPath, kubeconfig({ cluster: name, server, caData: ca, user: u.context, token: u.token, context: u.context }), { mode: 0o600 });
      }
      writeFileSync(layout.files.corefile, corefile(layout, name));
      const info: ClusterInfo = {
        name,
        index,
        nodes: spec.nodes,
        podsPerNode: spec.podsPerNode ?? 0,
        context: name,
        kubeconfigPath,
        apiServerURL: server,
        adminToken,
        caFile: pki.caCert,
        etcdPrefix: layout.etcdPrefix,
        dns: { host: '127.0.0.1', port: layout.dnsPort },
        coreDNSMetricsURL: `http://127.0.0.1:${layout.dnsMetricsPort}/metrics`,
        coreDNSReadyURL: `http://127.0.0.1:${layout.dnsReadyPort}/ready`,
        coreDNSHealthURL: `http://127.0.0.1:${layout.dnsHealthPort}/health`,
        users,
      };
      st.info.clusters.push(info);
      const proc = (role: Role, args: string[]) => ({ id: `${name}/${role}`, role, cluster: name, command: bin(role), args, logFile: logFile(`${name}/${role}`) });
      st.start(proc('kube-apiserver', apiServerArgs(layout)));
      await waitApiReady(st, info);
      log(`${name}: kube-apiserver ready at ${server} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      st.start(proc('kube-controller-manager', controllerManagerArgs(layout)));
      st.start(proc('kube-scheduler', schedulerArgs(layout)));
      st.start(proc('kwok', kwokArgs(layout, bin('kwok-stages'))));
      st.start(proc('coredns', coreDNSArgs(layout)));
    }

    const fleet = new RunningFleet(st);
    await Promise.all(st.info.clusters.map(async (c) => {
      const t = Date.now();
      const kc = fleet.cluster(c.name).kubeConfig();
      const core = kc.makeApiClient(CoreV1Api);
      // The service-account controller creating `default` proves kube-controller-manager works.
      await waitUntil(`${c.name}: ServiceAccount default/default (kube-controller-manager)`, async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      }, { timeoutMs: 90_000, intervalMs: 500 });
      await createNodes(kc, c.name, c.index, c.nodes);
      await waitCoreDNS(st, c, c.coreDNSReadyURL, 60_000);
      await populatePods(kc, c.name, c.nodes, c.podsPerNode);
      log(`${c.name}: ${c.nodes} nodes Ready${c.podsPerNode ? `, ${c.nodes * c.podsPerNode} pods` : ''}, CoreDNS ready (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    }));
    st.info.startupSeconds = (Date.now() - t0) / 1000;
    st.save();
    log(`fleet of ${opts.clusters.length} cluster(s) up in ${st.info.startupSeconds.toFixed(1)} s; info ${st.infoFile}`);
    return fleet;
  } catch (err) {
    log(`fleet start failed: ${err instanceof Error ? err.message : String(err)}; last log lines follow, then cleanup`);
    process.stderr.write(`${new RunningFleet(st).logs(30)}\n`);
    try {
      await st.stop();
    } catch (stopErr) {
      log(`cleanup after failed start: ${stopErr instanceof Error ? stopErr.message : String(stopErr)}`);
    }
    throw new Error('start fleet', { cause: err });
  }
}
