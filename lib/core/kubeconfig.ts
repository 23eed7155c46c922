/**
 * Where the API server is and how to authenticate to it: the part of client-node's
 * `KubeConfig.loadFromDefault()` the agent needs, without client-node; and the checks of kubeconfig
 * text that the operator's loader of kubeconfig Secrets shares (text parsing, server URL, credential
 * plugins). Importing client-node alone
 * took an agent process from ~42 to ~129 MiB RSS, twice the agent's whole memory budget, for a
 * handful of fields.
 *
 * Sources, in client-node's order: the KUBECONFIG file(s), `~/.kube/config`, then the in-cluster
 * service account. Supported kubeconfig fields: the current context's cluster `server`,
 * `certificate-authority(-data)`, `insecure-skip-tls-verify`, `tls-server-name`, and its user's `token`,
 * `tokenFile`, `client-certificate(-data)`, `client-key(-data)`. Credential plugins (`exec`,
 * `auth-provider`) are refused: an agent on every node must not run a cloud CLI per token, and
 * silently ignoring them would send anonymous requests. Basic auth, impersonation and proxies are
 * refused for the same reason: better a clear startup error than a half-honoured kubeconfig.
 *
 * Errors never carry a credential: messages name files, contexts, users and fields, never values, and
 * a YAML syntax error reports the line only (the parser's own message quotes the offending line).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileTokenSource, KubeConfigError, StaticTokenSource, type TokenSource } from './tokensource.js';

export { FileTokenSource, KubeConfigError, StaticTokenSource, TOKEN_REFRESH_MS, type FileTokenSourceOptions, type TokenSource } from './tokensource.js';

/** The service account directory the kubelet mounts into every pod that automounts a token. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** API server access of one agent: endpoint, TLS material and credentials. */
export interface ApiServerConfig {
  /** Base URL (`https://host:port`, maybe with a path prefix), without trailing slash. */
  server: string;
  /** PEM CA bundle that verifies the server; undefined = the system's CAs. */
  ca?: string;
  /** PEM client certificate (with `key`) for TLS client authentication. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** Skip verification of the server's certificate (kubeconfig `insecure-skip-tls-verify`). */
  insecureSkipTLSVerify: boolean;
  /** SNI / name to verify instead of the server URL's host (kubeconfig `tls-server-name`). */
  tlsServerName?: string;
  /** Bearer token; undefined when the user authenticates by client certificate only. */
  token?: TokenSource;
  /** Where this came from (file and context, or "in-cluster"), for messages; never a credential. */
  source: string;
}

/** Options shared by the loaders. */
export interface LoadOptions {
  /** Re-read period of token files; default TOKEN_REFRESH_MS. */
  tokenRefreshMs?: number;
  /** Milliseconds clock of the token cache (tests); default Date.now. */
  now?: () => number;
}

