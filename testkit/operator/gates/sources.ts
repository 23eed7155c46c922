/**
 * Shared by the metric-source unit tests (operator/src/gates/*.test.ts): the metrics fixtures and the
 * values they give, a hand-moved clock, a local page server, a closed port, and the production getter.
 */
import { expect } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClusterClient } from '../../../operator/src/cluster/kubeclient.js';
import type { RawGetter } from '../../../operator/src/gates/scrape.js';
import type { Measurement } from '../../../operator/src/gates/sources.js';

/** A metrics page from testkit/operator/gates/testdata. */
export function fixture(name: string): string {
  return readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8');
}
/** The two kube-apiserver pages, 30 s apart. */
export const API1 = fixture('kube-apiserver-metrics-1.txt');
export const API2 = fixture('kube-apiserver-metrics-2.txt');
/** The two CoreDNS pages, 30 s apart. */
export const DNS1 = fixture('coredns-metrics-1.txt');
export const DNS2 = fixture('coredns-metrics-2.txt');

/** The same page from a process that started at another time (a restart, or another replica). */
export function otherProcess(page: string, startTime: string): string {
  const replaced = page.replace(/^process_start_time_seconds .*$/m, `process_start_time_seconds ${startTime}`);
  if (replaced === page) throw new Error('fixture has no process_start_time_seconds');
  return replaced;
}

/** The values the fixtures were designed to give over their 30 s window (see signals.test.ts). */
export const API_VALUES = {
  apiServerP99Seconds: 0.6 + 0.2 / 3,
  apiServerErrorRatio: 0.01,
  apiServerRequestRate: 1000 / 30,
  apiServerListRate: 3,
  apfRejectionsPerSecond: 0.2,
};
/** The CoreDNS values the fixtures give over their window. */
export const DNS_VALUES = { coreDNSErrorRatio: 0.02, coreDNSP99Seconds: 0.002 + 0.002 / 3, coreDNSRequestRate: 2000 / 30 };

/** Asserts an ok measurement with exactly these values. */
export function expectValues(m: Measurement, expected: Record<string, number>): void {
  if (m.kind !== 'ok') throw new Error(`expected ok, got ${m.kind}: ${m.message}`);
  expect(Object.keys(m.values).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, value] of Object.entries(expected)) {
    expect(m.values[name as keyof typeof m.values]).toBeCloseTo(value, 10);
  }
}

/** A fake clock the test moves by hand. */
export class ManualClock {
  t = Date.parse('2026-11-25T10:00:00Z');
  now(): Date {
    return new Date(this.t);
  }
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

/** A local HTTP server whose answer the test sets: a page, a status, or silence. */
export class PageServer {
  readonly server: http.Server;
  page = '';
  status = 200;
  hang = false;
  readonly requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  url = '';

  constructor(handler?: http.RequestListener) {
    this.server = http.createServer(
      handler ??
        ((req, res) => {
          this.requests.push({ url: req.url ?? '', headers: req.headers });
          if (this.hang) return;
          res.writeHead(this.status, { 'content-type': 'text/plain; version=0.0.4' }).end(this.page);
        }),
    );
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A kubeconfig for `server` with a token and no TLS verification. */
export function kubeconfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

/** The production getter: the cluster client's raw GET through `kubeconfig`. */
export function clusterClient(kc: KubeConfig, timeoutMs?: number): RawGetter {
  return new KubeClusterClient('c', kc, timeoutMs === undefined ? {} : { timeoutMs });
}
