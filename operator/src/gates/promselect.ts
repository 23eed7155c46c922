/**
 * Views of a Prometheus text page for the gates: the samples of one name, a parsed page cut down to some
 * families, and a text page cut down to some families before it is parsed (see promtext.ts).
 */
import { SUFFIXES, type MetricFamily, type ParsedMetrics, type Sample } from './promtext.js';

/**
 * The samples named exactly `sampleName` (e.g. `x_bucket`), found through the family index so the whole
 * page is not scanned. Returns an empty array when there are none.
 */
export function samplesNamed(parsed: ParsedMetrics, sampleName: string): Sample[] {
  let family = parsed.families.get(sampleName);
  if (family === undefined) {
    for (const suffix of SUFFIXES) {
      if (sampleName.endsWith(suffix)) {
        family = parsed.families.get(sampleName.slice(0, -suffix.length));
        if (family !== undefined) break;
      }
    }
  }
  if (family === undefined) return [];
  return family.samples.filter((s) => s.name === sampleName);
}

/**
 * A view of `parsed` restricted to the named families (names absent from the page are ignored). Used to
 * keep only what a computation needs when a parsed page is held for a while: a kube-apiserver page parses
 * into tens of MB of objects, most of it irrelevant to the gates.
 */
export function selectFamilies(parsed: ParsedMetrics, names: Iterable<string>): ParsedMetrics {
  const families = new Map<string, MetricFamily>();
  for (const name of names) {
    const family = parsed.families.get(name);
    if (family !== undefined) families.set(name, family);
  }
  const keep = new Set<Sample>();
  for (const family of families.values()) for (const s of family.samples) keep.add(s);
  return { samples: parsed.samples.filter((s) => keep.has(s)), families };
}

const SAMPLE_SUFFIXES = ['_bucket', '_sum', '_count', '_created'];

/**
 * Keeps only the lines of a text page that belong to the named metric families (their `# HELP`/`# TYPE`
 * lines and samples, a histogram's `_bucket`/`_sum`/`_count` included). A kube-apiserver page is
 * several MB of which the gates read a few families; filtering lines first spares parsing (and
 * allocating) the rest on every scrape. Works on lines only, so it keeps malformed lines of those
 * families for the parser to reject; dropped lines become empty lines so line numbers stay true.
 */
export function keepFamilies(text: string, families: ReadonlySet<string>): string {
  const out: string[] = [];
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end === -1) end = len;
    const line = text.slice(pos, end);
    pos = end + 1;
    let name: string;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      name = sp === -1 ? rest : rest.slice(0, sp);
    } else if (line.startsWith('#') || line.trim() === '') {
      out.push('');
      continue;
    } else {
      let stop = line.length;
      for (const ch of ['{', ' ', '\t']) {
        const i = line.indexOf(ch);
        if (i !== -1 && i < stop) stop = i;
      }
      name = line.slice(0, stop);
    }
    let keep = families.has(name);
    for (let i = 0; !keep && i < SAMPLE_SUFFIXES.length; i++) {
      const suf = SAMPLE_SUFFIXES[i] as string;
      if (name.endsWith(suf)) keep = families.has(name.slice(0, -suf.length));
    }
    // A dropped line stays as an empty one, so the parser's line numbers still match the page.
    out.push(keep ? line : '');
  }
  return out.join('\n') + '\n';
}