function tokenFileSource(file: string, o: LoadOptions): FileTokenSource {
  return new FileTokenSource(file, {
    ...(o.tokenRefreshMs !== undefined ? { refreshMs: o.tokenRefreshMs } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new KubeConfigError(`cannot read ${what} ${file}: ${typeof code === 'string' ? code : (err as Error).message}`);
  }
}

/**
 * The in-cluster configuration: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the
 * service account's ca.crt, and its token file re-read every `tokenRefreshMs` (bound tokens rotate).
 * The token is read once here so a pod without one fails at startup, not at its first request.
 */
export async function inClusterConfig(env: NodeJS.ProcessEnv = process.env, options: LoadOptions & { dir?: string } = {}): Promise<ApiServerConfig> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeConfigError('in-cluster config needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT');
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const token = tokenFileSource(path.join(dir, 'token'), options);
  await token.token();
  return {
    // An IPv6 service host needs brackets in a URL.
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: await readText(path.join(dir, 'ca.crt'), 'service account CA'),
    insecureSkipTLSVerify: false,
    token,
    source: 'in-cluster service account',
  };
}

/** One named entry of a kubeconfig list, with the directory its relative paths resolve against. */
interface Named {
  name: string;
  value: Record<string, unknown>;
  baseDir: string;
}

/** A kubeconfig parsed (and, for several KUBECONFIG files, merged) down to what we read. */
interface Merged {
  currentContext: string | undefined;
  clusters: Map<string, Named>;
  users: Map<string, Named>;
  contexts: Map<string, Named>;
  files: string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses kubeconfig text: JSON (what `exportConfig()` writes) without loading the YAML parser, else YAML. */
async function parseText(text: string, source: string): Promise<unknown> {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Not JSON: most kubeconfigs are YAML.
  }
  // Loaded only here: the YAML parser costs several MiB of RSS, and an in-cluster agent never needs it.
  const { KubeconfigSyntaxError, parseKubeconfigYaml } = await import('./kubeconfigyaml.js');
  try {
    return parseKubeconfigYaml(text);
  } catch (err) {
    if (!(err instanceof KubeconfigSyntaxError)) throw err;
    throw new KubeConfigError(`${source}: ${err.message}`);
  }
}

/** Adds a file's entries to `into`; the first file to name an entry (or set current-context) wins, as in kubectl. */
function mergeInto(into: Merged, doc: unknown, source: string, baseDir: string): void {
  if (doc === null || doc === undefined) return; // an empty file
  if (!isRecord(doc)) throw new KubeConfigError(`${source}: not a kubeconfig (expected a mapping)`);
  const cc = doc['current-context'];
  if (into.currentContext === undefined && typeof cc === 'string' && cc) into.currentContext = cc;
  for (const [list, key, map] of [
    ['clusters', 'cluster', into.clusters],
    ['users', 'user', into.users],
    ['contexts', 'context', into.contexts],
  ] as const) {
    const entries = doc[list];
    if (entries === undefined || entries === null) continue;
    if (!Array.isArray(entries)) throw new KubeConfigError(`${source}: ${list} is not a list`);
    entries.forEach((e: unknown, i) => {
      if (!isRecord(e) || typeof e.name !== 'string' || !e.name) throw new KubeConfigError(`${source}: ${list}[${i}] has no name`);
      const value = e[key] ?? {};
      if (!isRecord(value)) throw new KubeConfigError(`${source}: ${list}[${i}] (${e.name}) has no ${key} mapping`);
      if (!map.has(e.name)) map.set(e.name, { name: e.name, value, baseDir });
    });
  }
  into.files.push(source);
}

function str(v: unknown, where: string, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new KubeConfigError(`${where}: ${field} is not a string`);
  return v;
}

function decodeData(v: string | undefined, where: string, field: string): string | undefined {
  if (v === undefined) return undefined;
  const text = Buffer.from(v, 'base64').toString('utf8');
  if (!text.includes('-----BEGIN')) throw new KubeConfigError(`${where}: ${field} is not base64-encoded PEM`);
  return text;
}

/** `data` (base64 PEM) wins over `file`, as in client-go; relative files resolve against the kubeconfig's directory. */
async function pem(entry: Named, where: string, dataField: string, fileField: string): Promise<string | undefined> {
  const data = decodeData(str(entry.value[dataField], where, dataField), where, dataField);
  if (data !== undefined) return data;
  const file = str(entry.value[fileField], where, fileField);
  return file === undefined ? undefined : readText(path.resolve(entry.baseDir, file), `${where} ${fileField}`);
}

/**
 * What is wrong with a kubeconfig cluster's `server`, if anything: not a URL, not http(s), or carrying
 * credentials (which belong in the user section and would be logged with the URL).
 */
export type ServerUrlProblem = 'NotAURL' | 'NotHTTP' | 'Credentials';

/** Checks a kubeconfig cluster's `server` (see {@link ServerUrlProblem}); undefined when it is usable. */
export function serverUrlProblem(server: string): ServerUrlProblem | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return 'NotAURL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'NotHTTP';
  if (url.username !== '' || url.password !== '') return 'Credentials';
  return undefined;
}

