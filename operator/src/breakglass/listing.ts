/**
 * Listing the stop files of a node (`kubectl tro break-glass status`): the read-only side of the
 * transports. The local transport reads the directory itself ({@link listLocalStopFiles}); the ssh
 * transport runs {@link listScript} on the node, and an exec transport's command prints the same
 * output for the action `list` ({@link parseListing} reads it).
 *
 * The output is line-based so a POSIX shell can produce it with `wc`, `od` and `printf` alone, one line
 * per file: `tro-stop-file <dir|legacy> <size|-> <hex|-> <name>`, the content hex-encoded (so any bytes,
 * newlines included, survive the trip), `-` for a size that could not be read or content not shown (too
 * large or unreadable); the name is the rest of the line. A last line `tro-stop-file-more` says that
 * more than {@link MAX_LISTED_FILES} files were there. Other lines are ignored (a login banner, say).
 */
import { lstat, open, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { shellQuote } from './shellquote.js';
import { validateStopDirectory, validateStopFilePath } from './stopfile.js';
import {
  MAX_LISTED_FILE_BYTES,
  MAX_LISTED_FILES,
  runPerNode,
  type ListedStopFile,
  type NodeListing,
  type NodeTarget,
  type RunPerNodeOptions,
} from './transport.js';

/** First word of every file line of the listing. */
export const LISTING_PREFIX = 'tro-stop-file';
/** The line that says the listing stopped at {@link MAX_LISTED_FILES}. */
export const LISTING_MORE = 'tro-stop-file-more';

/** Output kept from a listing command: the worst case of {@link MAX_LISTED_FILES} hex-encoded files of the largest size shown. */
export const LISTING_OUTPUT_BYTES = 4 * 1024 * 1024;

/** The files of a listing, and whether more were there. */
export interface Listing {
  files: ListedStopFile[];
  truncated: boolean;
}

const LINE_RE = /^tro-stop-file (dir|legacy) (\d+|-) ([0-9a-f]*|-) (.+)$/;

/**
 * Parses listing output (see the module comment). Throws for a file line that does not parse, since a
 * garbled listing must not be shown as "no stop files".
 */
export function parseListing(stdout: string): Listing {
  const files: ListedStopFile[] = [];
  let truncated = false;
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === LISTING_MORE) {
      truncated = true;
      continue;
    }
    if (!line.startsWith(`${LISTING_PREFIX} `)) continue;
    const m = LINE_RE.exec(line);
    if (!m) throw new Error(`garbled stop-file listing line: ${JSON.stringify(line.slice(0, 80))}`);
    const [, kind, size, hex, name] = m as unknown as [string, string, string, string, string];
    if (hex !== '-' && hex.length % 2 !== 0) throw new Error(`garbled stop-file listing: odd hex length for ${JSON.stringify(name)}`);
    const f: ListedStopFile = { name };
    if (kind === 'legacy') f.legacy = true;
    if (size !== '-') f.size = Number(size);
    if (hex !== '-') f.text = Buffer.from(hex, 'hex').toString('utf8');
    else f.error = size === '-' ? 'unreadable' : `too large to show (${size} bytes)`;
    files.push(f);
  }
  return { files: sortListed(files), truncated };
}

