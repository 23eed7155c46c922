/**
 * The plugin's connection to the management cluster: kubeconfig loading (`--kubeconfig`, `--context`,
 * the context's namespace), and the three calls the commands need on TelemetryRollouts (get, list,
 * JSON merge patch), each bounded by `--request-timeout` and failing with a classified {@link CliError}.
 *
 * The commands see only the {@link RolloutApi} interface, so they are unit-tested with a fake.
 * Nothing here prints or embeds kubeconfig content: load errors name the file and the reason only.
 */
import {
  CustomObjectsApi,
  KubeConfig,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
  type RequestContext as HttpRequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/crd.js';
import type { TelemetryRollout } from '../api/types.generated.js';
import { CliError, classifyError, EXIT, safeServerUrl } from './errors.js';

/** What the commands do with TelemetryRollouts. Every method rejects with a {@link CliError}. */
export interface RolloutApi {
  /** The rollout, or CliError exit 3 when it does not exist. */
  get(namespace: string, name: string): Promise<TelemetryRollout>;
  /** The rollouts of a namespace, or of all namespaces when `namespace` is undefined. */
  list(namespace: string | undefined): Promise<TelemetryRollout[]>;
  /** Applies a JSON merge patch to the rollout (not its status) and returns the result. */
  patch(namespace: string, name: string, patch: object): Promise<TelemetryRollout>;
}

/** How to connect: the global options. */
export interface ConnectOptions {
  /** A kubeconfig file; default: $KUBECONFIG, ~/.kube/config, in-cluster. */
  kubeconfig?: string;
  /** A context of the kubeconfig instead of its current one. */
  context?: string;
  /** The namespace; default: the context's, else `default`. */
  namespace?: string;
  /** Per-request timeout in seconds. */
  requestTimeoutSeconds: number;
}

/** A ready connection. */
export interface Connection {
  api: RolloutApi;
  /** The namespace commands act in. */
  namespace: string;
  /** The API server URL (no credentials). */
  server: string;
}

/** A YAML/JSON parse error's reason without the source excerpt (which could show a token). */
function loadFailure(err: unknown): string {
  const e = err as { code?: unknown; reason?: unknown; mark?: { line?: number } };
  if (e.code === 'ENOENT') return 'no such file';
  if (e.code === 'EACCES') return 'permission denied';
  if (typeof e.reason === 'string') return `${e.reason}${typeof e.mark?.line === 'number' ? ` at line ${e.mark.line + 1}` : ''}`;
  return err instanceof Error ? err.name : 'unreadable';
}

/**
 * Loads the kubeconfig as kubectl would (an explicit file, else $KUBECONFIG / ~/.kube/config /
 * in-cluster) and selects the context. Unusable input is a usage error (exit 2).
 */
export function loadKubeConfig(o: Pick<ConnectOptions, 'kubeconfig' | 'context'>): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (o.kubeconfig !== undefined) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError(`cannot load kubeconfig ${o.kubeconfig ?? '(default)'}: ${loadFailure(err)}`, EXIT.usage, { cause: err });
  }
  if (o.context !== undefined) {
    if (!kc.getContextObject(o.context)) throw new CliError(`context "${o.context}" not found in the kubeconfig`, EXIT.usage);
    kc.setCurrentContext(o.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError(`the kubeconfig ${o.kubeconfig ?? '(default)'} has no current context with a cluster; pass --context`, EXIT.usage);
  }
  return kc;
}

/**
 * Per-request client-node options: a timeout signal and, for patches, the merge-patch content type.
 * client-node's object APIs run their middleware through its Observable stub, so `pre`/`post` return
 * Observables (promise middleware fails there with "toPromise is not a function").
 */
function requestOptions(timeoutSeconds: number, contentType?: string): ConfigurationOptions<ObservableMiddleware> {
  const signal = AbortSignal.timeout(timeoutSeconds * 1000);
  const middleware: ObservableMiddleware = {
    pre: (ctx: HttpRequestContext) => {
      ctx.setSignal(signal);
      if (contentType) ctx.setHeaderParam('Content-Type', contentType);
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx: ResponseContext) => new Observable(Promise.resolve(ctx)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** A {@link RolloutApi} on client-node's CustomObjectsApi. */
export class KubeRolloutApi implements RolloutApi {
  private readonly custom: CustomObjectsApi;
  private readonly server: string;
  private readonly timeoutSeconds: number;

  constructor(kc: KubeConfig, timeoutSeconds: number) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.server = safeServerUrl(kc.getCurrentCluster()?.server ?? '');
    this.timeoutSeconds = timeoutSeconds;
  }

  private async call<T>(what: string, ids: { namespace?: string; name?: string }, fn: () => Promise<unknown>): Promise<T> {
    try {
      return (await fn()) as T;
    } catch (err) {
      throw classifyError(err, { what, server: this.server, timeoutSeconds: this.timeoutSeconds, ...ids });
    }
  }

  /** See {@link RolloutApi.get}. */
  get(namespace: string, name: string): Promise<TelemetryRollout> {
    return this.call(`get telemetryrollout "${name}" in namespace "${namespace}"`, { namespace, name }, () =>
      this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name }, requestOptions(this.timeoutSeconds)),
    );
  }

  /** See {@link RolloutApi.list}. */
  async list(namespace: string | undefined): Promise<TelemetryRollout[]> {
    const opts = requestOptions(this.timeoutSeconds);
    const res = await this.call<{ items?: TelemetryRollout[] }>(
      namespace === undefined ? 'list telemetryrollouts in all namespaces' : `list telemetryrollouts in namespace "${namespace}"`,
      namespace === undefined ? {} : { namespace },
      () =>
        namespace === undefined
          ? this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }, opts)
          : this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }, opts),
    );
    return res.items ?? [];
  }

  /** See {@link RolloutApi.patch}. */
  patch(namespace: string, name: string, body: object): Promise<TelemetryRollout> {
    return this.call(`patch telemetryrollout "${name}" in namespace "${namespace}"`, { namespace, name }, () =>
      this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body },
        requestOptions(this.timeoutSeconds, 'application/merge-patch+json'),
      ),
    );
  }
}

/** Loads the kubeconfig and returns the API, the namespace to use and the server. */
export function connect(o: ConnectOptions): Connection {
  const kc = loadKubeConfig(o);
  const ctxNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  const server = safeServerUrl(kc.getCurrentCluster()?.server ?? '');
  return { api: new KubeRolloutApi(kc, o.requestTimeoutSeconds), namespace: o.namespace ?? (ctxNamespace || 'default'), server };
}
