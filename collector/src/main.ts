/**
 * Entry points of the collector.
 *
 * - `main()`: the container's entry point. Reads the identity from env (NODE_NAME, POD_NAME,
 *   POD_NAMESPACE, TRO_REVISION, TRO_ROLLOUT, TRO_MODE), the config file at TRO_CONFIG (JSON or YAML),
 *   API access from KUBECONFIG or the in-cluster service account (the shared core's kubeconfig loader),
 *   and runs one agent until SIGTERM.
 * - `startAgent(options)`: the programmatic form, for the e2e node runtime, which runs MANY agents in one
 *   worker process, each with its own node name, host root directory, stop file, kubelet URL,
 *   API server config and revision. Nothing here is a process-global singleton: each agent has its own
 *   prom-client Registry, kill switch, token bucket, HTTP connection pool, logger child and timers.
 *
 * The agent's public types (identity, options, status, handle) are in agentoptions.ts and the config
 * file loading in configfile.ts; both are re-exported here.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { ApiClient } from './apiclient.js';
import { backoffPolicyFromConfig } from './backoff.js';
import { systemClock } from '#core/clock.js';
import { ClusterAgent } from './cluster/agent.js';
import { parseCollectorConfig } from './config.js';
import { ShutdownError } from './errors.js';
import { jsonReply, startHttpServer, type RouteHandler, type RunningServer } from '#core/httpserver.js';
import { KillSwitch, type StopFileReader } from './killswitch.js';
import { KubeletClient, httpGetter } from './kubelet.js';
import { loadDefaultConfig } from '#core/kubeconfig.js';
import { createJsonLogger, serializeError, type Logger } from '#core/logger.js';
import { CollectorMetrics } from './metrics.js';
import { NaivePodSource } from './naive/source.js';
import { KubeletPodSource, NODE_INFO_REFRESH_MS, NodeAgent, type PodSource } from './node/agent.js';
import { NodeMetrics } from './node/metrics.js';
import { NodeCollector, nodePathsUnder, realNodeFs } from './node/procfs.js';
import { TokenBucket } from './ratelimit.js';
import { HttpTransport, type KubeTransport } from './transport.js';
import {
  leaseNameFor,
  resolveKubeConfig,
  userAgentFor,
  type AgentHandle,
  type AgentIdentity,
  type AgentMode,
  type AgentStatus,
  type StartAgentOptions,
} from './agentoptions.js';
import { expandEnv, loadConfigFile } from './configfile.js';

export {
  COLLECTOR_VERSION,
  leaseNameFor,
  resolveKubeConfig,
  userAgentFor,
  type AgentHandle,
  type AgentIdentity,
  type AgentMode,
  type AgentStatus,
  type KubeConfigInput,
  type StartAgentOptions,
} from './agentoptions.js';
export { expandEnv, loadConfigFile } from './configfile.js';

const defaultStopFileReader: StopFileReader = { readFile: (p) => readFile(p, 'utf8'), readDir: (p) => readdir(p), stat: (p) => stat(p) };

/** Starts one agent. Rejects (before doing anything) on an invalid config or identity. */
export async function startAgent(options: StartAgentOptions): Promise<AgentHandle> {
  const config = parseCollectorConfig(options.config);
  const { identity, mode } = options;
  if (mode !== 'node' && mode !== 'cluster') throw new Error(`unknown mode ${String(mode)}: want node or cluster`);
  if (mode === 'node' && !identity.nodeName) throw new Error('node mode needs identity.nodeName (NODE_NAME)');
  if (!identity.revision) throw new Error('identity.revision (TRO_REVISION) is required: the stop file matches it');
  const userAgent = userAgentFor(mode, config, identity);
  // Resolved before anything starts, so a bad kubeconfig leaves no timer or server behind.
  let ownTransport: HttpTransport | undefined;
  let transport: KubeTransport;
  if (options.transport) {
    transport = options.transport;
  } else {
    ownTransport = new HttpTransport(await resolveKubeConfig(options.kubeConfig), userAgent);
    transport = ownTransport;
  }
  const clock = options.clock ?? systemClock;
  const fields = {
    mode,
    node: identity.nodeName,
    pod: identity.podName,
    revision: identity.revision,
    rollout: identity.rollout,
  };
  const logger: Logger = options.logger
    ? options.logger.child(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)))
    : createJsonLogger(config.logLevel, fields);
  const metrics = new CollectorMetrics({ processMetrics: options.processMetrics ?? false });
  metrics.info.set(
    { mode, metadata_mode: mode === 'node' ? config.metadata.mode : 'ClusterWatcher', node: identity.nodeName ?? '', revision: identity.revision },
    1,
  );

  const killSwitch = new KillSwitch({
    path: options.stopFilePath ?? config.stopFilePath,
    directory: options.stopDirectory ?? config.stopDirectory,
    revision: identity.revision,
    reader: options.stopFileReader ?? defaultStopFileReader,
    clock,
    logger,
  });
  killSwitch.onChange((s) => metrics.stopped.set(s.stopped ? 1 : 0));
  killSwitch.onStopsChange((s) => metrics.setStopFiles(s.stops ?? []));
  // Read the stop file before the first API call: an agent (re)started on a stopped node must not make
  // even one request.
  await killSwitch.poll();
  metrics.stopped.set(killSwitch.isStopped() ? 1 : 0);
  metrics.setStopFiles(killSwitch.state.stops ?? []);
  killSwitch.start();

  // Two lifetimes: `run` ends the loops (so a leader can still release its Lease), `client` then cancels
  // any API call left.
  const runCtl = new AbortController();
  const clientCtl = new AbortController();
  const backoff = backoffPolicyFromConfig(config.backoff);
  const clientOptions = {
    transport,
    killSwitch,
    backoff,
    clock,
    metrics,
    logger,
    signal: clientCtl.signal,
    ...(options.random ? { random: options.random } : {}),
  };
  const api = new ApiClient({
    ...clientOptions,
    rateLimiter: new TokenBucket({ qps: config.apiRateLimit.qps, burst: config.apiRateLimit.burst, clock }),
  });

  const routes: Record<string, RouteHandler> = {
    '/metrics': async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }),
  };
  let details: () => Record<string, unknown> = () => ({});
  let loops: Promise<void>;
  if (mode === 'node') {
    const nodeName = identity.nodeName ?? '';
    const nodeMetrics = new NodeMetrics(metrics.registry);
    let podSource: PodSource;
    if (config.metadata.mode === 'Naive') {
      // DANGEROUS by design (see naive/source.ts): an unthrottled client for the cluster-wide lists.
      const unthrottled = new ApiClient({ ...clientOptions, rateLimiter: null });
      const naive = new NaivePodSource({
        api: unthrottled,
        killSwitch,
        clock,
        logger,
        backoff,
        nodeName,
        relistSeconds: config.metadata.naiveRelistSeconds,
        ...(options.random ? { random: options.random } : {}),
      });
      podSource = naive;
      details = () => ({ naiveObjects: naive.objectCounts(), reflectors: naive.reflectors.map((r) => ({ ...r.stats })) });
    } else {
      podSource = new KubeletPodSource(
        new KubeletClient({
          baseURL: config.metadata.kubeletURL,
          getter: options.httpGetter ?? httpGetter,
          metrics,
          killSwitch,
          tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
        }),
      );
    }
    const agent = new NodeAgent({
      config,
      nodeName,
      clock,
      logger,
      killSwitch,
      api,
      podSource,
      nodeCollector: config.collect.node ? new NodeCollector(options.nodeFs ?? realNodeFs, options.nodePaths ?? nodePathsUnder(options.hostRoot ?? '/')) : null,
      nodeMetrics,
      nodeInfoRefreshMs: options.nodeInfoRefreshSeconds !== undefined ? options.nodeInfoRefreshSeconds * 1000 : NODE_INFO_REFRESH_MS,
      backoff,
      ...(options.random ? { random: options.random } : {}),
    });
    const inner = details;
    details = () => ({ ...agent.status(), ...inner() });
    loops = agent.run(runCtl.signal);
  } else {
    const agent = new ClusterAgent({
      config,
      api,
      killSwitch,
      clock,
      logger,
      backoff,
      leaseNamespace: identity.podNamespace,
      leaseName: options.leaseName ?? leaseNameFor(identity.rollout),
      identity: identity.podName,
      ...options.leaderElection,
      ...(options.random ? { random: options.random } : {}),
    });
    Object.assign(routes, agent.routes());
    details = () => ({ leader: agent.elector.isLeader(), holder: agent.elector.holder() ?? null, objects: agent.cache.counts(), reflectors: agent.stats() });
    loops = agent.run(runCtl.signal);
  }

  const status = (): AgentStatus => ({
    mode,
    node: identity.nodeName,
    pod: identity.podName,
    revision: identity.revision,
    metadataMode: mode === 'node' ? config.metadata.mode : 'ClusterWatcher',
    stopped: killSwitch.isStopped(),
    stopReason: killSwitch.state.detail,
    details: details(),
  });
  // Always 200 while the process runs, also when the stop file idles the agent: a failing liveness
  // probe would make the kubelet restart it, i.e. the crash loop the kill switch must avoid.
  routes['/healthz'] = () => jsonReply(200, status());

  let server: RunningServer | undefined;
  const port = options.metricsPort === undefined ? config.metricsPort : options.metricsPort;
  const stopEverything = async (): Promise<void> => {
    clientCtl.abort(new ShutdownError());
    ownTransport?.close();
    await killSwitch.close();
    await server?.close();
  };
  if (port !== null) {
    try {
      server = await startHttpServer({ host: options.metricsHost ?? '0.0.0.0', port, routes, logger });
    } catch (err) {
      runCtl.abort(new ShutdownError());
      await loops.catch(() => undefined);
      await stopEverything();
      throw new Error(`cannot listen on ${options.metricsHost ?? '0.0.0.0'}:${port}`, { cause: err });
    }
  }
  logger.info('collector agent started', { userAgent, metadataMode: status().metadataMode, port: server?.port, stopped: killSwitch.isStopped() });

  let stopping: Promise<void> | undefined;
  const done = loops.then(
    async () => {
      await stopEverything();
      logger.info('collector agent stopped');
    },
    async (err: unknown) => {
      logger.error('collector agent failed', { err: serializeError(err) });
      runCtl.abort(new ShutdownError('agent failed'));
      await stopEverything();
      throw err;
    },
  );
  // The handle's `done` is awaited by the caller; this keeps an unobserved failure from becoming an
  // unhandled rejection before the caller gets to it.
  done.catch(() => undefined);

  return {
    mode,
    identity,
    config,
    metrics,
    killSwitch,
    userAgent,
    port: server?.port,
    status,
    done,
    stop: () => {
      stopping ??= (async () => {
        runCtl.abort(new ShutdownError());
        await done.catch(() => undefined);
      })();
      return stopping;
    },
  };
}

