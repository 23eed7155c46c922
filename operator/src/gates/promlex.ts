/**
 * The character-level pieces of the Prometheus text parser (promtext.ts): character codes and classes,
 * HELP unescaping and timestamps. Like the parser it uses only erasable TypeScript syntax and no
 * regular expressions.
 */
/** Character code of tab. */
export const TAB = 9;
/** Character code of carriage return. */
export const CR = 13;
/** Character code of space. */
export const SPACE = 32;
/** Character code of `"`. */
export const QUOTE = 34;
/** Character code of `#`. */
export const HASH = 35;
/** Character code of `+`. */
export const PLUS = 43;
/** Character code of `,`. */
export const COMMA = 44;
/** Character code of `-`. */
export const MINUS = 45;
/** Character code of `.`. */
export const DOT = 46;
/** Character code of `=`. */
export const EQUALS = 61;
/** Character code of `\\`. */
export const BACKSLASH = 92;
/** Character code of `{`. */
export const OPEN_BRACE = 123;
/** Character code of `}`. */
export const CLOSE_BRACE = 125;

/** Space or tab. */
export function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}
/** `[a-zA-Z_]` */
export function isLetterOrUnderscore(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
/** `[0-9]` */
export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
/** `[a-zA-Z_:]` */
export function isMetricNameStart(c: number): boolean {
  return isLetterOrUnderscore(c) || c === 58;
}
/** `[a-zA-Z0-9_:]` */
export function isMetricNameChar(c: number): boolean {
  return isLetterOrUnderscore(c) || isDigit(c) || c === 58;
}

/** Resolves the escapes of a HELP docstring: `\\` and `\n`; any other backslash is kept literally. */
export function unescapeHelp(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      const e = s[i + 1];
      if (e === '\\') {
        out += '\\';
        i++;
        continue;
      }
      if (e === 'n') {
        out += '\n';
        i++;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** An int64 millisecond timestamp; digits with an optional sign. */
export function parseTimestamp(token: string): number | undefined {
  let i = 0;
  const first = token.charCodeAt(0);
  if (first === MINUS || first === PLUS) i = 1;
  if (i >= token.length) return undefined;
  for (; i < token.length; i++) if (!isDigit(token.charCodeAt(i))) return undefined;
  return Number(token);
}
