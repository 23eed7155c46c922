// Loopback networking helpers for the harness: free ports and small HTTP(S) probes.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { randomInt } from 'node:crypto';

// Ports handed out by this process, so two components never get the same one even before they bind.
const handedOut = new Set<number>();

function canBindTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function canBindUdp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', () => {
      sock.close();
      resolve(false);
    });
    sock.bind({ port, address: '127.0.0.1', exclusive: true }, () => sock.close(() => resolve(true)));
  });
}

/**
 * A port on 127.0.0.1 that is free for TCP and UDP right now and not handed out before by this process. Ports are
 * drawn from 20000–32767, below Linux's ephemeral range (32768+), so outgoing connections of other
 * programs do not take them between our check and the component's bind. Another program may still bind
 * it first; callers that care retry on "address already in use".
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = randomInt(20000, 32768);
    if (handedOut.has(port)) continue;
    // Both protocols: a DNS port is bound for UDP and TCP.
    if ((await canBindTcp(port)) && (await canBindUdp(port))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free TCP port on 127.0.0.1 in 20000-32767 after 200 tries');
}

/** The outcome of {@link httpGet}: status and body, or the network error. */
export interface HttpResult {
  status: number;
  body: string;
}

/**
 * GET `url` (http or https) with an optional CA and bearer token; resolves with status and body for any
 * HTTP answer, rejects on network errors and after `timeoutMs`. The token is sent only in the header and
 * never appears in errors.
 */
export function httpGet(url: string, o: { ca?: string | Buffer; token?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
  const u = new URL(url);
  const req = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = req(
      u,
      {
        method: 'GET',
        headers: o.token ? { Authorization: `Bearer ${o.token}` } : {},
        ...(o.ca ? { ca: o.ca } : {}),
        timeout: o.timeoutMs ?? 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(new Error(`GET ${url}: reading response`, { cause: err })));
      },
    );
    let timedOut = false;
    r.on('timeout', () => {
      timedOut = true;
      r.destroy();
    });
    r.on('error', (err) =>
      reject(timedOut ? new Error(`GET ${url}: no answer in ${o.timeoutMs ?? 5000} ms`) : new Error(`GET ${url}: ${err.message}`, { cause: err })),
    );
    r.end();
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined/false, and resolves with
 * it. Errors thrown by `check` count as "not yet" (the last one is reported). Rejects after `timeoutMs`
 * with `what` and the last error, or as soon as `abort` returns a reason (e.g. the process exited).
 */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  o: { timeoutMs: number; intervalMs?: number; abort?: () => string | undefined },
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  let last: unknown;
  for (;;) {
    const reason = o.abort?.();
    if (reason) throw new Error(`${what}: gave up: ${reason}`, last ? { cause: last } : undefined);
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not done after ${Math.round(o.timeoutMs / 1000)} s`, last ? { cause: last } : undefined);
    }
    await sleep(o.intervalMs ?? 250);
  }
}
