import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort, httpGet, waitUntil } from './net.js';

describe('freePort', () => {
  it('hands out distinct ports below the ephemeral range that can be listened on', async () => {
    const ports = await Promise.all(Array.from({ length: 10 }, () => freePort()));
    expect(new Set(ports).size).toBe(10);
    expect(ports.every((p) => p >= 20000 && p < 32768)).toBe(true);
    const port = ports[0] as number;
    const srv = createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
});

describe('httpGet', () => {
  let srv: Server;
  let base = '';
  beforeAll(async () => {
    srv = createServer((req, res) => {
      if (req.url === '/slow') return; // never answers
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.end(`auth=${req.headers.authorization ?? 'none'}`);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
    const addr = srv.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    srv.closeAllConnections();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });

  it('returns status and body for any HTTP answer, with the bearer token in the header', async () => {
    expect(await httpGet(`${base}/ok`, { token: 'abc' })).toEqual({ status: 200, body: 'auth=Bearer abc' });
    expect(await httpGet(`${base}/missing`)).toEqual({ status: 404, body: 'auth=none' });
  });

  it('rejects with "no answer" after the timeout, without the token in the message', async () => {
    const err = await httpGet(`${base}/slow`, { token: 'sekret', timeoutMs: 150 }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/no answer in 150 ms/);
    expect((err as Error).message).not.toContain('sekret');
  });

  it('rejects on connection errors', async () => {
    const port = await freePort();
    await expect(httpGet(`http://127.0.0.1:${port}/`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('waitUntil', () => {
  it('returns the first truthy value, treating throws as not yet', async () => {
    let n = 0;
    const v = await waitUntil(
      'counter',
      () => {
        n++;
        if (n < 3) throw new Error('not yet');
        return n === 4 ? 'done' : false;
      },
      { timeoutMs: 2000, intervalMs: 5 },
    );
    expect(v).toBe('done');
    expect(n).toBe(4);
  });

  it('times out naming what it waited for and the last error', async () => {
    const err = await waitUntil(
      'the thing',
      () => {
        throw new Error('still broken');
      },
      { timeoutMs: 50, intervalMs: 10 },
    ).catch((e: unknown) => e as Error);
    expect(err.message).toMatch(/the thing: not done after 0 s/);
    expect((err.cause as Error).message).toBe('still broken');
  });

  it('gives up at once when abort names a reason', async () => {
    await expect(waitUntil('x', () => false, { timeoutMs: 10_000, abort: () => 'process exited' })).rejects.toThrow(/gave up: process exited/);
  });
});
