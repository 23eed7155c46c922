/**
 * One Kubernetes watch request over Node's https with the kubeconfig's credentials
 * (`kc.applyToHTTPSOptions`), streaming its events to a callback.
 *
 * Why not client-node's `Watch`: it cannot be cancelled while connecting, has a fixed 30 s inactivity
 * timeout and does not ask for bookmarks; here the caller's signal cancels at once, bookmarks keep the
 * resourceVersion fresh on quiet resources (so a reconnect resumes instead of relisting), and the
 * response status is reported so the request can be counted.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { statusMessage } from './kubeapi.js';

/** One event of a watch stream; `object` is the raw JSON object (a Status for ERROR). */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

/** Options of {@link watchPath}. */
export interface WatchPathOptions {
  /** Cancels the watch; the promise then rejects with an error named `AbortError`. */
  signal: AbortSignal;
  /** The watch fails with a `TimeoutError` when nothing (not even a bookmark) arrives for this long. */
  idleTimeoutMs: number;
  /** Told each event, in order. Must not throw. */
  onEvent: (event: WatchEvent) => void;
  /** Told the HTTP status once the response headers arrive. */
  onResponse?: (statusCode: number) => void;
}

/**
 * A watch that failed. `statusCode` is the HTTP status when the server refused the watch (410 Gone
 * when the resourceVersion is too old); the message never carries credentials or request headers.
 */
export class WatchError extends Error {
  readonly statusCode: number | undefined;
  constructor(message: string, statusCode?: number, name = 'WatchError') {
    super(message);
    this.name = name;
    this.statusCode = statusCode;
  }
}

/**
 * Watches `path` (e.g. `/api/v1/nodes`) with `query` (resourceVersion, allowWatchBookmarks,
 * timeoutSeconds, ...; `watch=true` is added). Resolves when the server ends the stream (its
 * timeoutSeconds, or after an ERROR event); rejects with {@link WatchError} on a non-200 answer,
 * transport failure, idle timeout or abort.
 */
export async function watchPath(kc: KubeConfig, path: string, query: Record<string, string>, opts: WatchPathOptions): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new WatchError('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  url.searchParams.set('watch', 'true');
  const where = `WATCH ${url.origin}${url.pathname}`;
  const options: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json', 'User-Agent': 'telemetry-rollout-operator' } };
  try {
    await kc.applyToHTTPSOptions(options);
  } catch (err) {
    throw new WatchError(`${where}: preparing credentials failed (${(err as { name?: string }).name ?? 'Error'})`);
  }
  const transport = url.protocol === 'http:' ? http : https;

  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (err?: WatchError): void => {
      if (settled) return;
      settled = true;
      if (idle) clearTimeout(idle);
      opts.signal.removeEventListener('abort', onAbort);
      req.destroy();
      if (err) reject(err);
      else resolve();
    };
    const armIdle = (): void => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => finish(new WatchError(`${where}: nothing received for ${opts.idleTimeoutMs} ms`, undefined, 'TimeoutError')), opts.idleTimeoutMs);
    };
    const onAbort = (): void => finish(new WatchError(`${where}: aborted`, undefined, 'AbortError'));

    const req = transport.request(url, options, (res) => {
      const status = res.statusCode ?? 0;
      opts.onResponse?.(status);
      if (status !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 65536) body += c;
        });
        res.on('end', () => {
          const msg = statusMessage(body);
          finish(new WatchError(`${where}: HTTP ${status}${msg ? `: ${msg}` : ''}`, status));
        });
        res.on('error', () => finish(new WatchError(`${where}: HTTP ${status}`, status)));
        return;
      }
      armIdle();
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        armIdle();
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line === '') continue;
          let event: WatchEvent;
          try {
            event = JSON.parse(line) as WatchEvent;
          } catch {
            finish(new WatchError(`${where}: malformed event (not JSON)`));
            return;
          }
          if (typeof event?.type === 'string' && typeof event.object === 'object' && event.object !== null) opts.onEvent(event);
        }
      });
      res.on('end', () => finish());
      res.on('error', (err: NodeJS.ErrnoException) => finish(new WatchError(`${where}: stream failed: ${err.code ?? err.name}`)));
      res.on('aborted', () => finish(new WatchError(`${where}: stream aborted by the server`)));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const e = new WatchError(`${where}: request failed: ${err.code ?? err.name}`);
      Object.assign(e, { code: err.code });
      finish(e);
    });
    // The idle timer also bounds connecting and waiting for headers.
    armIdle();
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
