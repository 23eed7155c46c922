import { describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { KubeconfigError, parseKubeconfig } from './kubeconfig.js';

/** A recognisable fake credential: it must never show up in an error message. */
const FAKE_TOKEN = 'FAKE-TOKEN-7f3c9e1d-do-not-leak';
const CA = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n').toString('base64');

type User = Record<string, unknown>;
function kubeconfig(user: User = { token: FAKE_TOKEN }, cluster: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ctx',
    contexts: [{ name: 'ctx', context: { cluster: 'east', user: 'admin' } }],
    clusters: [{ name: 'east', cluster: { server: 'https://east.example:6443', 'certificate-authority-data': CA, ...cluster } }],
    users: [{ name: 'admin', user }],
    ...extra,
  });
}

function failure(text: string): KubeconfigError {
  try {
    parseKubeconfig(text);
  } catch (err) {
    expect(err).toBeInstanceOf(KubeconfigError);
    return err as KubeconfigError;
  }
  throw new Error('expected parseKubeconfig to throw');
}

describe('parseKubeconfig', () => {
  it('loads an embedded-token kubeconfig with only its current context, cluster and user', () => {
    const kc = parseKubeconfig(
      kubeconfig(
        { token: FAKE_TOKEN },
        {},
        {
          contexts: [
            { name: 'ctx', context: { cluster: 'east', user: 'admin' } },
            { name: 'other', context: { cluster: 'east', user: 'other' } },
          ],
          users: [
            { name: 'admin', user: { token: FAKE_TOKEN } },
            // Another user pointing at a file: it is not the current one, so it is dropped and the file never read.
            { name: 'other', user: { 'token-file': '/nonexistent/token' } },
          ],
        },
      ),
    );
    expect(kc.getCurrentCluster()?.server).toBe('https://east.example:6443');
    expect(kc.getCurrentUser()?.token).toBe(FAKE_TOKEN);
    expect(kc.getContexts().map((c) => c.name)).toEqual(['ctx']);
    expect(kc.getUsers().map((u) => u.name)).toEqual(['admin']);
  });

  it('loads client certificate data and uses the only context when current-context is unset', () => {
    const text = stringify({
      contexts: [{ name: 'only', context: { cluster: 'east', user: 'admin' } }],
      clusters: [{ name: 'east', cluster: { server: 'https://east.example:6443', 'certificate-authority-data': CA } }],
      users: [{ name: 'admin', user: { 'client-certificate-data': CA, 'client-key-data': CA } }],
    });
    const kc = parseKubeconfig(text);
    expect(kc.getCurrentContext()).toBe('only');
    expect(kc.getCurrentUser()?.certData).toBe(CA);
  });

  it.each<[string, string, KubeconfigError['reason'], RegExp]>([
    ['empty', '', 'InvalidKubeconfig', /is empty/],
    ['not YAML', `users: [ {token: ${FAKE_TOKEN}`, 'InvalidKubeconfig', /not valid YAML \(line \d+, column \d+\)/],
    ['not a mapping', `- ${FAKE_TOKEN}`, 'InvalidKubeconfig', /not a mapping/],
    [
      'no context to choose',
      kubeconfig(
        { token: FAKE_TOKEN },
        {},
        {
          'current-context': '',
          contexts: [
            { name: 'a', context: { cluster: 'east' } },
            { name: 'b', context: { cluster: 'east' } },
          ],
        },
      ),
      'InvalidKubeconfig',
      /no current-context/,
    ],
    ['current context missing', kubeconfig({ token: FAKE_TOKEN }, {}, { 'current-context': 'nope' }), 'InvalidKubeconfig', /no entry named "nope" in contexts/],
    ['user missing', kubeconfig({ token: FAKE_TOKEN }, {}, { users: [] }), 'InvalidKubeconfig', /no entry named "admin" in users/],
    ['no server', kubeconfig({ token: FAKE_TOKEN }, { server: '' }), 'InvalidKubeconfig', /has no server/],
    ['server not a URL', kubeconfig({ token: FAKE_TOKEN }, { server: 'not a url' }), 'InvalidKubeconfig', /not a URL/],
    [
      'server with credentials',
      kubeconfig({ token: FAKE_TOKEN }, { server: `https://u:${FAKE_TOKEN}@east.example` }),
      'UnsupportedKubeconfig',
      /server URL carries credentials/,
    ],
    [
      'bad CA data',
      kubeconfig({ token: FAKE_TOKEN }, { 'certificate-authority-data': `${FAKE_TOKEN}!` }),
      'InvalidKubeconfig',
      /certificate-authority-data is not base64/,
    ],
    ['certificate and no key', kubeconfig({ 'client-certificate-data': CA }), 'InvalidKubeconfig', /only in part/],
    [
      'exec plugin',
      kubeconfig({ exec: { command: 'aws', args: ['eks', 'get-token', FAKE_TOKEN], apiVersion: 'client.authentication.k8s.io/v1' } }),
      'UnsupportedKubeconfig',
      /exec credential plugin/,
    ],
    ['auth-provider', kubeconfig({ 'auth-provider': { name: 'oidc', config: { 'id-token': FAKE_TOKEN } } }), 'UnsupportedKubeconfig', /auth-provider/],
    [
      'token-file',
      kubeconfig({ 'token-file': '/var/run/secrets/kubernetes.io/serviceaccount/token' }),
      'UnsupportedKubeconfig',
      /refers to a file \(token-file\).*embed it as token/,
    ],
    [
      'client-certificate file',
      kubeconfig({ 'client-certificate': '/home/me/cert.pem', 'client-key-data': CA }),
      'UnsupportedKubeconfig',
      /refers to a file \(client-certificate\)/,
    ],
    [
      'client-key file',
      kubeconfig({ 'client-certificate-data': CA, 'client-key': '/home/me/key.pem' }),
      'UnsupportedKubeconfig',
      /refers to a file \(client-key\)/,
    ],
    [
      'certificate-authority file',
      kubeconfig({ token: FAKE_TOKEN }, { 'certificate-authority': '/etc/ca.pem' }),
      'UnsupportedKubeconfig',
      /refers to a file \(certificate-authority\).*certificate-authority-data/,
    ],
  ])('rejects %s', (_name, text, reason, message) => {
    const err = failure(text);
    expect(err.reason).toBe(reason);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(FAKE_TOKEN);
    expect(JSON.stringify(err)).not.toContain(FAKE_TOKEN);
    expect(err.cause).toBeUndefined();
  });

  it('never reads a token-file, even one that exists', () => {
    // The operator's own service-account token is exactly what a malicious kubeconfig would point at.
    const err = failure(kubeconfig({ 'token-file': '/etc/hostname' }));
    expect(err.reason).toBe('UnsupportedKubeconfig');
  });
});
