/** Quoting for a POSIX shell, shared by the ssh transport's remote commands and the listing script. */

/**
 * Quotes `s` as one word for a POSIX shell: single quotes, with each `'` written as `'\''`. Nothing is
 * special inside single quotes (no `$`, backquote, backslash or glob), so this is safe for any string
 * without NUL.
 */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new Error('cannot quote a string containing NUL for a shell');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
