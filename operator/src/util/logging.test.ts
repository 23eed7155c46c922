import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { REDACTED, createLogger, isSensitiveKey, redactString, redactValue, resolveLogLevel, withContext } from './logging.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';

const JWT = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabcdef==\n-----END RSA PRIVATE KEY-----';
const B64_PEM = Buffer.from(PEM).toString('base64');

/** Waits until winston's stream pipeline has delivered queued lines. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('redactString', () => {
  it.each([
    ['bearer header', 'Authorization: Bearer abc.def-123_xyz==', 'abc.def-123_xyz'],
    ['lower-case bearer', 'sent bearer s3cr3tT0ken to server', 's3cr3tT0ken'],
    ['yaml token', 'users:\n- user:\n    token: sha256~AbCdEf0123', 'sha256~AbCdEf0123'],
    ['password', 'password=hunter2 and more', 'hunter2'],
    ['json token', '{"token":"tok-123","name":"x"}', 'tok-123'],
    ['escaped json inside a message', 'Body: {\\"token\\":\\"tok-456\\"}', 'tok-456'],
    ['client-key-data', 'client-key-data: QUJDREVGR0g=', 'QUJDREVGR0g='],
    ['client-certificate-data', 'client-certificate-data: Q0VSVA==', 'Q0VSVA=='],
    ['certificate-authority-data', 'certificate-authority-data: "Q0FEQVRB"', 'Q0FEQVRB'],
    ['jwt anywhere', `the token ${JWT} expired`, JWT],
    ['pem block', `key is ${PEM} ok`, 'MIIEpAIBAAKCAQEA7'],
    ['base64 pem', `data ${B64_PEM}`, B64_PEM.slice(0, 40)],
  ])('scrubs %s', (_name, input, secret) => {
    const out = redactString(input);
    expect(out).not.toContain(secret);
    expect(out).toContain('REDACTED');
  });

  it('leaves ordinary text alone', () => {
    const text = 'rollout default/demo moved cluster prod-east-1 to step 2 (5% of 120 nodes)';
    expect(redactString(text)).toBe(text);
  });

  it('keeps the text around a PEM block', () => {
    expect(redactString(`before ${PEM} after`)).toBe('before [REDACTED PEM] after');
  });
});

describe('redactValue', () => {
  it('replaces sensitive fields in nested objects without touching the input', () => {
    const kubeconfig = {
      clusters: [{ name: 'c', cluster: { server: 'https://1.2.3.4:6443', 'certificate-authority-data': 'Q0E=' } }],
      users: [{ name: 'u', user: { token: 'abc', 'client-key-data': 'S0VZ', clientCertificateData: 'Q0VSVA==' } }],
      headers: { Authorization: 'Basic dXNlcjpwYXNz' },
    };
    const copy = JSON.parse(JSON.stringify(kubeconfig)) as unknown;
    const out = JSON.stringify(redactValue(kubeconfig));
    for (const secret of ['Q0E=', 'abc', 'S0VZ', 'Q0VSVA==', 'dXNlcjpwYXNz']) expect(out).not.toContain(secret);
    expect(out).toContain('https://1.2.3.4:6443');
    expect(kubeconfig).toEqual(copy);
  });

  it('turns errors into plain objects, redacting message, stack, fields and cause', () => {
    const cause = new Error('dial failed with Bearer deadbeef1234');
    const err = Object.assign(new Error(`HTTP-Code: 401 Body: {"token":"t0k"}`, { cause }), { code: 401, password: 'pw' });
    const out = redactValue(err) as Record<string, unknown>;
    expect(out.name).toBe('Error');
    expect(out.code).toBe(401);
    expect(out.password).toBe(REDACTED);
    const text = JSON.stringify(out);
    expect(text).not.toContain('t0k');
    expect(text).not.toContain('deadbeef1234');
    expect(text).toContain('dial failed');
  });

  it('summarises buffers and cuts cycles', () => {
    const a: Record<string, unknown> = { key: Buffer.from('private') };
    a.self = a;
    expect(redactValue(a)).toEqual({ key: '[binary 7 bytes]', self: '[Circular]' });
  });

  it('matches sensitive keys regardless of case and separators', () => {
    expect(isSensitiveKey('client_key_data')).toBe(true);
    expect(isSensitiveKey('Client-Key-Data')).toBe(true);
    expect(isSensitiveKey('kubeconfigSecretRef')).toBe(false);
    expect(isSensitiveKey('name')).toBe(false);
  });
});

describe('createLogger', () => {
  it('writes JSON lines with child context and redacts message and meta', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(
          ...chunk
            .toString()
            .split('\n')
            .filter((l) => l !== ''),
        );
        cb();
      },
    });
    const logger = createLogger({ stream, env: {}, defaultMeta: { component: 'test' } });
    const child = withContext(logger, { rollout: 'default/demo', cluster: 'prod-east-1' });
    child.info('connecting with token: abc123', { kubeconfig: 'apiVersion: v1', auth: { password: 'pw1' } });
    child.error('failed', new Error(`client-key-data: ${B64_PEM}`));
    await settle();
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'info',
      component: 'test',
      rollout: 'default/demo',
      cluster: 'prod-east-1',
      kubeconfig: REDACTED,
      auth: { password: REDACTED },
    });
    expect(first.message).toBe(`connecting with token: ${REDACTED}`);
    expect(typeof first.timestamp).toBe('string');
    expect(lines.join('\n')).not.toMatch(/abc123|pw1|LS0tLS1CRUdJTi/);
  });

  it('takes the level from LOG_LEVEL and rejects unknown levels', () => {
    expect(resolveLogLevel(undefined, { LOG_LEVEL: 'DEBUG' })).toBe('debug');
    expect(resolveLogLevel(undefined, {})).toBe('info');
    expect(resolveLogLevel('warn', { LOG_LEVEL: 'debug' })).toBe('warn');
    expect(() => resolveLogLevel(undefined, { LOG_LEVEL: 'verbose2' })).toThrow('unknown log level');
    expect(createLogger({ env: { LOG_LEVEL: 'error' }, stream: new Writable({ write: (_c, _e, cb) => cb() }) }).level).toBe('error');
  });

  it('memoryLogger captures parsed, redacted entries', async () => {
    const { logger, entries } = memoryLogger();
    logger.debug('hello', { token: 'x' });
    await settle();
    expect(entries).toEqual([expect.objectContaining({ level: 'debug', message: 'hello', token: REDACTED })]);
  });
});
