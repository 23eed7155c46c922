import { describe, expect, it } from '@jest/globals';
import { RecordingLogger } from '../../testkit/core/fakelogger.js';
import { jsonReply, startHttpServer } from './httpserver.js';

describe('startHttpServer', () => {
  it('serves GET routes by exact path, 404 for others, 405 for other methods, 500 (logged) for a throwing handler', async () => {
    const logger = new RecordingLogger();
    const server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      routes: {
        '/healthz': () => ({ status: 200, body: 'ok\n' }),
        '/info': async (url) => jsonReply(200, { q: url.searchParams.get('q') }),
        '/boom': () => {
          throw new Error('handler bug');
        },
      },
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      expect(server.address.port).toBe(server.port);
      const health = await fetch(`${base}/healthz`);
      expect([health.status, health.headers.get('content-type'), await health.text()]).toEqual([200, 'text/plain; charset=utf-8', 'ok\n']);
      const info = await fetch(`${base}/info?q=x`);
      expect([info.headers.get('content-type'), await info.json()]).toEqual(['application/json', { q: 'x' }]);
      expect((await fetch(`${base}/healthz/more`)).status).toBe(404);
      expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${base}/boom`)).status).toBe(500);
      expect(logger.at('error').map((e) => [e.message, e.meta?.path])).toEqual([['HTTP handler failed', '/boom']]);
    } finally {
      await server.close();
    }
  });

  it('rejects when the port is taken', async () => {
    const logger = new RecordingLogger();
    const first = await startHttpServer({ host: '127.0.0.1', port: 0, logger, routes: {} });
    try {
      await expect(startHttpServer({ host: '127.0.0.1', port: first.port, logger, routes: {} })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});
