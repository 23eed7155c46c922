/**
 * The small HTTP server for health and metrics endpoints (the agent's /metrics, /healthz and, in
 * cluster mode, /readyz and /metadata/*). GET (and HEAD) only; every other method gets 405. Handlers
 * return a status and a body; a throwing handler becomes a 500 and is logged (never swallowed).
 * node:http comes from ./nodehttp.js, which keeps Node's bundled undici unloaded (agent memory).
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import { serializeError } from './logger.js';
import { http } from './nodehttp.js';

/** What a route handler returns. */
export interface HttpReply {
  status: number;
  body: string;
  contentType?: string;
}

/** A GET handler; receives the parsed URL. */
export type RouteHandler = (url: URL) => HttpReply | Promise<HttpReply>;

/** A running server. */
export interface RunningServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** The bound address, family and port. */
  address: AddressInfo;
  close(): Promise<void>;
}

/** Helper for JSON replies. */
export function jsonReply(status: number, value: unknown): HttpReply {
  return { status, body: JSON.stringify(value), contentType: 'application/json' };
}

/**
 * Listens on host:port (port 0 = ephemeral; no host = every interface) and dispatches GET requests by
 * exact pathname. Resolves once listening; rejects if the port cannot be bound (e.g. EADDRINUSE).
 */
export async function startHttpServer(options: {
  host?: string | undefined;
  port: number;
  routes: Record<string, RouteHandler>;
  logger: Logger;
}): Promise<RunningServer> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handler = options.routes[url.pathname];
    const send = (r: HttpReply): void => {
      res.writeHead(r.status, { 'Content-Type': r.contentType ?? 'text/plain; charset=utf-8' });
      res.end(r.body);
    };
    if (!handler) {
      send({ status: 404, body: 'not found\n' });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send({ status: 405, body: 'method not allowed\n' });
      return;
    }
    Promise.resolve()
      .then(() => handler(url))
      .then(send, (err: unknown) => {
        options.logger.error('HTTP handler failed', { path: url.pathname, err: serializeError(err) });
        send({ status: 500, body: 'internal error\n' });
      });
  });
  // Idle keep-alive sockets must not hold close() for minutes.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.logger.error('HTTP server error', { err: serializeError(err) }));
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    address,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
