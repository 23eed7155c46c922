/**
 * A kubeconfig Secret reader that asks the API server on every call, for tests that drive the cluster
 * client factory against a real API server without the operator's Secret informer.
 */
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { requestOptions } from '../../../operator/src/controller/kube.js';
import type { SecretReader } from '../../../operator/src/cluster/factory.js';

/** A {@link SecretReader} that asks the API server each time (the manager uses its informer cache). */
export class ApiSecretReader implements SecretReader {
  private readonly core: CoreV1Api;
  private readonly timeoutMs: number;
  constructor(core: CoreV1Api, timeoutMs = 10_000) {
    this.core = core;
    this.timeoutMs = timeoutMs;
  }

  async get(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace }, requestOptions(AbortSignal.timeout(this.timeoutMs)));
    } catch (err) {
      if ((err as { code?: unknown }).code === 404) return undefined;
      // The error of a failed read carries the Status, never the Secret: safe to keep as cause.
      throw new Error(`read Secret ${namespace}/${name}`, { cause: err });
    }
  }

  async list(namespace: string, labelSelector?: string): Promise<V1Secret[]> {
    try {
      const list = await this.core.listNamespacedSecret(
        { namespace, ...(labelSelector ? { labelSelector } : {}) },
        requestOptions(AbortSignal.timeout(this.timeoutMs)),
      );
      return list.items;
    } catch (err) {
      throw new Error(`list Secrets in ${namespace}`, { cause: err });
    }
  }
}
