/**
 * Turns the kubeconfig text of a Secret into a client-node `KubeConfig` the operator can use, or says
 * precisely why it cannot, without ever quoting the text.
 *
 * Only embedded credentials work inside the operator image: a bearer token, client certificate and key
 * data, or basic auth. Exec credential plugins (the cloud CLIs are not in the image), auth-providers
 * (removed from kubectl, and they run code or refresh tokens into files) and file references
 * (`certificate-authority`, `client-certificate`, `client-key`, `token-file`: the paths exist on the
 * machine that wrote the kubeconfig, not in the operator's pod) are rejected as unsupported.
 *
 * The file references are also a security matter: client-node's `loadFromString` reads `token-file` at
 * load time, so a Secret naming `/var/run/secrets/kubernetes.io/serviceaccount/token` would send the
 * operator's own token to whatever server the kubeconfig names. Nothing reaches `loadFromString` before
 * it has been checked here, and only the current context, its cluster and its user are passed on.
 *
 * The text parsing, the server URL check and the credential-plugin check are the shared core's (the
 * agent's loader makes the same ones); what differs is policy: the agent reads files on its node, the
 * operator refuses them.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { PooledKubeConfig } from './pooledkubeconfig.js';
import { credentialPluginOf, serverUrlProblem } from '#core/kubeconfig.js';
import { KubeconfigSyntaxError, parseKubeconfigYaml } from '#core/kubeconfigyaml.js';

/** Why a kubeconfig cannot be used: malformed, or well-formed but relying on what the operator lacks. */
export type KubeconfigReason = 'InvalidKubeconfig' | 'UnsupportedKubeconfig';

/**
 * A kubeconfig that cannot be used. The message describes the problem (which field, which line) and
 * never contains a value from the kubeconfig other than the names of its context, cluster and user.
 */
export class KubeconfigError extends Error {
  readonly reason: KubeconfigReason;
  constructor(reason: KubeconfigReason, message: string) {
    super(message);
    this.name = 'KubeconfigError';
    this.reason = reason;
  }
}

/** Largest kubeconfig accepted (a Secret holds at most 1 MiB anyway). */
const MAX_BYTES = 1024 * 1024;

const FILE_FIELDS_CLUSTER = ['certificate-authority'] as const;
const FILE_FIELDS_USER = ['client-certificate', 'client-key', 'token-file'] as const;
const DATA_FIELDS = { cluster: ['certificate-authority-data'], user: ['client-certificate-data', 'client-key-data'] } as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (msg: string) => new KubeconfigError('InvalidKubeconfig', msg);
const unsupported = (msg: string) => new KubeconfigError('UnsupportedKubeconfig', msg);
// Names are shown in messages; a name is not a credential, but keep a hostile one short and printable.
const shown = (name: string) => JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);

