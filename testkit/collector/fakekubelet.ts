/**
 * A fake kubelet read-only API on 127.0.0.1 (ephemeral port) serving `/pods` from an in-memory list,
 * for tests of the kubelet client and the node agent over real HTTP.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A fake kubelet; set `pods`, `status` or `hang` to shape the next answers. */
export class FakeKubelet {
  pods: unknown[] = [];
  status = 200;
  /** When true, requests are held open until the client gives up. */
  hang = false;
  /** Paths requested, in order. */
  readonly requests: string[] = [];
  private server: http.Server | undefined;

  /** Starts listening; returns the base URL (`http://127.0.0.1:<port>`). */
  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.requests.push(req.url ?? '');
      if (this.hang) return;
      if (req.url !== '/pods') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(this.status, { 'Content-Type': 'application/json' });
      res.end(this.status === 200 ? JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: this.pods }) : '{}');
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** A Pod object as the kubelet returns it. */
export function kubeletPod(
  ns: string,
  name: string,
  node: string,
  opts: { phase?: string; restarts?: number; ready?: boolean; containers?: string[] } = {},
): unknown {
  const containers = opts.containers ?? ['app'];
  return {
    metadata: { namespace: ns, name, uid: `uid-${ns}-${name}` },
    spec: { nodeName: node, containers: containers.map((c) => ({ name: c, image: `registry.example/${c}:1` })) },
    status: {
      phase: opts.phase ?? 'Running',
      containerStatuses: containers.map((c) => ({
        name: c,
        image: `registry.example/${c}:1`,
        ready: opts.ready ?? true,
        restartCount: opts.restarts ?? 0,
        state: { running: { startedAt: '2026-11-25T11:00:00Z' } },
      })),
    },
  };
}
