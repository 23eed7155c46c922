import { describe, expect, it } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { isConflict, isNotFound, isRetryable, statusCode } from '../controller/kube.js';
import { ControllerMetrics } from '../controller/metrics.js';
import { ClusterRequestError, describeRequest, statusMessage, wrapRequestError } from './kubeapi.js';
import { CLUSTER_API_REQUESTS_METRIC, clusterRequestCounter } from './metrics.js';

describe('describeRequest', () => {
  it.each<[string, string, string | undefined, string, string]>([
    ['GET', '/api/v1/nodes', undefined, 'list', 'nodes'],
    ['GET', '/api/v1/nodes?watch=true&resourceVersion=5', undefined, 'watch', 'nodes'],
    ['GET', '/api/v1/nodes/n1', undefined, 'get', 'nodes'],
    ['PATCH', '/api/v1/nodes/n1', 'application/merge-patch+json', 'patch', 'nodes'],
    ['GET', '/api/v1/namespaces', undefined, 'list', 'namespaces'],
    ['GET', '/api/v1/namespaces/ns', undefined, 'get', 'namespaces'],
    ['PATCH', '/api/v1/namespaces/ns', 'application/apply-patch+yaml', 'apply', 'namespaces'],
    ['GET', '/api/v1/namespaces/ns/secrets', undefined, 'list', 'secrets'],
    ['PATCH', '/apis/apps/v1/namespaces/ns/daemonsets/ds', 'application/apply-patch+yaml', 'apply', 'daemonsets'],
    ['DELETE', '/apis/apps/v1/namespaces/ns/daemonsets/ds', undefined, 'delete', 'daemonsets'],
    ['DELETE', '/apis/apps/v1/namespaces/ns/daemonsets', undefined, 'deletecollection', 'daemonsets'],
    ['PUT', '/apis/telemetry.rollout.dev/v1alpha1/namespaces/ns/telemetryrollouts/ro/status', 'application/json', 'update', 'telemetryrollouts/status'],
    ['POST', '/apis/events.k8s.io/v1/namespaces/ns/events', 'application/json', 'create', 'events'],
    ['PATCH', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x', 'application/apply-patch+yaml', 'apply', 'clusterrolebindings'],
    ['GET', '/apis/apps/v1', undefined, 'get', 'discovery'],
    ['GET', '/api/v1', undefined, 'get', 'discovery'],
    ['GET', 'https://10.0.0.1:6443/api/v1/nodes', undefined, 'list', 'nodes'],
    ['GET', '/readyz', undefined, 'get', '/readyz'],
    ['GET', '/metrics', undefined, 'get', '/metrics'],
  ])('%s %s', (method, url, contentType, verb, resource) => {
    expect(describeRequest(method, url, contentType)).toEqual({ verb, resource });
  });
});

describe('wrapRequestError', () => {
  it('keeps the HTTP status and the Status message of an ApiException', () => {
    const body = { kind: 'Status', code: 409, message: 'the object has been modified; please apply your changes to the latest version' };
    const err = wrapRequestError('east', 'write status', new ApiException(409, 'HTTP-Code: 409 ...', body, {}));
    expect(err).toBeInstanceOf(ClusterRequestError);
    expect(err.message).toBe('cluster east: write status: HTTP 409: the object has been modified; please apply your changes to the latest version');
    expect(err.code).toBe(409);
    expect(statusCode(err)).toBe(409);
    expect(isConflict(err)).toBe(true);
    expect(isNotFound(err)).toBe(false);
    expect(err.cause).toBeInstanceOf(ApiException);
  });

  it('says the call timed out when its own timeout fired, and stays retryable', () => {
    const err = wrapRequestError('east', 'list Nodes', new DOMException('The operation was aborted due to timeout', 'TimeoutError'), 10000);
    expect(err.message).toBe('cluster east: list Nodes: timed out after 10000 ms');
    expect(isRetryable(err)).toBe(true);
  });

  it('names the system error of a failed connection', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const err = wrapRequestError('east', 'apply DaemonSet ns/x', new TypeError('fetch failed', { cause }));
    expect(err.message).toBe('cluster east: apply DaemonSet ns/x: ECONNREFUSED');
    expect(isRetryable(err)).toBe(true);
  });

  it('is not retryable when the caller aborted', () => {
    const err = wrapRequestError('east', 'x', new DOMException('aborted', 'AbortError'));
    expect(err.message).toBe('cluster east: x: aborted');
    expect(isRetryable(err)).toBe(false);
  });

  it('redacts anything credential-like in a message it passes on', () => {
    const err = wrapRequestError('east', 'x', new Error('failed with Authorization: Bearer abcdef0123456789'));
    expect(err.message).not.toContain('abcdef0123456789');
  });

  it('does not wrap twice', () => {
    const inner = wrapRequestError('east', 'x', new Error('boom'));
    expect(wrapRequestError('east', 'y', inner)).toBe(inner);
  });
});

describe('statusMessage', () => {
  it('reads parsed and unparsed Status bodies', () => {
    expect(statusMessage({ message: 'm' })).toBe('m');
    expect(statusMessage('{"message":"n"}')).toBe('n');
    expect(statusMessage('plain text')).toBe('plain text');
    expect(statusMessage(undefined)).toBeUndefined();
    expect(statusMessage('')).toBeUndefined();
  });
});

describe('clusterRequestCounter', () => {
  it('registers the counter once per registry and reuses it', async () => {
    const registry = new Registry();
    const a = clusterRequestCounter(registry);
    const b = clusterRequestCounter(registry);
    expect(a).toBe(b);
    a.inc({ cluster: 'east', verb: 'list', resource: 'nodes', code: '200' });
    expect(await registry.metrics()).toContain(`${CLUSTER_API_REQUESTS_METRIC}{cluster="east",verb="list",resource="nodes",code="200"} 1`);
  });

  it("returns the counter the manager's ControllerMetrics registered, so client requests show on its /metrics", async () => {
    const metrics = new ControllerMetrics();
    clusterRequestCounter(metrics.registry).inc({ cluster: 'east', verb: 'watch', resource: 'nodes', code: '200' });
    expect(await metrics.registry.metrics()).toContain(`${CLUSTER_API_REQUESTS_METRIC}{cluster="east",verb="watch",resource="nodes",code="200"} 1`);
  });
});