/** Directory files by name, then the legacy file: the order every transport reports. */
function sortListed(files: ListedStopFile[]): ListedStopFile[] {
  return files.sort((a, b) => Number(a.legacy ?? false) - Number(b.legacy ?? false) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The POSIX sh script that prints the listing of `dir` and `legacyPath` on a node (needs `wc`, `od`,
 * `tr`, `printf`: present on busybox images too). Read-only: it creates, changes and removes nothing.
 * Dot-files (temp files of an atomic write) are skipped, as the agent skips them.
 */
export function listScript(dir: string, legacyPath: string): string {
  validateStopDirectory(dir);
  validateStopFilePath(legacyPath);
  const d = shellQuote(dir);
  const l = shellQuote(legacyPath);
  const emit =
    `emit() { if [ ! -r "$2" ]; then printf '${LISTING_PREFIX} %s - - %s\\n' "$1" "$3"; return 0; fi; ` +
    `s=$(wc -c < "$2") || { printf '${LISTING_PREFIX} %s - - %s\\n' "$1" "$3"; return 0; }; s=$((s+0)); ` +
    `if [ "$s" -gt ${MAX_LISTED_FILE_BYTES} ]; then printf '${LISTING_PREFIX} %s %s - %s\\n' "$1" "$s" "$3"; ` +
    `else printf '${LISTING_PREFIX} %s %s %s %s\\n' "$1" "$s" "$(od -An -v -tx1 < "$2" | tr -d ' \\n')" "$3"; fi; }`;
  const loop =
    `n=0; if [ -d ${d} ]; then for f in ${d}/*; do [ -f "$f" ] || continue; n=$((n+1)); ` +
    `if [ "$n" -gt ${MAX_LISTED_FILES} ]; then echo ${LISTING_MORE}; break; fi; emit dir "$f" "\${f##*/}"; done; fi`;
  const legacy = `if [ -f ${l} ]; then emit legacy ${l} ${shellQuote(basename(legacyPath))}; fi`;
  return `${emit}; ${loop}; ${legacy}; exit 0`;
}

/** Reads one file for a listing: size, and text when small enough; errors become the entry's `error`. */
async function readListed(path: string, name: string, legacy: boolean): Promise<ListedStopFile | undefined> {
  const f: ListedStopFile = legacy ? { name, legacy: true } : { name };
  let fh;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    f.size = st.size;
    if (st.size > MAX_LISTED_FILE_BYTES) f.error = `too large to show (${st.size} bytes)`;
    else f.text = await fh.readFile('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    f.error = `unreadable (${code ?? 'error'})`;
  } finally {
    await fh?.close();
  }
  return f;
}

/** The listing of `dir` and `legacyPath` on this machine (the local transport's node roots). */
export async function listLocalStopFiles(dir: string, legacyPath: string): Promise<Listing> {
  let names: string[] = [];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new Error(`list ${dir}`, { cause: err });
  }
  const truncated = names.length > MAX_LISTED_FILES;
  const files: ListedStopFile[] = [];
  for (const name of names.slice(0, MAX_LISTED_FILES)) {
    const f = await readListed(join(dir, name), name, false);
    if (f) files.push(f);
  }
  const legacy = await lstat(legacyPath).then(
    (st) => st.isFile(),
    () => false,
  );
  if (legacy) {
    const f = await readListed(legacyPath, basename(legacyPath), true);
    if (f) files.push(f);
  }
  return { files: sortListed(files), truncated };
}

/** What a per-node list operation reports (a failure has a message, a success the listing). */
export type NodeListResult = { ok: false; message?: string } | { ok: true; listing: Listing };

/**
 * {@link runPerNode} for listings: the same bounds, timeouts and outcomes, with each successful node's
 * files attached to its outcome.
 */
export async function runPerNodeListing(
  nodes: readonly NodeTarget[],
  opts: RunPerNodeOptions,
  op: (node: NodeTarget, signal: AbortSignal) => Promise<NodeListResult>,
): Promise<NodeListing[]> {
  const listings: (Listing | undefined)[] = new Array<Listing | undefined>(nodes.length);
  // Each node carries its position, so a listing lands on its own outcome even if a name repeats.
  const indexed = nodes.map((n, index) => ({ name: n.name, addresses: n.addresses, index }));
  const outcomes = await runPerNode(indexed, opts, async (node, signal) => {
    const r = await op(node, signal);
    if (!r.ok) return r.message === undefined ? { ok: false } : { ok: false, message: r.message };
    listings[(node as (typeof indexed)[number]).index] = r.listing;
    return { ok: true };
  });
  return outcomes.map((o, i) => {
    const l = listings[i];
    if (o.result !== 'ok' || l === undefined) return o;
    return l.truncated ? { ...o, files: l.files, truncated: true } : { ...o, files: l.files };
  });
}