/**
 * The user fields that make a client run code or refresh tokens to authenticate (a cloud CLI, an OIDC
 * refresher), with what to call them in messages. Neither the agent nor the operator runs them: an
 * agent on every node must not run a cloud CLI per token, the operator's image has no such CLIs, and
 * silently ignoring them would send anonymous requests.
 */
export const CREDENTIAL_PLUGIN_FIELDS: ReadonlyArray<readonly ['exec' | 'auth-provider', string]> = [
  ['exec', 'an exec credential plugin'],
  ['auth-provider', 'an auth-provider plugin'],
];

/**
 * The credential plugin field a kubeconfig user section has, if any (see {@link CREDENTIAL_PLUGIN_FIELDS}):
 * present with any value but null, so that even an empty one is refused rather than guessed at.
 */
export function credentialPluginOf(user: Record<string, unknown>): 'exec' | 'auth-provider' | undefined {
  return CREDENTIAL_PLUGIN_FIELDS.find(([field]) => user[field] !== undefined && user[field] !== null)?.[0];
}

const REFUSED_USER_FIELDS: ReadonlyArray<readonly [string, string]> = [
  ...CREDENTIAL_PLUGIN_FIELDS,
  ['username', 'basic authentication (username/password)'],
  ['password', 'basic authentication (username/password)'],
  ['as', 'impersonation (as)'],
  ['as-groups', 'impersonation (as-groups)'],
  ['as-uid', 'impersonation (as-uid)'],
];

async function resolveMerged(m: Merged, o: LoadOptions & { context?: string }): Promise<ApiServerConfig> {
  const files = m.files.join(', ') || 'kubeconfig';
  const contextName = o.context ?? m.currentContext;
  if (!contextName) throw new KubeConfigError(`${files}: no current-context`);
  const ctx = m.contexts.get(contextName);
  if (!ctx) throw new KubeConfigError(`${files}: context "${contextName}" not found`);
  const where = `${files} (context "${contextName}")`;
  const clusterName = str(ctx.value.cluster, where, 'context.cluster');
  if (!clusterName) throw new KubeConfigError(`${where}: the context names no cluster`);
  const cluster = m.clusters.get(clusterName);
  if (!cluster) throw new KubeConfigError(`${where}: cluster "${clusterName}" not found`);
  const cw = `${where} cluster "${clusterName}"`;
  const server = str(cluster.value.server, cw, 'server');
  if (!server) throw new KubeConfigError(`${cw}: no server`);
  const urlProblem = serverUrlProblem(server);
  if (urlProblem === 'NotAURL') throw new KubeConfigError(`${cw}: server is not a URL`);
  if (urlProblem === 'NotHTTP') throw new KubeConfigError(`${cw}: server must be an http(s) URL`);
  if (urlProblem === 'Credentials') throw new KubeConfigError(`${cw}: credentials in the server URL are not supported`);
  if (str(cluster.value['proxy-url'], cw, 'proxy-url') !== undefined) throw new KubeConfigError(`${cw}: proxy-url is not supported by the collector`);
  const skip = cluster.value['insecure-skip-tls-verify'];
  if (skip !== undefined && skip !== null && typeof skip !== 'boolean') throw new KubeConfigError(`${cw}: insecure-skip-tls-verify is not a boolean`);
  const tlsServerName = str(cluster.value['tls-server-name'], cw, 'tls-server-name');
  const ca = await pem(cluster, cw, 'certificate-authority-data', 'certificate-authority');

  const cfg: ApiServerConfig = {
    server: server.replace(/\/+$/, ''),
    insecureSkipTLSVerify: skip === true,
    source: where,
    ...(ca !== undefined ? { ca } : {}),
    ...(tlsServerName !== undefined ? { tlsServerName } : {}),
  };
  const userName = str(ctx.value.user, where, 'context.user');
  if (userName === undefined) return cfg; // anonymous
  const user = m.users.get(userName);
  if (!user) throw new KubeConfigError(`${where}: user "${userName}" not found`);
  const uw = `${where} user "${userName}"`;
  for (const [field, what] of REFUSED_USER_FIELDS) {
    const v = user.value[field];
    if (v !== undefined && v !== null && v !== '') {
      throw new KubeConfigError(
        `${uw} authenticates with ${what}, which the collector does not support; give it a token, tokenFile or client certificate instead`,
      );
    }
  }
  const cert = await pem(user, uw, 'client-certificate-data', 'client-certificate');
  const key = await pem(user, uw, 'client-key-data', 'client-key');
  if ((cert === undefined) !== (key === undefined)) throw new KubeConfigError(`${uw}: a client certificate needs both the certificate and the key`);
  if (cert !== undefined && key !== undefined) Object.assign(cfg, { cert, key });
  // As in client-go, a tokenFile wins over a literal token: it is the one that stays current.
  const tokenFile = str(user.value.tokenFile, uw, 'tokenFile');
  const token = str(user.value.token, uw, 'token');
  if (tokenFile !== undefined) {
    const src = tokenFileSource(path.resolve(user.baseDir, tokenFile), o);
    await src.token();
    cfg.token = src;
  } else if (token !== undefined) {
    cfg.token = new StaticTokenSource(token);
  }
  return cfg;
}

