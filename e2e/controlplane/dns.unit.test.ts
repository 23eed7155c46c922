import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encodeQuery, parseResponse, queryDNS } from './dns.js';

/** Builds a response to `query` with the given rcode and A records (answer names as pointers to the question). */
function respond(query: Buffer, rcode: number, addresses: string[], ttl = 30): Buffer {
  const header = Buffer.from(query.subarray(0, 12));
  header.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
  header.writeUInt16BE(addresses.length, 6);
  const records = addresses.map((a) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0); // pointer to the question name at offset 12
    r.writeUInt16BE(1, 2);
    r.writeUInt16BE(1, 4);
    r.writeUInt32BE(ttl, 6);
    r.writeUInt16BE(4, 10);
    a.split('.').forEach((o, i) => r.writeUInt8(Number(o), 12 + i));
    return r;
  });
  return Buffer.concat([header, query.subarray(12), ...records]);
}

describe('encodeQuery', () => {
  it('encodes header, labels, type and class as RFC 1035 says', () => {
    const q = encodeQuery(0x1234, 'web.ns.svc.cluster.local.');
    expect(q.readUInt16BE(0)).toBe(0x1234);
    expect(q.readUInt16BE(2)).toBe(0x0100);
    expect(q.readUInt16BE(4)).toBe(1);
    expect(q.subarray(12, 16)).toEqual(Buffer.from([3, 0x77, 0x65, 0x62]));
    // ... "local" then the root label, QTYPE A, QCLASS IN
    expect(q.subarray(q.length - 11)).toEqual(Buffer.from([5, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0, 0, 1, 0, 1]));
    expect(q.length).toBe(12 + 'web.ns.svc.cluster.local'.length + 2 + 4);
  });

  it('rejects empty and over-long labels', () => {
    expect(() => encodeQuery(1, 'a..b')).toThrow(/label length 0/);
    expect(() => encodeQuery(1, `${'x'.repeat(64)}.local`)).toThrow(/label length 64/);
  });
});

describe('parseResponse', () => {
  it('reads rcode, A records behind name pointers, and the TTL', () => {
    const r = parseResponse(respond(encodeQuery(7, 'a.b'), 0, ['10.96.0.10', '10.96.3.4'], 5));
    expect(r).toEqual({ id: 7, rcode: 0, rcodeName: 'NOERROR', addresses: ['10.96.0.10', '10.96.3.4'], answerCount: 2, ttl: 5 });
  });

  it('names SERVFAIL and NXDOMAIN, with no answers', () => {
    expect(parseResponse(respond(encodeQuery(1, 'a.b'), 2, [])).rcodeName).toBe('SERVFAIL');
    expect(parseResponse(respond(encodeQuery(1, 'a.b'), 3, [])).rcodeName).toBe('NXDOMAIN');
    expect(parseResponse(respond(encodeQuery(1, 'a.b'), 9, [])).rcodeName).toBe('RCODE9');
  });

  it('throws on truncated messages', () => {
    expect(() => parseResponse(Buffer.alloc(5))).toThrow(/too short/);
    const full = respond(encodeQuery(1, 'a.b'), 0, ['1.2.3.4']);
    expect(() => parseResponse(full.subarray(0, full.length - 2))).toThrow(/truncated/);
  });
});

describe('queryDNS over UDP', () => {
  let server: Socket;
  let port = 0;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      const q = parseQuestion(msg);
      seen.push(q);
      if (q === 'silent.test') return;
      if (q === 'stray.test') {
        // An answer with another id first: the client must ignore it and wait for its own.
        const other = Buffer.from(msg);
        other.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
        server.send(respond(other, 0, ['9.9.9.9']), rinfo.port, rinfo.address);
      }
      server.send(respond(msg, q === 'fail.test' ? 2 : 0, q === 'fail.test' ? [] : ['10.96.0.1']), rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', () => resolve()));
    port = server.address().port;
  });
  afterAll(() => {
    server.close();
  });

  function parseQuestion(msg: Buffer): string {
    const labels: string[] = [];
    let off = 12;
    while (msg.readUInt8(off) !== 0) {
      const len = msg.readUInt8(off);
      labels.push(msg.subarray(off + 1, off + 1 + len).toString('ascii'));
      off += 1 + len;
    }
    return labels.join('.');
  }

  it('sends the question and returns the answer', async () => {
    const a = await queryDNS({ host: '127.0.0.1', port, name: 'web.test' });
    expect(a.rcodeName).toBe('NOERROR');
    expect(a.addresses).toEqual(['10.96.0.1']);
    expect(seen).toContain('web.test');
  });

  it('reports SERVFAIL as an answer, not an error', async () => {
    expect((await queryDNS({ host: '127.0.0.1', port, name: 'fail.test' })).rcodeName).toBe('SERVFAIL');
  });

  it('ignores responses with another id', async () => {
    expect((await queryDNS({ host: '127.0.0.1', port, name: 'stray.test' })).addresses).toEqual(['10.96.0.1']);
  });

  it('rejects when nothing answers in time', async () => {
    await expect(queryDNS({ host: '127.0.0.1', port, name: 'silent.test', timeoutMs: 200 })).rejects.toThrow(/no answer in 200 ms/);
  });
});
