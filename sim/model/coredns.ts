/**
 * A cluster's CoreDNS in aggregate, reduced to the one thing an API server outage does to it: names of
 * Services are answered from records the kubernetes plugin keeps fresh through its watch of Services
 * and EndpointSlices; while the API server is up they are refreshed continuously, and once it is gone
 * they are served for `staleServeSeconds` more (the cache), after which lookups of service names fail
 * with SERVFAIL until the API server is back. Lookups of outside names (the forward plugin) go on.
 *
 * That is the pessimistic reading the product's gates are sized for (`gates.coreDNS.cacheTTLSeconds`,
 * "DNS failures lag an API outage by up to this long"): the real kubernetes plugin keeps its informer's
 * store while the watch is broken, so a CoreDNS pod that keeps running may serve stale records longer;
 * the failures come from pods that restart meanwhile (they start with no data) and from records that
 * changed during the outage. The model does not tell those apart; what it shows is that DNS fails only
 * once the cached entries expire and cannot be refreshed from a dead API server.
 *
 * Its counters render a CoreDNS `/metrics` page (requests, responses by rcode, the request-duration
 * histogram), so a modelled Prometheus scrapes it the way it would scrape CoreDNS's :9153.
 */
import type { Model } from './calibration.js';

/** CoreDNS's request-duration buckets (seconds), as `coredns_dns_request_duration_seconds` has them. */
export const DNS_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/** What one model step saw. */
export interface DnsStep {
  /** Queries per second. */
  requestsPerSecond: number;
  /** SERVFAIL answers per second (service names whose records expired). */
  servfailPerSecond: number;
  /** p99 request duration, seconds. */
  p99Seconds: number;
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf). */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

/** One cluster's CoreDNS. */
export class CoreDnsModel {
  private readonly m: Model['coredns'];
  private readonly qps: number;
  private readonly startSeconds: number;
  /** Until when (ms) the records fetched from the API server are still served. */
  private freshUntil: number;
  private requests = 0;
  private readonly responses = new Map<string, number>();
  private readonly cum = new Float64Array(DNS_BUCKETS.length);
  private sum = 0;

  constructor(model: Model, nodes: number, nowMs: number) {
    this.m = model.coredns;
    this.qps = nodes * model.cluster.podsPerNode * this.m.queriesPerPodPerSecond;
    this.startSeconds = Math.floor(nowMs / 1000);
    this.freshUntil = nowMs + this.m.staleServeSeconds * 1000;
  }

  /** Whether service names fail now (their records expired and cannot be refreshed). */
  failing(nowMs: number): boolean {
    return nowMs > this.freshUntil;
  }

  /**
   * Advances by `dt` seconds ending at `nowMs`, with the API server up or not. While it is up the watch
   * keeps every record fresh; once it is down nothing refreshes them and they expire.
   */
  step(nowMs: number, dt: number, apiUp: boolean): DnsStep {
    const m = this.m;
    if (apiUp) this.freshUntil = nowMs + m.staleServeSeconds * 1000;
    const failing = this.failing(nowMs);
    const servfail = failing ? this.qps * m.serviceLookupFraction : 0;
    const n = this.qps * dt;
    this.requests += n;
    this.responses.set('NOERROR', (this.responses.get('NOERROR') ?? 0) + n - servfail * dt);
    if (servfail > 0) this.responses.set('SERVFAIL', (this.responses.get('SERVFAIL') ?? 0) + servfail * dt);
    for (let i = 0; i < DNS_BUCKETS.length; i++) this.cum[i]! += n * phi(Math.log(DNS_BUCKETS[i]! / m.requestMedianSeconds) / m.requestSigma);
    this.sum += n * m.requestMedianSeconds * Math.exp((m.requestSigma * m.requestSigma) / 2);
    return { requestsPerSecond: this.qps, servfailPerSecond: servfail, p99Seconds: m.requestMedianSeconds * Math.exp(2.326 * m.requestSigma) };
  }

  /** The `/metrics` page: the series the gates' CoreDNS signals read. */
  metricsText(): string {
    const out: string[] = [];
    out.push('# TYPE coredns_dns_requests_total counter');
    out.push(`coredns_dns_requests_total{server="dns://:53",zone=".",proto="udp",family="1",type="A"} ${Math.round(this.requests)}`);
    out.push('# TYPE coredns_dns_responses_total counter');
    for (const [rcode, v] of [...this.responses].sort()) out.push(`coredns_dns_responses_total{server="dns://:53",zone=".",rcode="${rcode}"} ${Math.round(v)}`);
    out.push('# TYPE coredns_dns_request_duration_seconds histogram');
    for (let i = 0; i < DNS_BUCKETS.length; i++)
      out.push(`coredns_dns_request_duration_seconds_bucket{server="dns://:53",zone=".",type="A",le="${DNS_BUCKETS[i]}"} ${Math.round(this.cum[i]!)}`);
    out.push(`coredns_dns_request_duration_seconds_bucket{server="dns://:53",zone=".",type="A",le="+Inf"} ${Math.round(this.requests)}`);
    out.push(`coredns_dns_request_duration_seconds_sum{server="dns://:53",zone=".",type="A"} ${this.sum.toFixed(3)}`);
    out.push(`coredns_dns_request_duration_seconds_count{server="dns://:53",zone=".",type="A"} ${Math.round(this.requests)}`);
    out.push('# TYPE process_start_time_seconds gauge');
    out.push(`process_start_time_seconds ${this.startSeconds}`);
    return `${out.join('\n')}\n`;
  }
}
