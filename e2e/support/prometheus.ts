// A real Prometheus server (Debian's `prometheus` package) scraping a local cluster's kube-apiserver
// and CoreDNS, for the gates' PromQL source in e2e tests and the benchmark.
//
//   const prom = await startPrometheus({ targets: [cluster], scrapeIntervalSeconds: 1 });
//   ... spec.targets.clusters[].metrics.prometheusURL = prom.url ...
//   await prom.stop();
//
// One Prometheus per target cluster: the operator's default PromQL (operator/src/gates/prometheus.ts) sums
// over every series it finds, as it would in a per-cluster Prometheus, so two clusters in one server
// would be judged together. The API server is scraped with the cluster's admin token from a 0600 file
// (`bearer_token_file`) and its CA (`tls_config.ca_file`); the token never appears in arguments or logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, httpGet, waitUntil } from '../controlplane/net.js';

/** What Prometheus needs to know of a cluster (a ClusterHandle satisfies it). */
export interface ScrapeTarget {
  readonly name: string;
  readonly apiServerURL: string;
  /** Bearer token for the API server's /metrics. Written to a 0600 file, never logged. */
  readonly adminToken: string;
  /** CA file of the API server's serving certificate. */
  readonly caFile: string;
  /** CoreDNS's metrics URL (`http://127.0.0.1:<port>/metrics`); omitted from the config when absent. */
  readonly coreDNSMetricsURL?: string;
}

/** Options of {@link startPrometheus}. */
export interface StartPrometheusOptions {
  targets: ScrapeTarget[];
  /** Scrape interval, seconds (the timeout is the same: a scrape never overlaps the next). Default 1. */
  scrapeIntervalSeconds?: number;
  /** The prometheus binary. Default: env PROMETHEUS, else /usr/bin/prometheus. */
  binary?: string;
  /** Parent of the server's private work dir (config, token files, TSDB, log). Default: the OS temp dir. */
  workDir?: string;
}

/** A running Prometheus. */
export interface PrometheusServer {
  /** Base URL, e.g. `http://127.0.0.1:24567` (what a rollout's `metrics.prometheusURL` takes). */
  readonly url: string;
  readonly pid: number;
  readonly configFile: string;
  readonly logFile: string;
  /** Instant query; resolves with the result vector's values (empty when no series). Throws on errors. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  /** Resolves once every scrape target has been scraped successfully (health `up`). */
  waitForTargets(timeoutMs?: number): Promise<void>;
  /** The last lines of its log. */
  tail(lines?: number): string;
  /** SIGTERM (SIGKILL after 10 s), waits for the exit, and removes the work dir. Idempotent. */
  stop(): Promise<void>;
}

/** The prometheus binary to run. */
export function prometheusBinary(): string {
  return process.env.PROMETHEUS ?? '/usr/bin/prometheus';
}

/** Whether the prometheus binary is installed (CI installs Debian's package when it is not). */
export function prometheusAvailable(): boolean {
  try {
    accessSync(prometheusBinary(), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The prometheus.yml for `targets`: an API server job and a CoreDNS job per cluster. Exported for review and tests. */
export function prometheusConfig(targets: ScrapeTarget[], o: { scrapeIntervalSeconds: number; tokenFile: (t: ScrapeTarget) => string }): string {
  const interval = `${o.scrapeIntervalSeconds}s`;
  const jobs: unknown[] = [];
  for (const t of targets) {
    const api = new URL(t.apiServerURL);
    jobs.push({
      job_name: `apiserver-${t.name}`,
      scheme: api.protocol.replace(':', ''),
      metrics_path: '/metrics',
      bearer_token_file: o.tokenFile(t),
      tls_config: { ca_file: t.caFile },
      static_configs: [{ targets: [api.host], labels: { cluster: t.name } }],
    });
    if (t.coreDNSMetricsURL) {
      const dns = new URL(t.coreDNSMetricsURL);
      jobs.push({
        job_name: `coredns-${t.name}`,
        scheme: dns.protocol.replace(':', ''),
        metrics_path: dns.pathname,
        static_configs: [{ targets: [dns.host], labels: { cluster: t.name } }],
      });
    }
  }
  return stringify({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: '15s' },
    scrape_configs: jobs,
  });
}

/** Owned servers, killed if the test process exits without stopping them (setpriv covers SIGKILL). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Writes the config and token files into a fresh private dir, starts Prometheus on a free loopback port
 * and resolves once it is ready (`/-/ready`). It is spawned through `setpriv --pdeathsig KILL` when
 * available, like the fleet's components, so it dies with the process that started it.
 */
export async function startPrometheus(o: StartPrometheusOptions): Promise<PrometheusServer> {
  const binary = o.binary ?? prometheusBinary();
  accessSync(binary, constants.X_OK);
  const dir = mkdtempSync(join(o.workDir ?? tmpdir(), 'tro-prometheus-'));
  const tokenFile = (t: ScrapeTarget) => join(dir, `${t.name}.token`);
  for (const t of o.targets) writeFileSync(tokenFile(t), t.adminToken, { mode: 0o600 });
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, prometheusConfig(o.targets, { scrapeIntervalSeconds: o.scrapeIntervalSeconds ?? 1, tokenFile }));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'prometheus.log');
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=2h',
    '--log.level=warn',
  ];
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    const setpriv = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : undefined;
    child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args], { stdio: ['ignore', fd, fd] })
      : spawn(binary, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  child.on('error', () => undefined); // reported through the exit check below
  if (child.pid === undefined) throw new Error(`prometheus: ${binary} could not be started`);
  const pid = child.pid;
  live.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  let stopping: Promise<void> | undefined;

  const tail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };

  const server: PrometheusServer = {
    url,
    pid,
    configFile,
    logFile,
    async query(promql) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (body.status !== 'success' || !body.data) throw new Error(`prometheus query ${promql}: ${body.error ?? `HTTP ${res.status}`}`);
      if (body.data.resultType !== 'vector') throw new Error(`prometheus query ${promql}: result type ${body.data.resultType}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async waitForTargets(timeoutMs = 60_000) {
      await waitUntil(
        'prometheus: every scrape target up',
        async () => {
          const r = await httpGet(`${url}/api/v1/targets?state=active`, { timeoutMs: 5000 });
          if (r.status !== 200) return false;
          const targets = (JSON.parse(r.body) as { data: { activeTargets: Array<{ health: string }> } }).data.activeTargets;
          return targets.length > 0 && targets.every((t) => t.health === 'up');
        },
        { timeoutMs, intervalMs: 500, abort: () => (child.exitCode !== null || child.signalCode !== null ? `prometheus exited:\n${tail()}` : undefined) },
      );
    },
    tail,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };

  try {
    await waitUntil(`prometheus ${url}/-/ready`, async () => (await httpGet(`${url}/-/ready`, { timeoutMs: 2000 })).status === 200, {
      timeoutMs: 60_000,
      intervalMs: 300,
      abort: () => (child.exitCode !== null || child.signalCode !== null ? `prometheus exited:\n${tail()}` : undefined),
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