/**
 * The container entry point (see the file comment). Env: TRO_MODE (node|cluster, default node),
 * TRO_CONFIG (config file; defaults apply when unset), NODE_NAME, POD_NAME, POD_NAMESPACE, TRO_REVISION,
 * TRO_ROLLOUT, KUBECONFIG (optional), TRO_HOST_ROOT (node mode; default /host when /host/proc exists,
 * else /; the host's / is statfs'd at <root>/root when present, else <root>);
 * `${VAR}` in metadata.kubeletURL is expanded from env (see expandEnv).
 * Resolves when the agent stopped after SIGTERM/SIGINT.
 */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const mode = (env.TRO_MODE ?? 'node') as AgentMode;
  const config = env.TRO_CONFIG ? await loadConfigFile(env.TRO_CONFIG) : parseCollectorConfig({});
  config.metadata.kubeletURL = expandEnv(config.metadata.kubeletURL, env);
  // The DaemonSet mounts the host's /proc, /sys and / at <root>/proc, <root>/sys and <root>/root
  // (node-exporter's layout); without a <root>/root, <root> itself is statfs'd (the e2e fake-node layout).
  const hostRoot = path.resolve(env.TRO_HOST_ROOT ?? (existsSync('/host/proc') ? '/host' : '/'));
  const nodePaths = nodePathsUnder(hostRoot);
  if (existsSync(path.join(hostRoot, 'root'))) nodePaths.filesystems = [{ path: path.join(hostRoot, 'root'), mountpoint: '/' }];
  const identity: AgentIdentity = {
    ...(env.NODE_NAME ? { nodeName: env.NODE_NAME } : {}),
    podName: env.POD_NAME ?? env.HOSTNAME ?? 'collector',
    podNamespace: env.POD_NAMESPACE ?? 'default',
    revision: env.TRO_REVISION ?? '',
    ...(env.TRO_ROLLOUT ? { rollout: env.TRO_ROLLOUT } : {}),
  };
  const logger = createJsonLogger(config.logLevel, { mode, node: identity.nodeName, pod: identity.podName, revision: identity.revision });
  const handle = await startAgent({ mode, config, identity, kubeConfig: await loadDefaultConfig(env), nodePaths, logger, processMetrics: true });
  const onSignal = (sig: string) => {
    logger.info('received signal, stopping', { signal: sig });
    void handle.stop();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  await handle.done;
}

// Run main() only when this file is the process entry point (not when imported by tests or the e2e
// runtime).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${JSON.stringify({ level: 'error', message: 'collector failed', err: serializeError(err) })}\n`);
      process.exit(1);
    },
  );
}
