/**
 * The e2e node runtime: kwok nodes have no kubelet and run no containers, so this runs a real collector
 * agent for every collector pod that kwok reports Running, against the real API server, so that a
 * rollout (or a break-glass stop file) really changes the load the API server sees.
 *
 * - ONE cluster-wide pod watch (the operator's Informer over client-node's ListWatch) is the truth: it
 *   decides which agents run, and it answers each fake node's kubelet `/pods` from the runtime's own
 *   HTTP server (`http://127.0.0.1:<port>/node/<name>/pods`). A real kubelet already watches its node's
 *   pods, so the agents' kubelet path adds nothing a real cluster would not have.
 * - Agents run in `workers` forked processes (many agents each), spread least-loaded first.
 * - Every node has a directory standing for its root filesystem (`<rootDir>/<node>`, with synthetic
 *   proc/ and sys/) and the break-glass stop directory at `<rootDir>/<node>/var/run/telemetry-rollout/stop.d`
 *   (and the legacy single stop file next to it).
 *
 * Reconciliation is level-triggered: any pod event schedules a pass that compares the wanted agents
 * (from the pod cache) with the running ones and starts/stops the difference.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import winston from 'winston';
import { Informer } from '../../operator/src/controller/informer.js';
import { clientNodeSource } from '../../operator/src/controller/informersources.js';
import { SystemClock } from '#core/clock.js';
import { toAgentInfo, type AgentInfo, type NodeRuntime, type NodeRuntimeOptions } from './api.js';
import { KubeletEndpoint } from './kubelet.js';
import { CONFIG_KEY, agentConfig, desiredAgent, type DesiredAgent } from './pods.js';
import { PodEnvironment } from './podenv.js';
import type { AgentSpec, FromWorker, ToWorker } from './protocol.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// The e2e code always runs from source (jest, the demo and the benchmarks strip the types; the build
// compiles product code only), so the worker is a .ts file run as every TypeScript file here is: type
// stripping with the repository's resolve hook preloaded.
const WORKER = path.join(HERE, 'worker.ts');
const TS_RESOLVE_HOOK = pathToFileURL(path.resolve(HERE, '../../operator/src/cli/ts-resolve-hook.ts')).href;
const WORKER_EXEC_ARGV = ['--no-warnings', '--import', TS_RESOLVE_HOOK];
// A worker hosting a hundred naive agents can block its event loop for many seconds on a saturated
// machine (every agent parsing whole-cluster lists at once): generous, not a hang detector.
const REPLY_TIMEOUT_MS = 60_000;

interface Worker {
  index: number;
  child: ChildProcess;
  agents: Set<string>;
  exited: boolean;
  pending: Map<number, (m: Extract<FromWorker, { t: 'agents' }>) => void>;
}

interface RunningAgent {
  desired: DesiredAgent;
  worker: Worker;
  /** Set once the worker confirmed the start. */
  started: boolean;
}

class Runtime implements NodeRuntime {
  private readonly o: NodeRuntimeOptions;
  private readonly namespace: string;
  private readonly log: (line: string) => void;
  private readonly kubeconfigText: string;
  private readonly core: CoreV1Api;
  private informer: Informer<V1Pod> | undefined;
  private readonly kubelet = new KubeletEndpoint();
  private readonly env: PodEnvironment;
  private workers: Worker[] = [];
  private readonly running = new Map<string, RunningAgent>();
  /** Parsed config.json per `namespace/configmap` (a revision's ConfigMap never changes). */
  private readonly configs = new Map<string, Promise<string>>();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private reconciling = false;
  private dirty = false;
  private reqSeq = 0;

  constructor(o: NodeRuntimeOptions) {
    this.o = o;
    this.namespace = o.namespace ?? 'telemetry-system';
    this.log = o.logger ?? (() => undefined);
    this.kubeconfigText = o.kubeConfig.exportConfig();
    this.core = (o.runtimeKubeConfig ?? o.kubeConfig).makeApiClient(CoreV1Api);
    this.env = new PodEnvironment(o.rootDir, o.kubeConfig, this.core);
  }

  nodeRoot(node: string): string {
    return this.env.nodeRoot(node);
  }

  stopFilePath(node: string): string {
    return this.env.stopFilePath(node);
  }

  stopDirectory(node: string): string {
    return this.env.stopDirectory(node);
  }

