// A tiny DNS client over UDP (RFC 1035), enough to ask a CoreDNS for A records and read the response
// code. It avoids depending on `dig` being installed and on the system resolver (which would not know
// our CoreDNS port).
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';

/** Response codes by number (RFC 1035 §4.1.1, RFC 2136). */
export const RCODES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
};

/** Record types this client can ask for. */
export const QTYPES = { A: 1, AAAA: 28, SRV: 33, PTR: 12, TXT: 16 } as const;

/** A parsed answer: the rcode and the A records (dotted quads) found in the answer section. */
export interface DnsAnswer {
  id: number;
  rcode: number;
  /** `NOERROR`, `SERVFAIL`, ... or `RCODE<n>` for others. */
  rcodeName: string;
  /** Addresses of A records in the answer section, in order. */
  addresses: string[];
  /** Number of records in the answer section (all types). */
  answerCount: number;
  /** TTL of the first answer record, if any. */
  ttl?: number;
}

/** Encodes a standard query with recursion desired for `name` (absolute; a trailing dot is optional). */
export function encodeQuery(id: number, name: string, qtype: number = QTYPES.A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const labels = name.replace(/\.$/, '').split('.');
  const parts: Buffer[] = [header];
  for (const label of labels) {
    const b = Buffer.from(label, 'ascii');
    if (b.length === 0 || b.length > 63) throw new Error(`invalid DNS name ${JSON.stringify(name)}: label length ${b.length}`);
    parts.push(Buffer.from([b.length]), b);
  }
  const tail = Buffer.alloc(5);
  tail.writeUInt8(0, 0);
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(1, 3); // class IN
  parts.push(tail);
  return Buffer.concat(parts);
}

/** Skips a (possibly compressed) name starting at `off`; returns the offset just after it. */
function skipName(msg: Buffer, off: number): number {
  for (;;) {
    if (off >= msg.length) throw new Error('truncated DNS name');
    const len = msg.readUInt8(off);
    if ((len & 0xc0) === 0xc0) return off + 2; // pointer: the name ends here
    if (len === 0) return off + 1;
    off += 1 + len;
  }
}

/** Parses a response message; throws on a message too short to be one. */
export function parseResponse(msg: Buffer): DnsAnswer {
  if (msg.length < 12) throw new Error(`DNS response too short (${msg.length} bytes)`);
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  const rcode = flags & 0x0f;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let off = 12;
  for (let i = 0; i < qd; i++) off = skipName(msg, off) + 4;
  const addresses: string[] = [];
  let ttl: number | undefined;
  for (let i = 0; i < an; i++) {
    off = skipName(msg, off);
    if (off + 10 > msg.length) throw new Error('truncated DNS answer record');
    const type = msg.readUInt16BE(off);
    const recordTtl = msg.readUInt32BE(off + 4);
    const rdlen = msg.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlen > msg.length) throw new Error('truncated DNS answer data');
    if (i === 0) ttl = recordTtl;
    if (type === QTYPES.A && rdlen === 4) addresses.push([...msg.subarray(off, off + 4)].join('.'));
    off += rdlen;
  }
  return { id, rcode, rcodeName: RCODES[rcode] ?? `RCODE${rcode}`, addresses, answerCount: an, ...(ttl === undefined ? {} : { ttl }) };
}

/**
 * Sends one query to `host:port` over UDP and resolves with the parsed response; rejects after
 * `timeoutMs` without an answer (a server that does not answer at all is a different failure from one
 * answering SERVFAIL). Responses with another id are ignored.
 */
export async function queryDNS(o: { host: string; port: number; name: string; type?: keyof typeof QTYPES; timeoutMs?: number }): Promise<DnsAnswer> {
  const id = randomInt(0, 0x10000);
  const query = encodeQuery(id, o.name, QTYPES[o.type ?? 'A']);
  const socket = createSocket(o.host.includes(':') ? 'udp6' : 'udp4');
  try {
    return await new Promise<DnsAnswer>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`DNS query ${o.name} to ${o.host}:${o.port}: no answer in ${o.timeoutMs ?? 2000} ms`)),
        o.timeoutMs ?? 2000,
      );
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`DNS query ${o.name} to ${o.host}:${o.port}`, { cause: err }));
      });
      socket.on('message', (msg) => {
        let answer: DnsAnswer;
        try {
          answer = parseResponse(msg);
        } catch (err) {
          clearTimeout(timer);
          reject(new Error(`DNS query ${o.name}: bad response`, { cause: err }));
          return;
        }
        if (answer.id !== id) return;
        clearTimeout(timer);
        resolve(answer);
      });
      socket.send(query, o.port, o.host);
    });
  } finally {
    socket.close();
  }
}
