/**
 * The operator process: `npm start` (or the container's entry point).
 *
 *   node dist/operator/src/main.js [--leader-elect] [--namespace NS] [--kubeconfig FILE]
 *        [--health-port 8081] [--metrics-port 8080] [--lease-namespace NS] [--identity ID]
 *
 * API access: --kubeconfig, else KUBECONFIG, else the in-cluster service account. The namespace to
 * watch: --namespace, else WATCH_NAMESPACE, else all namespaces. Exits 0 on SIGTERM/SIGINT after a
 * graceful shutdown (in-flight reconciles aborted, the Lease released for the next replica), 1 when
 * leadership is lost (the Deployment restarts it clean) or when the graceful shutdown overruns 25 s.
 */
import { hostname } from 'node:os';
import { Command } from 'commander';
import { runUntilStopped } from './controller/manager.js';
import { PooledKubeConfig } from './cluster/pooledkubeconfig.js';
import { buildOperator } from './operator.js';
import { createLogger } from './util/logging.js';

interface Flags {
  leaderElect?: boolean;
  namespace?: string;
  kubeconfig?: string;
  healthPort: string;
  metricsPort: string;
  leaseNamespace?: string;
  identity?: string;
  workers: string;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('telemetry-rollout-operator')
    .option('--leader-elect', 'elect a leader among replicas through a Lease (production)')
    .option('--namespace <ns>', 'reconcile rollouts of this namespace only (default: WATCH_NAMESPACE, else all)')
    .option('--kubeconfig <file>', 'management cluster kubeconfig (default: KUBECONFIG, else in-cluster)')
    .option('--health-port <port>', '/healthz and /readyz port', '8081')
    .option('--metrics-port <port>', '/metrics port', '8080')
    .option('--lease-namespace <ns>', 'namespace of the leader Lease (default: the watched namespace, POD_NAMESPACE, or default)')
    .option('--identity <id>', 'leader election identity (default: POD_NAME, else host name + pid)')
    .option('--workers <n>', 'concurrent reconciles of different rollouts', '4')
    .parse(argv);
  const f = program.opts<Flags>();
  const logger = createLogger({ defaultMeta: { component: 'operator' } });
  // Pooled: the management cluster's requests share one connection pool (cluster/pooledkubeconfig.ts says why).
  const kc = new PooledKubeConfig();
  if (f.kubeconfig) kc.loadFromFile(f.kubeconfig);
  else kc.loadFromDefault();
  const namespace = f.namespace ?? process.env.WATCH_NAMESPACE ?? undefined;
  const leaseNamespace = f.leaseNamespace ?? namespace ?? process.env.POD_NAMESPACE ?? 'default';
  const identity = f.identity ?? process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const { manager } = buildOperator({
    kubeConfig: kc,
    logger,
    ...(namespace ? { namespace } : {}),
    ...(f.leaderElect ? { leaderElection: { namespace: leaseNamespace, identity } } : {}),
    healthPort: Number(f.healthPort),
    metricsPort: Number(f.metricsPort),
    workers: Number(f.workers),
  });
  logger.info('starting', { namespace: namespace ?? '(all)', leaderElect: Boolean(f.leaderElect), identity, server: kc.getCurrentCluster()?.server });
  await runUntilStopped(manager, logger);
}

main(process.argv).catch((err: unknown) => {
  console.error(`telemetry-rollout-operator: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
