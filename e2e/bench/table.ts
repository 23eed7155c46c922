/**
 * The plain-text table the benchmarks print to the terminal: a header of the first row's keys, columns
 * right-aligned to their widest cell. One function, so every benchmark's output reads the same.
 */

/** Renders `rows` (objects with the same keys) as an indented, right-aligned text table; "(none)" when empty. */
export function textTable(rows: Array<Record<string, string | number>>): string {
  if (!rows.length) return '  (none)';
  const cols = Object.keys(rows[0] ?? {});
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]) => '  ' + vals.map((v, i) => v.padStart(w[i] ?? 0)).join('  ');
  return [line(cols), ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}