  kubeletURL(node: string): string {
    return this.kubelet.kubeletURL(node);
  }

  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    await mkdir(this.o.rootDir, { recursive: true });
    await this.kubelet.start();
    const count = Math.max(1, this.o.workers ?? 2);
    this.workers = await Promise.all(Array.from({ length: count }, (_, i) => this.spawnWorker(i)));
    const kc = this.o.runtimeKubeConfig ?? this.o.kubeConfig;
    this.informer = new Informer<V1Pod>({
      name: 'pods',
      newSource: clientNodeSource<V1Pod>(kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces()),
      clock: new SystemClock(),
      logger: this.winstonLogger(),
      resyncSeconds: 600,
    });
    this.informer.addHandler((ev) => {
      this.kubelet.indexPod(ev.type === 'delete' ? undefined : ev.obj, ev.obj);
      this.schedule();
    });
    this.informer.start();
    await this.informer.waitForSync();
    this.log(`noderuntime: pod watch synced, kubelet endpoint ${this.kubelet.baseURL()}, ${count} worker(s)`);
    this.schedule();
  }

  private winstonLogger(): winston.Logger {
    const log = this.log;
    return winston.createLogger({
      level: 'info',
      format: winston.format.json(),
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(chunk: Buffer, _e, cb) {
              log(`noderuntime: ${chunk.toString('utf8').trimEnd()}`);
              cb();
            },
          }),
        }),
      ],
    });
  }

  private spawnWorker(index: number): Promise<Worker> {
    const child = fork(WORKER, [], {
      execArgv: WORKER_EXEC_ARGV,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const w: Worker = { index, child, agents: new Set(), exited: false, pending: new Map() };
    const forward = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.log(`worker-${index}: ${buf.slice(0, i)}`);
          buf = buf.slice(i + 1);
        }
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    child.on('message', (m: FromWorker) => this.onMessage(w, m));
    return new Promise<Worker>((resolve, reject) => {
      const onExit = (code: number | null, sig: string | null) => {
        w.exited = true;
        for (const id of w.agents) this.running.delete(id);
        w.agents.clear();
        for (const cb of w.pending.values()) cb({ t: 'agents', req: -1, agents: [], rssBytes: 0 });
        w.pending.clear();
        if (!this.stopping && this.workers.includes(w)) {
          this.log(`noderuntime: worker-${index} exited (code ${code}, signal ${sig}); starting a replacement, its agents start again`);
          this.workers = this.workers.filter((x) => x !== w);
          this.schedule();
          // Like a kubelet, the runtime keeps its capacity: a replacement worker takes new agents.
          this.spawnWorker(index).then(
            (nw) => {
              if (this.stopping) nw.child.kill('SIGKILL');
              else {
                this.workers.push(nw);
                this.schedule();
              }
            },
            (err: unknown) => this.log(`noderuntime: replacement worker-${index} failed: ${err instanceof Error ? err.message : String(err)}`),
          );
        }
        reject(new Error(`worker-${index} exited before it was ready`));
      };
      child.once('exit', onExit);
      child.once('error', reject);
      const onReady = (m: FromWorker) => {
        if (m.t !== 'ready') return;
        child.off('message', onReady);
        resolve(w);
      };
      child.on('message', onReady);
      this.sendTo(w, { t: 'init', kubeconfig: this.kubeconfigText });
    });
  }

  private sendTo(w: Worker, m: ToWorker): void {
    if (!w.exited && w.child.connected) w.child.send(m);
  }

  private onMessage(w: Worker, m: FromWorker): void {
    switch (m.t) {
      case 'log':
        this.log(`worker-${w.index}: ${m.line}`);
        break;
      case 'started': {
        const a = this.running.get(m.id);
        if (a) a.started = true;
        break;
      }
      case 'startFailed':
      case 'exited':
        this.log(`noderuntime: agent ${m.id} ${m.t === 'exited' ? 'ended' : 'failed to start'}: ${m.error ?? ''}`);
        w.agents.delete(m.id);
        this.running.delete(m.id);
        // Like a kubelet restarting a failed container, a later pass starts it again (after a pause).
        setTimeout(() => this.schedule(), 5000).unref();
        break;
      case 'stopped':
        w.agents.delete(m.id);
        break;
      case 'agents':
        w.pending.get(m.req)?.(m);
        w.pending.delete(m.req);
        break;
      case 'ready':
        break;
    }
  }

  private schedule(): void {
    if (this.stopping || !this.informer?.hasSynced()) return;
    this.dirty = true;
    if (this.reconciling) return;
    this.reconciling = true;
    // A short delay batches the burst of events a DaemonSet rollout produces into one pass.
    setTimeout(() => {
      void this.reconcileLoop();
    }, 100);
  }

  private async reconcileLoop(): Promise<void> {
    try {
      while (this.dirty && !this.stopping) {
        this.dirty = false;
        try {
          await this.reconcile();
        } catch (err) {
          this.log(`noderuntime: reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
          setTimeout(() => this.schedule(), 2000).unref();
        }
      }
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcile(): Promise<void> {
    const wanted = new Map<string, DesiredAgent>();
    for (const pod of this.informer?.list(this.namespace) ?? []) {
      const d = desiredAgent(pod, this.namespace);
      if (d) wanted.set(d.id, d);
    }
    for (const [id, a] of this.running) {
      if (!wanted.has(id)) {
        this.running.delete(id);
        this.sendTo(a.worker, { t: 'stop', id });
      }
    }
    const toStart = [...wanted.values()].filter((d) => !this.running.has(d.id));
    await Promise.all(
      toStart.map(async (d) => {
        let spec: AgentSpec;
        try {
          spec = await this.specFor(d);
        } catch (err) {
          this.log(`noderuntime: cannot start the agent of pod ${d.namespace}/${d.pod}: ${err instanceof Error ? err.message : String(err)}`);
          setTimeout(() => this.schedule(), 5000).unref();
          return;
        }
        if (this.stopping || this.running.has(d.id)) return;
        const live = this.workers.filter((w) => !w.exited);
        const w = live.sort((a, b) => a.agents.size - b.agents.size)[0];
        if (!w) throw new Error('no live worker');
        w.agents.add(d.id);
        this.running.set(d.id, { desired: d, worker: w, started: false });
        this.sendTo(w, { t: 'start', spec });
      }),
    );
  }

  private async specFor(d: DesiredAgent): Promise<AgentSpec> {
    const cmKey = `${d.namespace}/${d.configMap}`;
    let text = this.configs.get(cmKey);
    if (!text) {
      text = this.core.readNamespacedConfigMap({ name: d.configMap, namespace: d.namespace }).then((cm) => {
        const v = cm.data?.[CONFIG_KEY];
        if (v === undefined) throw new Error(`ConfigMap ${cmKey} has no ${CONFIG_KEY}`);
        return v;
      });
      this.configs.set(cmKey, text);
      // A failed read is not cached: the ConfigMap may simply not exist yet.
      text.catch(() => this.configs.delete(cmKey));
    }
    const config = agentConfig(await text, this.kubeletURL(d.node));
    await this.env.ensureRoot(d.node);
    return {
      id: d.id,
      mode: d.mode,
      node: d.node,
      pod: d.pod,
      namespace: d.namespace,
      revision: d.revision,
      ...(d.rollout ? { rollout: d.rollout } : {}),
      ...(d.leaseName ? { leaseName: d.leaseName } : {}),
      config,
      hostRoot: this.nodeRoot(d.node),
      // The cluster-mode agent obeys the stop file of the node its pod runs on, as if mounted there:
      // break-glass writes to every node, and the cluster-wide watcher must stop above all.
      stopFilePath: this.stopFilePath(d.node),
      stopDirectory: this.stopDirectory(d.node),
      ...(this.o.credentials === 'pod' ? { kubeconfig: await this.env.podKubeconfig(d) } : {}),
    };
  }

  private async ask(w: Worker): Promise<Extract<FromWorker, { t: 'agents' }>> {
    if (w.exited) return { t: 'agents', req: -1, agents: [], rssBytes: 0 };
    const req = ++this.reqSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        w.pending.delete(req);
        reject(new Error(`worker-${w.index} did not answer within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      w.pending.set(req, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.sendTo(w, { t: 'list', req });
    });
  }

  async agents(): Promise<AgentInfo[]> {
    const replies = await Promise.all(this.workers.map((w) => this.ask(w)));
    // Only agents the runtime still wants: one being stopped is already gone from the pod's point of view.
    return replies
      .flatMap((r) => r.agents)
      .filter((a) => this.running.has(a.id))
      .map(toAgentInfo);
  }

  async workerRss(): Promise<number[]> {
    return (await Promise.all(this.workers.map((w) => this.ask(w)))).map((r) => r.rssBytes);
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    await this.informer?.stop();
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.exited) return;
        const exited = new Promise<void>((resolve) => w.child.once('exit', () => resolve()));
        this.sendTo(w, { t: 'shutdown' });
        const timer = setTimeout(() => w.child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.running.clear();
    await this.kubelet.stop();
  }
}

/**
 * Starts a node runtime (see the file comment) and resolves once its pod watch has synced and its
 * workers are up; agents start from then on as their pods run. Call `stop()` when done.
 */
export async function startNodeRuntime(o: NodeRuntimeOptions): Promise<NodeRuntime> {
  const rt = new Runtime(o);
  try {
    await rt.start();
  } catch (err) {
    await rt.stop().catch(() => undefined);
    throw err;
  }
  return rt;
}