function named(list: unknown, field: 'clusters' | 'users' | 'contexts', name: string): Obj {
  if (!Array.isArray(list)) throw invalid(`has no ${field} list`);
  const entry: unknown = list.find((e) => isObj(e) && e.name === name);
  if (!isObj(entry)) throw invalid(`has no entry named ${shown(name)} in ${field}`);
  const inner = entry[field.slice(0, -1)];
  if (!isObj(inner)) throw invalid(`entry ${shown(name)} of ${field} has no ${field.slice(0, -1)} section`);
  return inner;
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function checkData(section: Obj, fields: readonly string[], what: string): void {
  for (const f of fields) {
    const v = section[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v.trim() === '' || !BASE64.test(v)) throw invalid(`${what} field ${f} is not base64 data`);
  }
}

/**
 * Parses and checks kubeconfig text and returns a `KubeConfig` holding only its current context (or its
 * only context when `current-context` is unset), cluster and user. Throws {@link KubeconfigError}.
 */
export function parseKubeconfig(text: string): KubeConfig {
  if (Buffer.byteLength(text, 'utf8') > MAX_BYTES) throw invalid(`is larger than ${MAX_BYTES} bytes`);
  if (text.trim() === '') throw invalid('is empty');
  let root: unknown;
  try {
    root = parseKubeconfigYaml(text);
  } catch (err) {
    // The shared parser reports where, never what (the offending line may be a token).
    if (err instanceof KubeconfigSyntaxError) throw invalid(`is ${err.message}`);
    throw err;
  }
  if (!isObj(root)) throw invalid('is not a kubeconfig (not a mapping)');

  let contextName = root['current-context'];
  if (contextName === undefined || contextName === null || contextName === '') {
    const contexts = Array.isArray(root.contexts) ? root.contexts : [];
    if (contexts.length !== 1 || !isObj(contexts[0]) || typeof contexts[0].name !== 'string') {
      throw invalid('has no current-context (and not exactly one context)');
    }
    contextName = contexts[0].name;
  }
  if (typeof contextName !== 'string') throw invalid('has a current-context that is not a string');
  const context = named(root.contexts, 'contexts', contextName);
  if (typeof context.cluster !== 'string' || context.cluster === '') throw invalid(`context ${shown(contextName)} names no cluster`);
  const clusterName = context.cluster;
  const userName = typeof context.user === 'string' && context.user !== '' ? context.user : undefined;
  const cluster = named(root.clusters, 'clusters', clusterName);

  const server = cluster.server;
  if (typeof server !== 'string' || server === '') throw invalid(`cluster ${shown(clusterName)} has no server`);
  const urlProblem = serverUrlProblem(server);
  if (urlProblem === 'NotAURL') throw invalid(`cluster ${shown(clusterName)} has a server that is not a URL`);
  if (urlProblem === 'NotHTTP') throw invalid(`cluster ${shown(clusterName)} server is not an http(s) URL`);
  if (urlProblem === 'Credentials') throw unsupported(`cluster ${shown(clusterName)} server URL carries credentials; put them in the user section`);
  for (const f of FILE_FIELDS_CLUSTER) {
    if (cluster[f] !== undefined && cluster[f] !== null && cluster[f] !== '') {
      throw unsupported(`cluster ${shown(clusterName)} refers to a file (${f}); files do not exist inside the operator's pod: embed it as ${f}-data`);
    }
  }
  checkData(cluster, DATA_FIELDS.cluster, `cluster ${shown(clusterName)}`);

  let user: Obj = {};
  if (userName !== undefined) {
    user = named(root.users, 'users', userName);
    const plugin = credentialPluginOf(user);
    if (plugin === 'exec') {
      throw unsupported(
        `user ${shown(userName)} uses an exec credential plugin, which cannot run inside the operator's pod; use a kubeconfig with an embedded token or client certificate (for example of a ServiceAccount)`,
      );
    }
    if (plugin === 'auth-provider') {
      throw unsupported(
        `user ${shown(userName)} uses an auth-provider, which the operator does not support; use a kubeconfig with an embedded token or client certificate`,
      );
    }
    for (const f of FILE_FIELDS_USER) {
      if (user[f] !== undefined && user[f] !== null && user[f] !== '') {
        const instead = f === 'token-file' ? 'token' : `${f}-data`;
        throw unsupported(`user ${shown(userName)} refers to a file (${f}); files do not exist inside the operator's pod: embed it as ${instead}`);
      }
    }
    checkData(user, DATA_FIELDS.user, `user ${shown(userName)}`);
    const hasCert = typeof user['client-certificate-data'] === 'string';
    const hasKey = typeof user['client-key-data'] === 'string';
    if (hasCert !== hasKey) throw invalid(`user ${shown(userName)} has client-certificate-data and client-key-data only in part`);
    if (user.token !== undefined && (typeof user.token !== 'string' || user.token === ''))
      throw invalid(`user ${shown(userName)} has an empty or non-string token`);
  }

  // Only the fields client-node understands and we checked; everything else (extensions, other users) stays behind.
  const pick = (o: Obj, keys: string[]): Obj => Object.fromEntries(keys.filter((k) => o[k] !== undefined && o[k] !== null).map((k) => [k, o[k]]));
  const minimal = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': contextName,
    contexts: [{ name: contextName, context: { cluster: clusterName, ...(userName !== undefined ? { user: userName } : {}) } }],
    clusters: [
      { name: clusterName, cluster: pick(cluster, ['server', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'proxy-url']) },
    ],
    users:
      userName !== undefined
        ? [{ name: userName, user: pick(user, ['token', 'client-certificate-data', 'client-key-data', 'username', 'password', 'as']) }]
        : [],
  };
  // Pooled: every request to this cluster shares one connection pool (pooledkubeconfig.ts says why).
  const kc = new PooledKubeConfig();
  try {
    kc.loadFromString(stringify(minimal));
  } catch {
    // client-node's messages name fields only, but its YAML parser could quote input: say where, not what.
    throw invalid('could not be loaded by the Kubernetes client');
  }
  return kc;
}
