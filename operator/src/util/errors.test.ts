import { describe, expect, it } from '@jest/globals';
import { TerminalError, errorMessage, isCredentialError, isTlsVerificationCode } from './errors.js';

describe('errors', () => {
  it('TerminalError keeps its reason and cause', () => {
    const cause = new Error('inner');
    const e = new TerminalError('InvalidSpec', 'spec is wrong', { cause });
    expect(e.reason).toBe('InvalidSpec');
    expect(e.cause).toBe(cause);
    expect(e).toBeInstanceOf(Error);
  });
  it('errorMessage handles non-errors', () => {
    expect(errorMessage(new Error('x'))).toBe('x');
    expect(errorMessage('plain')).toBe('plain');
  });
  it('isCredentialError: HTTP 401/403 as code or statusCode, also in a cause, and TLS verification codes; nothing else', () => {
    expect(isCredentialError(Object.assign(new Error('x'), { code: 401 }))).toBe(true);
    expect(isCredentialError({ statusCode: 403 })).toBe(true);
    expect(isCredentialError(new Error('outer', { cause: Object.assign(new Error('inner'), { code: 403 }) }))).toBe(true);
    expect(isCredentialError(Object.assign(new Error('tls'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))).toBe(true);
    for (const other of [{ code: 404 }, { code: 429 }, { code: 500 }, { code: 'ECONNREFUSED' }, { code: 'ETIMEDOUT' }, new Error('plain'), undefined, 'text']) {
      expect(isCredentialError(other)).toBe(false);
    }
    expect(isTlsVerificationCode('CERT_HAS_EXPIRED')).toBe(true);
    expect(isTlsVerificationCode('ECONNRESET')).toBe(false);
  });
});
