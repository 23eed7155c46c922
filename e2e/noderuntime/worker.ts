/**
 * A node-runtime worker process: runs many collector agents (`startAgent`) side by side, as the parent
 * tells it over IPC (see protocol.ts). Forked by runtime.ts with the TypeScript loader flags; never run
 * by hand.
 *
 * Each agent gets its own API server config, loaded by the collector's own loader from the same
 * kubeconfig string (the collector never shares one), and its own HttpTransport wrapped to stamp the
 * time of every request it sends, which the e2e tests read as `lastApiRequestAt` (the collector's
 * counters say how many, not when).
 */
import { Writable } from 'node:stream';
import winston from 'winston';
import { parseCollectorConfig } from '#collector/config.js';
import { kubeConfigFromString } from '#core/kubeconfig.js';
import { startAgent, userAgentFor, type AgentHandle, type AgentIdentity } from '#collector/main.js';
import { HttpTransport, type KubeTransport } from '#collector/transport.js';
import type { AgentSpec, FromWorker, ToWorker, WorkerAgentInfo } from './protocol.js';

interface Running {
  spec: AgentSpec;
  handle: AgentHandle;
  lastRequestAt: number | undefined;
  stopping: boolean;
}

function send(msg: FromWorker): void {
  process.send?.(msg);
}

// Agents log through winston; each line goes to the parent, which hands it to the runtime's logger.
const logger = winston.createLogger({
  level: process.env.TRO_NODERUNTIME_LOG_LEVEL ?? 'warn',
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, cb) {
          send({ t: 'log', line: chunk.toString('utf8').trimEnd() });
          cb();
        },
      }),
    }),
  ],
});

let kubeconfig: string | undefined;
const agents = new Map<string, Running>();
// Starts not yet finished, so a stop or shutdown that arrives meanwhile waits for them.
const starting = new Map<string, Promise<void>>();

async function start(spec: AgentSpec): Promise<void> {
  if (agents.has(spec.id) || starting.has(spec.id)) return;
  if (kubeconfig === undefined) throw new Error('worker not initialised');
  const config = parseCollectorConfig(spec.config);
  const identity: AgentIdentity = {
    ...(spec.mode === 'node' ? { nodeName: spec.node } : {}),
    podName: spec.pod,
    podNamespace: spec.namespace,
    revision: spec.revision,
    ...(spec.rollout ? { rollout: spec.rollout } : {}),
  };
  const real = new HttpTransport(
    await kubeConfigFromString(spec.kubeconfig ?? kubeconfig, {
      source: spec.kubeconfig ? `pod ${spec.pod} ServiceAccount kubeconfig` : 'node runtime kubeconfig',
    }),
    userAgentFor(spec.mode, config, identity),
  );
  const entry: { lastRequestAt: number | undefined } = { lastRequestAt: undefined };
  const transport: KubeTransport = {
    send(req) {
      entry.lastRequestAt = Date.now();
      return real.send(req);
    },
  };
  const handle = await startAgent({
    mode: spec.mode,
    config,
    identity,
    transport,
    hostRoot: spec.hostRoot,
    stopFilePath: spec.stopFilePath,
    stopDirectory: spec.stopDirectory,
    metricsPort: null,
    logger,
    ...(spec.leaseName ? { leaseName: spec.leaseName } : {}),
  });
  const running: Running = {
    spec,
    handle,
    stopping: false,
    get lastRequestAt() {
      return entry.lastRequestAt;
    },
  };
  agents.set(spec.id, running);
  // The transport is ours, not the agent's: release its pooled sockets once the agent has stopped.
  handle.done.then(
    () => real.close(),
    () => real.close(),
  );
  handle.done.then(
    () => {
      if (!running.stopping) {
        agents.delete(spec.id);
        send({ t: 'exited', id: spec.id });
      }
    },
    (err: unknown) => {
      if (!running.stopping) {
        agents.delete(spec.id);
        send({ t: 'exited', id: spec.id, error: err instanceof Error ? err.message : String(err) });
      }
    },
  );
}

async function stop(id: string): Promise<void> {
  await starting.get(id)?.catch(() => undefined);
  const a = agents.get(id);
  if (!a) return;
  a.stopping = true;
  await a.handle.stop();
  agents.delete(id);
}

async function counterSum(handle: AgentHandle, which: 'apiRequests' | 'kubeletRequests'): Promise<number> {
  const m = await handle.metrics[which].get();
  return m.values.reduce((s, v) => s + v.value, 0);
}

async function responses(handle: AgentHandle): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await handle.metrics.apiRequests.get()).values) {
    const key = `${String(v.labels.verb)} ${String(v.labels.resource)} ${String(v.labels.code)}`;
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

async function list(): Promise<WorkerAgentInfo[]> {
  return Promise.all(
    [...agents.values()].map(async (a) => {
      const st = a.handle.status();
      const info: WorkerAgentInfo = {
        id: a.spec.id,
        node: a.spec.node,
        pod: a.spec.pod,
        revision: a.spec.revision,
        mode: a.spec.mode,
        metadataMode: st.metadataMode,
        stopped: st.stopped,
        apiRequests: await counterSum(a.handle, 'apiRequests'),
        apiResponses: await responses(a.handle),
        kubeletRequests: await counterSum(a.handle, 'kubeletRequests'),
      };
      if (a.lastRequestAt !== undefined) info.lastApiRequestAt = a.lastRequestAt;
      return info;
    }),
  );
}

async function shutdown(): Promise<void> {
  await Promise.allSettled([...starting.values()]);
  await Promise.allSettled([...agents.keys()].map((id) => stop(id)));
  // Let the IPC channel flush the last messages, then leave even if a socket lingers.
  process.disconnect?.();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('message', (raw: unknown) => {
  const msg = raw as ToWorker;
  switch (msg.t) {
    case 'init':
      kubeconfig = msg.kubeconfig;
      send({ t: 'ready' });
      break;
    case 'start': {
      const p = start(msg.spec).then(
        () => send({ t: 'started', id: msg.spec.id }),
        (err: unknown) => send({ t: 'startFailed', id: msg.spec.id, error: err instanceof Error ? err.message : String(err) }),
      );
      starting.set(msg.spec.id, p);
      void p.finally(() => starting.delete(msg.spec.id));
      break;
    }
    case 'stop':
      void stop(msg.id).then(
        () => send({ t: 'stopped', id: msg.id }),
        (err: unknown) => {
          send({ t: 'log', line: JSON.stringify({ level: 'error', message: 'agent stop failed', id: msg.id, err: String(err) }) });
          send({ t: 'stopped', id: msg.id });
        },
      );
      break;
    case 'list':
      void list().then(
        (a) => send({ t: 'agents', req: msg.req, agents: a, rssBytes: process.memoryUsage.rss() }),
        () => send({ t: 'agents', req: msg.req, agents: [], rssBytes: process.memoryUsage.rss() }),
      );
      break;
    case 'shutdown':
      void shutdown();
      break;
  }
});

// The parent is gone (killed, or it closed the channel): stop everything rather than run on orphaned.
process.on('disconnect', () => {
  void Promise.allSettled([...agents.keys()].map((id) => stop(id))).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
});
