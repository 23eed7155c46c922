/**
 * The generated sections of docs/benchmarks.md: each sits between a BEGIN and an END marker line, and
 * `npm run bench:docs` replaces what lies between them (markers included) with a fresh rendering.
 */

/**
 * `doc` with the section from `begin` to `end` (both markers included) replaced by `rendered`, which
 * carries the markers itself. Throws, naming the section, when a marker is missing or out of order.
 */
export function replaceSection(doc: string, begin: string, end: string, rendered: string, name: string): string {
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/benchmarks.md has no generated ${name} section (markers missing)`);
  return doc.slice(0, a) + rendered + doc.slice(b + end.length);
}
