/**
 * A scripted HTTP server standing in for kube-apiserver in unit tests of the cluster clients: it
 * records every request (method, path, query, headers, body) and answers through a handler the test
 * supplies. Real HTTP, so the client's transport, middleware, timeouts and counting are exercised.
 * Test-only; not used by the operator.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/** One request the fake server received. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Answers one request; return nothing and keep `res` open to hang or stream. */
export type FakeHandler = (req: RecordedRequest, res: http.ServerResponse) => void;

/** A running fake server. */
export interface FakeApiServer {
  url: string;
  requests: RecordedRequest[];
  /** Replaces the handler. */
  handle(h: FakeHandler): void;
  /** A KubeConfig for this server with bearer `token`. */
  kubeConfig(token: string): KubeConfig;
  /** Closes the server and every open connection (hanging and streaming ones too). */
  close(): Promise<void>;
}

/** Sends a JSON answer. */
export function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A Kubernetes Status body with `code` and `message`. */
export function status(code: number, message: string, reason = 'Unknown'): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}

/** Starts a fake server on 127.0.0.1 (a free port). */
export async function startFakeApiServer(handler: FakeHandler): Promise<FakeApiServer> {
  let current = handler;
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://fake');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: u.pathname,
        query: u.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(rec);
      current(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    handle: (h) => {
      current = h;
    },
    kubeConfig: (token) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
        users: [{ name: 'u', token }],
        contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
        currentContext: 'fake',
      });
      return kc;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
