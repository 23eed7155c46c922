// A deterministic, cheap way to make the API server error-ratio gate fail on a real kube-apiserver: a
// validating admission webhook that fails closed and points at a port nothing listens on, scoped to one
// namespace, and a client that creates ConfigMaps there at a steady rate. Every create is answered 500
// ("failed calling webhook") within milliseconds, and kube-apiserver counts it in
// `apiserver_request_total{code="500"}` like any server error, so the gate's error ratio (5xx + 429
// over all requests) climbs far over its bound within one window, without the pod population and the
// saturated CPU that a latency regression needs (loadgen.ts). It stands for agents whose requests the
// control plane fails: a gate has to notice either way.
//
//   const storm = await startErrorStorm(target, namespace, { ratePerSecond: 40 });
//   ...                                  // the error-ratio gate fails now
//   const { requests, serverErrors } = await storm.stop();   // stops the client, removes the webhook
import { CoreV1Api } from '@kubernetes/client-node';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { kubectl } from '../controlplane/testing.js';

/** Options of {@link startErrorStorm}. */
export interface ErrorStormOptions {
  /** Creates per second (default 40); the target's background traffic is a few tens of requests per second. */
  ratePerSecond?: number;
  /** Creates in flight at most (default 8): a slow server does not get an ever-growing queue. */
  maxInFlight?: number;
  /** Stop by itself after this long (default 120 s): a forgotten storm must not run for ever. */
  durationMs?: number;
}

/** What a storm did. */
export interface ErrorStormStats {
  requests: number;
  /** Answers with a 5xx status (the webhook's 500s). */
  serverErrors: number;
  /** Anything else that was not a 5xx (an accepted create would mean the webhook is not in the way). */
  other: number;
}

/** A running storm. */
export interface ErrorStorm {
  readonly webhook: string;
  stats(): ErrorStormStats;
  /** Stops creating, waits for the creates in flight, removes the webhook. Idempotent. */
  stop(): Promise<ErrorStormStats>;
}

/**
 * Installs the failing webhook for `namespace` (which must exist) in `cluster` and starts creating
 * ConfigMaps there (see the file comment). The webhook is named after the namespace, so storms of
 * different tests never share one.
 */
export async function startErrorStorm(cluster: ClusterHandle, namespace: string, o: ErrorStormOptions = {}): Promise<ErrorStorm> {
  const webhook = `tro-e2e-error-storm-${namespace}`;
  await kubectl(cluster, ['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: webhook, labels: { 'telemetry.rollout.dev/e2e': 'error-storm' } },
      webhooks: [
        {
          name: 'error-storm.e2e.telemetry.rollout.dev',
          // Port 1: connection refused at once, so each create fails fast and costs the server nothing.
          clientConfig: { url: 'https://127.0.0.1:1/validate' },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 1,
        },
      ],
    }),
  });
  const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  const stats: ErrorStormStats = { requests: 0, serverErrors: 0, other: 0 };
  const inFlight = new Set<Promise<void>>();
  const maxInFlight = o.maxInFlight ?? 8;
  let seq = 0;
  const tick = (): void => {
    if (inFlight.size >= maxInFlight) return;
    stats.requests++;
    const p = core
      .createNamespacedConfigMap({ namespace, body: { metadata: { name: `storm-${seq++}`, namespace } } })
      .then(
        () => void stats.other++,
        (err: unknown) => {
          const code = (err as { code?: unknown }).code;
          if (typeof code === 'number' && code >= 500) stats.serverErrors++;
          else stats.other++;
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const timer = setInterval(tick, 1000 / (o.ratePerSecond ?? 40));
  let stopping: Promise<ErrorStormStats> | undefined;
  const stop = (): Promise<ErrorStormStats> => {
    stopping ??= (async () => {
      clearInterval(timer);
      clearTimeout(deadline);
      await Promise.allSettled([...inFlight]);
      await kubectl(cluster, ['delete', 'validatingwebhookconfiguration', webhook, '--ignore-not-found']);
      return { ...stats };
    })();
    return stopping;
  };
  const deadline = setTimeout(() => void stop().catch(() => undefined), o.durationMs ?? 120_000);
  return { webhook, stats: () => ({ ...stats }), stop };
}
