/**
 * Source factories of the informer (informer.ts): client-node list/watches (`makeInformer`) for a collection
 * URL, a custom resource (the TelemetryRollouts) and Secrets. Each call of a factory makes a fresh source,
 * as the informer needs on every (re)start.
 */
import { CoreV1Api, CustomObjectsApi, makeInformer } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject, V1Secret } from '@kubernetes/client-node';
import type { ListWatchSource } from './informer.js';

/**
 * A source factory on client-node's `makeInformer` for `path` (the collection URL the watch uses) and
 * `list` (which must list the same collection with the same label selector).
 */
export function clientNodeSource<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  labelSelector?: string,
): () => ListWatchSource<T> {
  return () => makeInformer<T>(kc, path, list, labelSelector);
}

/** Where a custom resource informer looks: all namespaces when `namespace` is absent. */
export interface CustomResourceScope {
  group: string;
  version: string;
  plural: string;
  namespace?: string;
  labelSelector?: string;
}

/** A source factory for a custom resource (e.g. TelemetryRollouts), namespaced or cluster-wide. */
export function customResourceSource<T extends KubernetesObject>(kc: KubeConfig, scope: CustomResourceScope): () => ListWatchSource<T> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const { group, version, plural, namespace, labelSelector } = scope;
  const path = namespace ? `/apis/${group}/${version}/namespaces/${namespace}/${plural}` : `/apis/${group}/${version}/${plural}`;
  const list = async (): Promise<KubernetesListObject<T>> =>
    (namespace
      ? await api.listNamespacedCustomObject({ group, version, namespace, plural, labelSelector })
      : await api.listClusterCustomObject({ group, version, plural, labelSelector })) as KubernetesListObject<T>;
  return clientNodeSource(kc, path, list, labelSelector);
}

/** A source factory for Secrets (the kubeconfig Secrets of the targets), namespaced or cluster-wide. */
export function secretSource(kc: KubeConfig, scope: { namespace?: string; labelSelector?: string } = {}): () => ListWatchSource<V1Secret> {
  const api = kc.makeApiClient(CoreV1Api);
  const { namespace, labelSelector } = scope;
  const path = namespace ? `/api/v1/namespaces/${namespace}/secrets` : '/api/v1/secrets';
  const list = (): Promise<KubernetesListObject<V1Secret>> =>
    namespace ? api.listNamespacedSecret({ namespace, labelSelector }) : api.listSecretForAllNamespaces({ labelSelector });
  return clientNodeSource(kc, path, list, labelSelector);
}