/**
 * A kubeconfig given as text (YAML or JSON, e.g. client-node's `exportConfig()`); relative file paths in
 * it resolve against `baseDir` (default the working directory). `context` overrides current-context.
 */
export async function kubeConfigFromString(
  text: string,
  options: LoadOptions & { baseDir?: string; source?: string; context?: string } = {},
): Promise<ApiServerConfig> {
  const source = options.source ?? 'kubeconfig';
  const m: Merged = { currentContext: undefined, clusters: new Map(), users: new Map(), contexts: new Map(), files: [] };
  mergeInto(m, await parseText(text, source), source, options.baseDir ?? process.cwd());
  return resolveMerged(m, options);
}

/**
 * A kubeconfig file, or several merged (the KUBECONFIG list; files that do not exist are skipped, as by
 * kubectl, but at least one must).
 */
export async function kubeConfigFromFiles(files: string[], options: LoadOptions & { context?: string } = {}): Promise<ApiServerConfig> {
  const m: Merged = { currentContext: undefined, clusters: new Map(), users: new Map(), contexts: new Map(), files: [] };
  for (const f of files) {
    const file = path.resolve(f);
    if (files.length > 1 && !existsSync(file)) continue;
    mergeInto(m, await parseText(await readText(file, 'kubeconfig'), file), file, path.dirname(file));
  }
  if (m.files.length === 0) throw new KubeConfigError(`none of the kubeconfig files exists: ${files.join(', ')}`);
  return resolveMerged(m, options);
}

/**
 * What client-node's `loadFromDefault()` finds: the KUBECONFIG file list when set, else
 * `~/.kube/config` when it exists, else the in-cluster service account. Unlike client-node it does not
 * fall back to `http://localhost:8080`: an agent with no API access should say so at startup.
 */
export async function loadDefaultConfig(
  env: NodeJS.ProcessEnv = process.env,
  options: LoadOptions & { serviceAccountDir?: string; home?: string } = {},
): Promise<ApiServerConfig> {
  const list = (env.KUBECONFIG ?? '').split(path.delimiter).filter((f) => f !== '');
  if (list.length > 0) return kubeConfigFromFiles(list, options);
  const home = path.join(options.home ?? env.HOME ?? os.homedir(), '.kube', 'config');
  if (existsSync(home)) return kubeConfigFromFiles([home], options);
  if (env.KUBERNETES_SERVICE_HOST) {
    return inClusterConfig(env, { ...options, ...(options.serviceAccountDir ? { dir: options.serviceAccountDir } : {}) });
  }
  throw new KubeConfigError('no API server configuration: set KUBECONFIG, provide ~/.kube/config, or run in a pod with a service account token');
}
