/**
 * Where the bearer token of each API request comes from: written into the kubeconfig (static), or a
 * file that someone else rotates (a projected service-account token), re-read periodically. Split from
 * kubeconfig.ts, which loads the configuration that names them.
 */
import { readFile } from 'node:fs/promises';

/**
 * How often a token file is re-read: client-go's cachingFileTokenSource period. Bound service-account
 * tokens are replaced by the kubelet at 80 % of their lifetime (≥ 48 min of 1 h), so a minute is ample
 * and keeps the read off every request.
 */
export const TOKEN_REFRESH_MS = 60_000;

/** The kubeconfig or in-cluster setup cannot be used; the message names what and where, never a secret. */
export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

/** Supplies the bearer token of each request. */
export interface TokenSource {
  /** The current token; rejects with KubeConfigError when none can be had. */
  token(): Promise<string>;
}

/** A token written into the kubeconfig: it never changes. */
export class StaticTokenSource implements TokenSource {
  private readonly value: string;
  constructor(value: string) {
    this.value = value;
  }

  async token(): Promise<string> {
    return this.value;
  }
}

/** Options of FileTokenSource. */
export interface FileTokenSourceOptions {
  /** Re-read period; default TOKEN_REFRESH_MS. */
  refreshMs?: number;
  /** Milliseconds clock (tests); default Date.now. */
  now?: () => number;
}

/**
 * A token in a file that someone else rotates (the kubelet, for a projected service-account token):
 * re-read when the cached value is older than `refreshMs`. A failed re-read keeps the last good token
 * (the kubelet swaps the file atomically, but a transient error must not fail requests whose token is
 * still valid) and is retried on the next request.
 */
export class FileTokenSource implements TokenSource {
  private readonly file: string;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private cached: string | undefined;
  private readAt = 0;
  private pending: Promise<string> | undefined;
  constructor(file: string, options: FileTokenSourceOptions = {}) {
    this.file = file;
    this.refreshMs = options.refreshMs ?? TOKEN_REFRESH_MS;
    this.now = options.now ?? Date.now;
  }

  async token(): Promise<string> {
    if (this.cached !== undefined && this.now() - this.readAt < this.refreshMs) return this.cached;
    // Concurrent requests at expiry share one read.
    this.pending ??= this.read().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async read(): Promise<string> {
    const started = this.now();
    try {
      const value = (await readFile(this.file, 'utf8')).trim();
      if (!value) throw new KubeConfigError(`token file ${this.file} is empty`);
      this.cached = value;
      this.readAt = started;
      return value;
    } catch (err) {
      if (this.cached !== undefined) return this.cached;
      if (err instanceof KubeConfigError) throw err;
      const code = (err as { code?: unknown }).code;
      throw new KubeConfigError(`cannot read token file ${this.file}: ${typeof code === 'string' ? code : (err as Error).message}`);
    }
  }
}
