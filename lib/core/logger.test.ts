import { describe, it, expect } from '@jest/globals';
import { JsonLogger } from './logger.js';

function capture(level: 'error' | 'warn' | 'info' | 'debug', fields: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const logger = new JsonLogger(level, fields, (l) => lines.push(l));
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, parsed };
}

describe('JsonLogger', () => {
  it('writes one JSON line per call with level, message, fields, metadata and an ISO timestamp', () => {
    const { logger, lines, parsed } = capture('info', { node: 'n1', revision: 'r' });
    logger.info('collector agent started', { port: 9464 });
    expect(lines[0]?.endsWith('}\n')).toBe(true);
    expect(parsed()[0]).toEqual({
      level: 'info',
      message: 'collector agent started',
      node: 'n1',
      revision: 'r',
      port: 9464,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
    });
  });

  it('drops levels below its own', () => {
    const { logger, parsed } = capture('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(parsed().map((l) => l.level)).toEqual(['warn', 'error']);
  });

  it('makes children with more fields and the same level', () => {
    const { logger, parsed } = capture('info', { mode: 'node' });
    const child = logger.child({ node: 'n2' });
    child.debug('hidden');
    child.info('shown', { x: 1 });
    expect(parsed()).toEqual([expect.objectContaining({ mode: 'node', node: 'n2', message: 'shown', x: 1 })]);
  });

  it('serialises errors (with their cause and code) and never throws on odd metadata', () => {
    const { logger, parsed } = capture('debug');
    const err = Object.assign(new Error('HTTP 503', { cause: new Error('reset') }), { code: 503 });
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    logger.error('failed', { err, big: 10n, loop });
    expect(parsed()[0]).toMatchObject({
      err: { name: 'Error', message: 'HTTP 503', code: 503, cause: { name: 'Error', message: 'reset' } },
      big: '10',
      loop: { a: 1, self: '[Circular]' },
    });
  });
});
