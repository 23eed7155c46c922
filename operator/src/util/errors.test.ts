import { describe, expect, it } from '@jest/globals';
import { TerminalError, errorMessage } from './errors.js';

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
});
