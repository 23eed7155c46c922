/**
 * Raw GETs against a cluster's API server (e.g. `/metrics`), authenticated from its kubeconfig.
 *
 * client-node has no typed call for non-resource paths, so this does what stack.md describes:
 * `kc.applyToHTTPSOptions(opts)` (CA, client certificate, token, TLS server name, proxy agent) and a plain
 * `https.get`. Failures are classified, because the gates treat "cannot reach the API server" (the
 * break-glass signal) differently from "reached it, but it said no".
 */
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

/**
 * Why a raw GET failed:
 * - `http`: the server answered with a non-2xx status (`status` is set): it is reachable;
 * - `network`: no answer at connection level (refused, reset, host unreachable, DNS failure);
 * - `timeout`: no complete answer within the getter's timeout;
 * - `aborted`: the caller's AbortSignal fired;
 * - `other`: anything else (TLS verification, kubeconfig without a cluster, oversized body, …).
 */
export type RawGetErrorKind = 'http' | 'network' | 'timeout' | 'aborted' | 'other';

/** A classified failure of {@link RawGetter.getRaw}. Messages never contain credentials. */
export class RawGetError extends Error {
  readonly kind: RawGetErrorKind;
  /** The HTTP status for kind `http`. */
  readonly status?: number;
  constructor(kind: RawGetErrorKind, message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options);
    this.name = 'RawGetError';
    this.kind = kind;
    if (options?.status !== undefined) this.status = options.status;
  }
}

/**
 * Reads a non-resource path of one cluster's API server. Implementations resolve with the body of a 2xx
 * answer and reject with a {@link RawGetError}; an implementation that throws anything else is treated
 * as kind `other` by its callers.
 */
export interface RawGetter {
  getRaw(path: string, signal?: AbortSignal): Promise<string>;
}

/** The part of client-node's `KubeConfig` this module uses (so tests and callers can pass a narrow fake). */
export interface KubeConfigLike {
  getCurrentCluster(): { readonly server: string } | null;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** Options of {@link KubeConfigRawGetter}. */
export interface KubeConfigRawGetterOptions {
  /** Whole-request timeout (connect, headers and body), ms. Default 10 000. */
  timeoutMs?: number;
  /** Largest accepted (decompressed) body, bytes; a kube-apiserver /metrics page is a few MB. Default 64 MiB. */
  maxBytes?: number;
}

/** Connection-level error codes: the server could not be talked to at all. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_SOCKET',
]);

const gunzip = promisify(zlib.gunzip);

/**
 * A {@link RawGetter} over a client-node `KubeConfig` (its current context). Requests gzip to keep a
 * multi-MB `/metrics` page cheap on the wire. Keeps the server's path prefix (e.g. a Rancher proxy URL).
 */
export class KubeConfigRawGetter implements RawGetter {
  readonly #kc: KubeConfigLike;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(kc: KubeConfigLike, options: KubeConfigRawGetterOptions = {}) {
    this.#kc = kc;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  /**
   * GETs `path` (absolute, e.g. `/metrics`) and resolves with the body as UTF-8.
   * @throws {RawGetError} classified as described on {@link RawGetErrorKind}.
   */
  async getRaw(path: string, signal?: AbortSignal): Promise<string> {
    if (signal?.aborted) throw new RawGetError('aborted', `GET ${path}: aborted`);
    const cluster = this.#kc.getCurrentCluster();
    if (cluster === null) throw new RawGetError('other', `GET ${path}: the kubeconfig has no current cluster`);
    let server: URL;
    try {
      server = new URL(cluster.server);
    } catch (cause) {
      throw new RawGetError('other', `GET ${path}: the kubeconfig's server is not a URL`, { cause });
    }
    const isHttps = server.protocol === 'https:';
    const opts: https.RequestOptions = {
      protocol: server.protocol,
      // URL keeps IPv6 brackets in hostname; the http module wants the bare address.
      hostname: server.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: server.port === '' ? (isHttps ? 443 : 80) : Number(server.port),
      path: server.pathname.replace(/\/+$/, '') + path,
      method: 'GET',
      headers: { Accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1', 'Accept-Encoding': 'gzip' },
    };
    try {
      await this.#kc.applyToHTTPSOptions(opts);
    } catch (cause) {
      // e.g. a kubeconfig over http:// without insecure-skip-tls-verify, or an auth provider failing.
      throw new RawGetError('other', `GET ${path}: cannot apply the kubeconfig's connection options`, { cause });
    }
    return this.#request(isHttps ? https : http, opts, path, signal);
  }

  #request(transport: typeof http | typeof https, opts: https.RequestOptions, path: string, signal?: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const finish = (err: RawGetError | undefined, body?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) {
          req.destroy();
          reject(err);
        } else {
          resolve(body ?? '');
        }
      };
      const onAbort = (): void => finish(new RawGetError('aborted', `GET ${path}: aborted`));
      const timer = setTimeout(() => finish(new RawGetError('timeout', `GET ${path}: no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });

      const req = transport.request(opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#maxBytes) {
            finish(new RawGetError('other', `GET ${path}: body larger than ${this.#maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (cause) => finish(classify(cause, path)));
        res.on('end', () => {
          if (settled) return;
          const raw = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          const decode = res.headers['content-encoding'] === 'gzip' ? gunzip(raw, { maxOutputLength: this.#maxBytes }) : Promise.resolve(raw);
          decode.then(
            (body) => {
              if (status >= 200 && status < 300) {
                finish(undefined, body.toString('utf8'));
                return;
              }
              // The body of an error is a short Status object ("forbidden: User … cannot get path
              // /metrics"): worth showing, never a secret.
              const detail = body.toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 300);
              const statusText = res.statusMessage ?? '';
              finish(new RawGetError('http', `GET ${path}: HTTP ${status} ${statusText}${detail ? `: ${detail}` : ''}`.trim(), { status }));
            },
            (cause: unknown) => finish(new RawGetError('other', `GET ${path}: cannot decompress the body`, { cause })),
          );
        });
      });
      req.on('error', (cause) => finish(classify(cause, path)));
      req.end();
    });
  }
}

/** Maps a socket/TLS error to a {@link RawGetError}. */
function classify(cause: Error, path: string): RawGetError {
  const code = (cause as NodeJS.ErrnoException).code ?? '';
  const kind: RawGetErrorKind = NETWORK_CODES.has(code) || cause.message === 'socket hang up' ? 'network' : 'other';
  return new RawGetError(kind, `GET ${path}: ${code ? `${code}: ` : ''}${cause.message}`, { cause });
}
