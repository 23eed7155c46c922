/**
 * The fake nodes' kubelet: answers `GET /node/<name>/pods` with a PodList of that node's pods, from the
 * node runtime's one pod watch (which calls {@link KubeletEndpoint.indexPod} on every pod event). The
 * API server sees no load a real kubelet would not cause.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';

/** The kubelet `/pods` endpoint of every fake node, on one loopback HTTP server. */
export class KubeletEndpoint {
  private server: Server | undefined;
  private port = 0;
  /** Pods by node name, for the kubelet endpoint. */
  private readonly podsByNode = new Map<string, Map<string, V1Pod>>();

  /** Listens on a free loopback port. */
  async start(): Promise<void> {
    this.server = createServer((req, res) => this.serveKubelet(req.url ?? '/', res));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** `http://127.0.0.1:<port>`. */
  baseURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The kubelet base URL the agent of `node` uses (`/pods` is appended by the agent). */
  kubeletURL(node: string): string {
    if (!this.port) throw new Error('node runtime not started');
    return `http://127.0.0.1:${this.port}/node/${encodeURIComponent(node)}`;
  }

  /** Files `pod` under its node (`pod` undefined: `last` was deleted), for the node's `/pods`. */
  indexPod(pod: V1Pod | undefined, last: V1Pod): void {
    const key = `${last.metadata?.namespace ?? ''}/${last.metadata?.name ?? ''}`;
    for (const [node, pods] of this.podsByNode) {
      if (pods.delete(key) && pods.size === 0) this.podsByNode.delete(node);
    }
    const node = pod?.spec?.nodeName;
    if (pod && node) {
      let pods = this.podsByNode.get(node);
      if (!pods) {
        pods = new Map<string, V1Pod>();
        this.podsByNode.set(node, pods);
      }
      pods.set(key, pod);
    }
  }

  private serveKubelet(url: string, res: ServerResponse): void {
    const m = /^\/node\/([^/?]+)\/pods\/?(\?.*)?$/.exec(url);
    if (!m?.[1]) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const node = decodeURIComponent(m[1]);
    const items = [...(this.podsByNode.get(node)?.values() ?? [])];
    const body = JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
  }

  /** Closes the server and its connections. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (!this.server?.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
