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
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api } from '@kubernetes/client-node';
import {
  apiServerArgs,
  controllerManagerArgs,
  coreDNSArgs,
  corefile,
  etcdArgs,
  kubeconfig,
  kwokArgs,
  schedulerArgs,
  tokenFile,
  type ClusterLayout,
  type StaticToken,
} from './components.js';
import { freePort, httpGet, waitUntil } from './net.js';
import { createNodes, populatePods } from './nodes.js';
import { caData, createPki } from './pki.js';
import { findRepoRoot } from '../../operator/src/api/crd.js';
import { exitReason, isAlive, stopProcesses, type Role } from './processes.js';
import { defaultLog, FleetState, installHooks, owned, readInfo } from './fleet-state.js';
import { RunningFleet, waitApiReady, waitCoreDNS } from './fleet-handles.js';
import type { ClusterInfo, ClusterSpec, Fleet, FleetInfo, StartFleetOptions, UserInfo } from './fleet-types.js';

export type { ClusterHandle, ClusterInfo, ClusterSpec, ExtraUser, Fleet, FleetInfo, StartFleetOptions, UserInfo } from './fleet-types.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The build script the harness runs to get binaries (found from the repository root, wherever the harness runs from). */
export const BUILD_SCRIPT = join(findRepoRoot(HERE), 'e2e', 'controlplane', 'build.sh');
const DNS_LABEL = /^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/;

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

function safeName(s: string): string {
  return s.replace(/[^a-zA-Z0-9_.-]+/g, '-');
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
  const st = new FleetState(
    {
      version: 1,
      ownerPid: process.pid,
      workDir,
      binDir,
      keepWorkDir: opts.keepWorkDir ?? process.env.TRO_E2E_KEEP_WORKDIR === '1',
      createdAt: new Date().toISOString(),
      processes: [],
      clusters: [],
    },
    join(workDir, 'fleet.json'),
  );
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
        id,
        role: 'etcd',
        ...(cluster ? { cluster } : {}),
        command: bin('etcd'),
        logFile: logFile(id),
        args: etcdArgs({ name: 'tro-e2e', dataDir, clientPort, peerPort }),
      });
      const url = `http://127.0.0.1:${clientPort}`;
      await waitUntil(
        `${id} /health`,
        async () => {
          const r = await httpGet(`${url}/health`, { timeoutMs: 2000 });
          return r.status === 200 && r.body.includes('"true"');
        },
        { timeoutMs: 30_000, abort: () => (isAlive(st.record(id).pid) ? undefined : `etcd ${exitReason(st.record(id).pid) ?? 'exited'}`) },
      );
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
      writeFileSync(kubeconfigPath, kubeconfig({ cluster: name, server, caData: ca, user: `${name}-admin`, token: adminToken, context: name }), {
        mode: 0o600,
      });
      for (const c of components) {
        writeFileSync(c.file, kubeconfig({ cluster: name, server, caData: ca, user: c.user, token: c.token, context: name }), { mode: 0o600 });
      }
      for (const u of users) {
        writeFileSync(u.kubeconfigPath, kubeconfig({ cluster: name, server, caData: ca, user: u.context, token: u.token, context: u.context }), {
          mode: 0o600,
        });
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
      const proc = (role: Role, args: string[]) => ({
        id: `${name}/${role}`,
        role,
        cluster: name,
        command: bin(role),
        args,
        logFile: logFile(`${name}/${role}`),
      });
      st.start(proc('kube-apiserver', apiServerArgs(layout)));
      await waitApiReady(st, info);
      log(`${name}: kube-apiserver ready at ${server} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      st.start(proc('kube-controller-manager', controllerManagerArgs(layout)));
      st.start(proc('kube-scheduler', schedulerArgs(layout)));
      st.start(proc('kwok', kwokArgs(layout, bin('kwok-stages'))));
      st.start(proc('coredns', coreDNSArgs(layout)));
    }

    const fleet = new RunningFleet(st);
    await Promise.all(
      st.info.clusters.map(async (c) => {
        const t = Date.now();
        const kc = fleet.cluster(c.name).kubeConfig();
        const core = kc.makeApiClient(CoreV1Api);
        // The service-account controller creating `default` proves kube-controller-manager works.
        await waitUntil(
          `${c.name}: ServiceAccount default/default (kube-controller-manager)`,
          async () => {
            await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
            return true;
          },
          { timeoutMs: 90_000, intervalMs: 500 },
        );
        await createNodes(kc, c.name, c.index, c.nodes);
        await waitCoreDNS(st, c, c.coreDNSReadyURL, 60_000);
        await populatePods(kc, c.name, c.nodes, c.podsPerNode);
        log(
          `${c.name}: ${c.nodes} nodes Ready${c.podsPerNode ? `, ${c.nodes * c.podsPerNode} pods` : ''}, CoreDNS ready (${((Date.now() - t) / 1000).toFixed(1)} s)`,
        );
      }),
    );
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
