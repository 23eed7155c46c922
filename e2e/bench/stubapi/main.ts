/**
 * The fleet API stub as its own process (so its CPU and memory are never counted as the operator's or
 * the benchmark's): `node e2e/bench/stubapi/main.ts <clusters> <nodesPerCluster> <dir>`. It writes a
 * self-signed certificate for 127.0.0.1 into <dir>, starts {@link startFleetApi}, and prints one JSON
 * line `{ port, statsPort, ca }`; `GET http://127.0.0.1:<statsPort>/stats` answers its request counts.
 * It runs until SIGTERM.
 */
import http from 'node:http';
import { selfSignedCert } from '../../../testkit/core/tls.js';
import { startFleetApi } from './fleetapi.js';

const [clustersArg, nodesArg, dir] = process.argv.slice(2);
if (!clustersArg || !nodesArg || !dir) {
  console.error('usage: main.ts <clusters> <nodesPerCluster> <dir>');
  process.exit(2);
}
const tls = selfSignedCert(dir, 'stubapi', '127.0.0.1', 'IP:127.0.0.1');
const api = await startFleetApi({
  clusters: Number(clustersArg),
  nodesPerCluster: Number(nodesArg),
  cert: tls.cert,
  key: tls.key,
  ...(process.env.TRO_STUB_READY_DELAY_MS ? { readyDelayMs: Number(process.env.TRO_STUB_READY_DELAY_MS) } : {}),
});
const stats = http.createServer((_req, res) => {
  const body = JSON.stringify(api.stats());
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(body);
});
await new Promise<void>((resolve) => stats.listen(0, '127.0.0.1', resolve));
const statsPort = (stats.address() as { port: number }).port;
process.stdout.write(JSON.stringify({ port: api.port, statsPort, ca: tls.cert }) + '\n');
const stop = (): void => {
  stats.close();
  void api.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
