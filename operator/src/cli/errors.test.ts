import { describe, expect, it } from '@jest/globals';
import { CliError, classifyError, EXIT, oneLine, safeServerUrl, statusMessage } from './errors.js';

const apiError = (code: number, body: unknown) =>
  Object.assign(new Error(`HTTP-Code: ${code}\nBody: ...\nHeaders: {"authorization":"Bearer sekrit"}`), { code, body });
const status = (code: number, reason: string, message: string, details?: object) => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  code,
  reason,
  message,
  ...(details ? { details } : {}),
});
const ctx = { what: 'get telemetryrollout "x" in namespace "ns"', namespace: 'ns', name: 'x', server: 'https://10.0.0.1:6443', timeoutSeconds: 7 };

describe('classifyError', () => {
  it.each<[string, unknown, number, string]>([
    [
      'a missing rollout',
      apiError(
        404,
        status(404, 'NotFound', 'telemetryrollouts.telemetry.rollout.dev "x" not found', {
          name: 'x',
          group: 'telemetry.rollout.dev',
          kind: 'telemetryrollouts',
        }),
      ),
      EXIT.notFound,
      'telemetryrollout "x" not found in namespace "ns"',
    ],
    [
      'a missing rollout, body as JSON text',
      apiError(404, JSON.stringify(status(404, 'NotFound', 'nf', { name: 'x' }))),
      EXIT.notFound,
      'telemetryrollout "x" not found in namespace "ns"',
    ],
    [
      'the CRD not installed',
      apiError(404, '404 page not found\n'),
      EXIT.notFound,
      'get telemetryrollout "x" in namespace "ns": the server does not serve telemetryrollouts.telemetry.rollout.dev (is the CRD installed?)',
    ],
    [
      'the CRD not installed (Status without a name)',
      apiError(404, status(404, 'NotFound', 'the server could not find the requested resource', {})),
      EXIT.notFound,
      'get telemetryrollout "x" in namespace "ns": the server does not serve telemetryrollouts.telemetry.rollout.dev (is the CRD installed?)',
    ],
    [
      'forbidden',
      apiError(403, status(403, 'Forbidden', 'telemetryrollouts.telemetry.rollout.dev "x" is forbidden: User "bob" cannot get resource')),
      EXIT.forbidden,
      'get telemetryrollout "x" in namespace "ns": telemetryrollouts.telemetry.rollout.dev "x" is forbidden: User "bob" cannot get resource',
    ],
    [
      'unauthorized without a Status',
      apiError(401, ''),
      EXIT.forbidden,
      'get telemetryrollout "x" in namespace "ns": unauthorized: the credentials of the kubeconfig were not accepted',
    ],
    [
      'overloaded',
      apiError(429, status(429, 'TooManyRequests', 'too many requests')),
      EXIT.unreachable,
      'get telemetryrollout "x" in namespace "ns": too many requests',
    ],
    ['unavailable', apiError(503, 'oops'), EXIT.unreachable, 'get telemetryrollout "x" in namespace "ns": the API server is not serving (HTTP 503)'],
    [
      'conflict',
      apiError(409, status(409, 'Conflict', 'the object has been modified')),
      EXIT.failed,
      'get telemetryrollout "x" in namespace "ns": the object has been modified',
    ],
    ['wrapped in a cause', new Error('outer', { cause: apiError(403, '') }), EXIT.forbidden, 'get telemetryrollout "x" in namespace "ns": forbidden'],
    [
      'connection refused',
      Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6443'), { code: 'ECONNREFUSED' }) }),
      EXIT.unreachable,
      'get telemetryrollout "x" in namespace "ns": cannot reach https://10.0.0.1:6443: ECONNREFUSED',
    ],
    [
      'a port fetch refuses',
      Object.assign(new TypeError('fetch failed'), { cause: new Error('bad port') }),
      EXIT.unreachable,
      'get telemetryrollout "x" in namespace "ns": cannot reach https://10.0.0.1:6443: bad port',
    ],
    [
      'a TLS failure',
      Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) }),
      EXIT.unreachable,
      'get telemetryrollout "x" in namespace "ns": cannot reach https://10.0.0.1:6443: TLS: DEPTH_ZERO_SELF_SIGNED_CERT',
    ],
    [
      'our timeout',
      new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
      EXIT.unreachable,
      'get telemetryrollout "x" in namespace "ns": cannot reach https://10.0.0.1:6443: no answer within 7s (--request-timeout)',
    ],
    ['anything else', new Error('boom\nsecond line'), EXIT.failed, 'get telemetryrollout "x" in namespace "ns": boom'],
  ])('%s', (_title, err, code, message) => {
    const e = classifyError(err, ctx);
    expect({ code: e.exitCode, message: e.message }).toEqual({ code, message });
    expect(e.message).not.toContain('sekrit');
  });

  it('passes a CliError through and redacts tokens in unknown errors', () => {
    const original = new CliError('x', EXIT.usage);
    expect(classifyError(original, ctx)).toBe(original);
    const e = classifyError(new Error('exec plugin said: Authorization: Bearer abc.def.ghi'), ctx);
    expect(e.message).not.toContain('abc.def.ghi');
  });
});

describe('helpers', () => {
  it('reads Status messages only from Status objects', () => {
    expect(statusMessage({ kind: 'Status', message: 'm' })).toBe('m');
    expect(statusMessage('{"kind":"Status","message":"n"}')).toBe('n');
    expect(statusMessage('<html>')).toBeUndefined();
    expect(statusMessage({ message: 'not a status' })).toBeUndefined();
  });

  it('prints server URLs without credentials', () => {
    expect(safeServerUrl('https://user:pass@example.com:6443/?token=x#f')).toBe('https://example.com:6443');
    expect(safeServerUrl('https://example.com/k8s/clusters/c-1')).toBe('https://example.com/k8s/clusters/c-1');
    expect(safeServerUrl('not a url')).toBe('<unparsable server URL>');
  });

  it('keeps one line of a message', () => {
    expect(oneLine(new Error('a\nb'))).toBe('a');
    expect(oneLine('x'.repeat(400))).toHaveLength(300);
  });
});
