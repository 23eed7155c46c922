/**
 * The listing format shared by the ssh transport's remote script and exec commands: parsing, its
 * strictness on garbled lines, and tolerance of everything else a remote session may print.
 */
import { describe, expect, test } from '@jest/globals';
import { LISTING_MORE, parseListing } from './listing.js';

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

describe('parseListing', () => {
  test('files with hex content, sizes, unreadable and too-large entries, the legacy file last, names with spaces', () => {
    const out = [
      'Welcome to node-7 (a login banner is ignored)',
      `tro-stop-file legacy 3 ${hex('old')} stop`,
      `tro-stop-file dir 12 ${hex('{"a":"b"}\n\u00e9')} manual-all`,
      'tro-stop-file dir - - locked file',
      'tro-stop-file dir 99999 - big',
      'tro-stop-file dir 0  empty',
      LISTING_MORE,
      '',
    ].join('\n');
    expect(parseListing(out)).toEqual({
      files: [
        { name: 'big', size: 99999, error: 'too large to show (99999 bytes)' },
        { name: 'empty', size: 0, text: '' },
        { name: 'locked file', error: 'unreadable' },
        { name: 'manual-all', size: 12, text: '{"a":"b"}\n\u00e9' },
        { name: 'stop', legacy: true, size: 3, text: 'old' },
      ],
      truncated: true,
    });
  });

  test('no lines: no files', () => {
    expect(parseListing('')).toEqual({ files: [], truncated: false });
  });

  test.each(['tro-stop-file dir x', 'tro-stop-file other 1 61 n', 'tro-stop-file dir 1 6 odd-hex', 'tro-stop-file dir 1 zz n'])(
    'a garbled line %j fails the listing rather than hiding a file',
    (line) => {
      expect(() => parseListing(`${line}\n`)).toThrow(/garbled stop-file listing/);
    },
  );
});
