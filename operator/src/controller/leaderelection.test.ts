import { describe, expect, it } from '@jest/globals';
import type { V1Lease } from '@kubernetes/client-node';
import { apiError } from '../../../testkit/operator/controller/fakes.js';
import { isConflict } from './kube.js';
import { KubeLeaseClient, fromV1Lease, toV1Lease } from './leaderelection.js';
import type { LeaseApi } from './leaderelection.js';

// The elector itself (lib/core/leaderelection.ts) is tested in lib/core/leaderelection.test.ts; here
// the operator's Lease storage on client-node.

const NS = 'operators';
const NAME = 'telemetry-rollout-leader';

describe('Lease conversion', () => {
  it('writes MicroTime with six fractional digits and reads string timestamps back', () => {
    const when = new Date('2026-11-25T10:00:00.123Z');
    const v1 = toV1Lease({ namespace: NS, name: NAME, resourceVersion: '7', holderIdentity: 'a', renewTime: when, acquireTime: when });
    const wire = JSON.parse(JSON.stringify(v1)) as { spec: { renewTime: string }; metadata: { resourceVersion: string } };
    expect(wire.spec.renewTime).toBe('2026-11-25T10:00:00.123000Z');
    expect(wire.metadata.resourceVersion).toBe('7');
    // client-node 2.0.1 hands MicroTime back as the raw string.
    const back = fromV1Lease(wire as unknown as V1Lease);
    expect(back.renewTime?.getTime()).toBe(when.getTime());
    expect(back).toMatchObject({ namespace: NS, name: NAME, holderIdentity: 'a', resourceVersion: '7' });
  });
});

describe('KubeLeaseClient', () => {
  function fakeApi(overrides: Partial<Record<keyof LeaseApi, (...args: unknown[]) => Promise<V1Lease>>>): LeaseApi {
    const unexpected = (): Promise<V1Lease> => Promise.reject(new Error('unexpected call'));
    return {
      readNamespacedLease: overrides.readNamespacedLease ?? unexpected,
      createNamespacedLease: overrides.createNamespacedLease ?? unexpected,
      replaceNamespacedLease: overrides.replaceNamespacedLease ?? unexpected,
    };
  }

  it('maps 404 to undefined and keeps the status of wrapped errors', async () => {
    const client = new KubeLeaseClient(
      fakeApi({
        readNamespacedLease: () => Promise.reject(apiError(404, 'NotFound')),
        replaceNamespacedLease: () => Promise.reject(apiError(409, 'Conflict')),
      }),
    );
    await expect(client.get(NS, NAME)).resolves.toBeUndefined();
    const err = await client.replace({ namespace: NS, name: NAME, resourceVersion: '1' }).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect((err as Error).message).toBe(`replace Lease ${NS}/${NAME}`);
  });

  it('sends the lease with its resourceVersion and per-request options when given a signal', async () => {
    const seen: unknown[][] = [];
    const client = new KubeLeaseClient(
      fakeApi({
        createNamespacedLease: (...args) => {
          seen.push(args);
          return Promise.resolve({ metadata: { namespace: NS, name: NAME, resourceVersion: '1' }, spec: { holderIdentity: 'a' } });
        },
      }),
    );
    const created = await client.create({ namespace: NS, name: NAME, holderIdentity: 'a' }, new AbortController().signal);
    expect(created).toMatchObject({ resourceVersion: '1', holderIdentity: 'a' });
    const [param, options] = seen[0]! as [{ namespace: string; body: V1Lease }, { middleware: unknown[] }];
    expect(param.namespace).toBe(NS);
    expect(param.body.spec?.holderIdentity).toBe('a');
    expect(options.middleware).toHaveLength(1);
  });
});
