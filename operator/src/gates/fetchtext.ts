/**
 * HTTP for the gate sources that fetch by URL (TextEndpointSource, PrometheusSource): a GET that turns
 * every failure into a value, URL credentials moved into a header and kept out of messages, and error
 * messages that include the causes undici hides.
 */
/** A URL without user info, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * Splits `http://user:pass@host/...` into the bare URL and a Basic Authorization header: fetch refuses
 * URLs with credentials, and the credentials must never reach a message.
 * @throws {TypeError} when `url` is not an absolute URL.
 */
export function splitCredentials(url: string): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (u.username === '' && u.password === '') return { url: u.href, headers: {} };
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  return { url: u.href, headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } };
}

/**
 * The message of an error and of its causes (undici hides the socket error, e.g. ECONNREFUSED, in
 * `cause`). Duck-typed rather than `instanceof Error`, which fails for errors from another realm.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const message = plainMessage(current);
    const code = typeof current === 'object' && 'code' in current && typeof current.code === 'string' ? current.code : '';
    parts.push(code && !message.includes(code) ? `${code}: ${message}` : message);
    current = typeof current === 'object' && 'cause' in current ? current.cause : undefined;
  }
  return parts.join(': ');
}

function plainMessage(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null) {
    return 'message' in v && typeof v.message === 'string' ? v.message : JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || typeof v === 'symbol') return v.toString();
  return 'unknown error';
}

/** Options of {@link fetchText}. */
export interface FetchTextOptions {
  accept: string;
  timeoutMs: number;
  maxBytes: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Return the body of non-2xx answers too (Prometheus explains errors in JSON). */
  acceptErrorBodies?: boolean;
}

/** What {@link fetchText} got: the body and status, or why there is none. */
export type FetchTextResult = { ok: true; status: number; body: string } | { ok: false; error: string; aborted: boolean };

/** GET with a timeout and a size limit; every failure comes back as a value. */
export async function fetchText(fetchImpl: typeof fetch, url: string, options: FetchTextOptions): Promise<FetchTextResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    const res = await fetchImpl(url, { headers: { ...options.headers, Accept: options.accept }, signal, redirect: 'follow' });
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (length > options.maxBytes) {
      await res.body?.cancel();
      return { ok: false, error: `answer larger than ${options.maxBytes} bytes`, aborted: false };
    }
    if (!res.ok && !options.acceptErrorBodies) {
      await res.body?.cancel();
      return { ok: false, error: `HTTP ${res.status} ${res.statusText}`.trim(), aborted: false };
    }
    const body = await res.text();
    if (body.length > options.maxBytes) return { ok: false, error: `answer larger than ${options.maxBytes} bytes`, aborted: false };
    return { ok: true, status: res.status, body };
  } catch (err) {
    if (options.signal?.aborted) return { ok: false, error: 'aborted', aborted: true };
    if (timeout.aborted) return { ok: false, error: `no answer within ${options.timeoutMs} ms`, aborted: false };
    return { ok: false, error: describeError(err), aborted: false };
  }
}
