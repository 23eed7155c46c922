/**
 * The break-glass stop files: their JSON content, their names in the stop directory, and the atomic
 * write that puts one in place on a node-local filesystem.
 *
 * Layout: one directory per node ({@link DEFAULT_STOP_DIRECTORY}) holding one file per issuer and scope
 * ({@link stopFileName}: `auto-<revision>` written by the operator, `manual-all` / `manual-<revision>`
 * written by a person with the CLI). The agent stops if ANY file names its revision or `*`, so stops of
 * different issuers compose: removing one never lifts another. Each issuer removes only its own files.
 * The single file at {@link DEFAULT_STOP_FILE_PATH} is the previous layout, still obeyed by agents for
 * one release.
 *
 * The collector's kill switch (collector/src/killswitch.ts) reads these files every 500 ms and treats a
 * present-but-malformed one as "stop". So a half-written file would still stop agents of every
 * revision: a file must appear whole or not at all, which is what {@link writeFileAtomic} guarantees
 * (temp file in the same directory, fsync, rename). Temp files start with `.`, which the agent skips.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { TransportConfigError } from './transport.js';

/**
 * The single stop file of the previous layout (deprecated): agents still obey it for one release, the
 * transports list it and an operator clear removes it when it names the revision being cleared (so a
 * stop issued before an upgrade is not stranded), but nothing writes it any more.
 */
export const DEFAULT_STOP_FILE_PATH = '/var/run/telemetry-rollout/stop';

/**
 * The stop directory on each node's host filesystem unless the spec says otherwise. It lies inside
 * /var/run/telemetry-rollout/, the directory the agent's DaemonSet mounts, so no manifest changes.
 */
export const DEFAULT_STOP_DIRECTORY = '/var/run/telemetry-rollout/stop.d';

/** Who wrote a stop file: the operator's Auto break-glass, or a person (the CLI). */
export type StopIssuer = 'auto' | 'manual';

/** Every {@link StopIssuer}, in display order. */
export const STOP_ISSUERS: readonly StopIssuer[] = ['auto', 'manual'];

/** The scope part of the name of a file that stops every revision (`manual-all`). */
export const ALL_SCOPE = 'all';

/** The `revision` value that stops agents of every revision. */
export const ALL_REVISIONS = '*';

/** Files larger than this are rejected by the collector (a stop file is a few hundred bytes). */
export const MAX_STOP_FILE_BYTES = 64 * 1024;

/** Longest `reason` accepted: enough for a sentence, far below {@link MAX_STOP_FILE_BYTES}. */
export const MAX_REASON_LENGTH = 1024;

/** The content of a stop file. */
export interface StopFile {
  /** The rollout that issued it, as `namespace/name` (recorded by agents, not used to filter). */
  rollout: string;
  /** The collector revision to stop, or {@link ALL_REVISIONS}. */
  revision: string;
  /** Why, in a person's words or the operator's summary. */
  reason: string;
  /** When it was issued (RFC 3339). */
  issuedAt: string;
}

/** A stop file that does not have the documented shape. */
export class StopFileError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StopFileError';
  }
}

// A revision is a node label value (revisionOf gives 10 hex characters); restricting it to that
// alphabet also makes it safe to search for verbatim in a remote `grep -F` (see ssh.ts).
const REVISION_RE = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
// Control characters would make the file awkward to read in a terminal during an incident.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The file name of `issuer`'s stop for `revision` in the stop directory: `<issuer>-<revision>`, or
 * `<issuer>-all` for {@link ALL_REVISIONS}. The alphabet is fixed (letters, digits, `-`, `_`, `.`, never a
 * leading `.`), so a name is safe in a path and in a remote shell. Throws {@link StopFileError} for an
 * invalid revision, and for the revision `all`, whose file would be the wildcard's.
 */
export function stopFileName(issuer: StopIssuer, revision: string): string {
  if (!STOP_ISSUERS.includes(issuer)) throw new StopFileError(`stop file: unknown issuer ${JSON.stringify(issuer)}`);
  if (!isValidRevision(revision)) throw new StopFileError(`stop file: invalid revision ${JSON.stringify(revision)}`);
  if (revision === ALL_SCOPE) throw new StopFileError(`stop file: the revision "${ALL_SCOPE}" cannot be told apart from every revision ("${ALL_REVISIONS}")`);
  return `${issuer}-${revision === ALL_REVISIONS ? ALL_SCOPE : revision}`;
}

/** What a stop file's name says: who issued it and for which revision (`*` for `-all`). */
export interface StopFileNameParts {
  issuer: StopIssuer;
  revision: string;
}

/** Parses a name {@link stopFileName} makes; undefined for any other name (a hand-made file, say). */
export function parseStopFileName(name: string): StopFileNameParts | undefined {
  const dash = name.indexOf('-');
  if (dash < 0) return undefined;
  const issuer = name.slice(0, dash) as StopIssuer;
  const scope = name.slice(dash + 1);
  if (!STOP_ISSUERS.includes(issuer)) return undefined;
  if (scope === ALL_SCOPE) return { issuer, revision: ALL_REVISIONS };
  return REVISION_RE.test(scope) ? { issuer, revision: scope } : undefined;
}

/** Whether `name` is one {@link stopFileName} makes (the only names transports write or remove). */
export function isStopFileName(name: string): boolean {
  return parseStopFileName(name) !== undefined;
}

/** Throws for a stop-file name outside the fixed alphabet (a programming error, not a node's failure). */
export function checkStopFileName(file: string): string {
  if (!isStopFileName(file)) throw new Error(`invalid stop file name ${JSON.stringify(file)} (want <auto|manual>-<revision|all>)`);
  return file;
}

/** Whether `revision` is a valid stop-file revision: a label value or {@link ALL_REVISIONS}. */
export function isValidRevision(revision: string): boolean {
  return revision === ALL_REVISIONS || REVISION_RE.test(revision);
}

/** Throws {@link StopFileError} unless `f` has the documented shape. */
export function validateStopFile(f: StopFile): void {
  if (typeof f.rollout !== 'string' || f.rollout.trim() === '' || f.rollout.length > 512 || CONTROL_RE.test(f.rollout)) {
    throw new StopFileError('stop file: "rollout" must be a non-empty string of at most 512 printable characters');
  }
  if (typeof f.revision !== 'string' || !isValidRevision(f.revision)) {
    throw new StopFileError(`stop file: "revision" must be a revision (label value) or "${ALL_REVISIONS}"`);
  }
  if (typeof f.reason !== 'string' || f.reason.length > MAX_REASON_LENGTH) {
    throw new StopFileError(`stop file: "reason" must be a string of at most ${MAX_REASON_LENGTH} characters`);
  }
  if (typeof f.issuedAt !== 'string' || !RFC3339_RE.test(f.issuedAt) || Number.isNaN(Date.parse(f.issuedAt))) {
    throw new StopFileError('stop file: "issuedAt" must be an RFC 3339 timestamp');
  }
}

/**
 * The file's bytes: compact JSON with the keys in a fixed order and a trailing newline. The exact form
 * matters: clearing with a revision filter over ssh searches the file for `"revision":"<rev>"`.
 * Control characters in `reason` are replaced by spaces (JSON would escape them, but a person reading
 * the file with `cat` during an incident should see one clean line).
 */
export function encodeStopFile(f: StopFile): string {
  // eslint-disable-next-line no-control-regex
  const clean: StopFile = { rollout: f.rollout, revision: f.revision, reason: f.reason.replace(/[\u0000-\u001f\u007f]/g, ' '), issuedAt: f.issuedAt };
  validateStopFile(clean);
  return `${JSON.stringify(clean)}\n`;
}

/** Parses and validates stop-file text; throws {@link StopFileError}. */
export function parseStopFile(text: string): StopFile {
  if (Buffer.byteLength(text) > MAX_STOP_FILE_BYTES) throw new StopFileError(`stop file larger than ${MAX_STOP_FILE_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StopFileError('stop file is not valid JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new StopFileError('stop file is not a JSON object');
  const o = parsed as Record<string, unknown>;
  const f = { rollout: o.rollout, revision: o.revision, reason: o.reason, issuedAt: o.issuedAt } as StopFile;
  validateStopFile(f);
  return f;
}

/**
 * Checks that a stop-file path is absolute and normalised (no `..`, no trailing `/`), so that joining it
 * under a node's root directory or quoting it for a remote shell cannot land anywhere unexpected.
 * Returns it unchanged; throws a {@link TransportConfigError} otherwise.
 */
export function validateStopFilePath(path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0') || normalize(path) !== path || path === '/' || path.endsWith('/')) {
    throw new TransportConfigError(`stop file path must be an absolute, normalised file path, got ${JSON.stringify(path)}`);
  }
  return path;
}

/**
 * Checks that a stop directory is absolute and normalised, like {@link validateStopFilePath}; returns it
 * unchanged or throws a {@link TransportConfigError}.
 */
export function validateStopDirectory(path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0') || normalize(path) !== path || path === '/' || path.endsWith('/')) {
    throw new TransportConfigError(`stop directory must be an absolute, normalised directory path without a trailing "/", got ${JSON.stringify(path)}`);
  }
  return path;
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** File mode (default 0o644: the agent reads it as another user through a read-only hostPath). */
  mode?: number;
  /** Mode of directories created on the way (default 0o755). */
  dirMode?: number;
}

/**
 * Writes `content` to `path` so that readers see either the old file (or none) or the whole new one,
 * never a partial one: the bytes go to a uniquely named temp file in the same directory (same
 * filesystem, so rename is atomic), are fsynced, get their mode set explicitly (the umask must not make
 * the file unreadable to the agent), and the temp file is renamed over `path`; then the directory is
 * fsynced so the rename survives a crash. Missing directories are created. On failure the temp file is
 * removed and the error is rethrown with the path.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const mode = opts.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(dir, { recursive: true, mode: opts.dirMode ?? 0o755 });
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    let leftover = '';
    try {
      await unlink(tmp);
    } catch (e) {
      // ENOENT: the temp file was never created or was already renamed. Anything else is reported
      // with the original failure, so a stray temp file does not go unnoticed.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') leftover = ` (and temp file ${tmp} could not be removed: ${(e as Error).message})`;
    }
    throw new Error(`write ${path} atomically: ${(err as Error).message}${leftover}`, { cause: err });
  }
  await syncDir(dir);
}

/** fsyncs a directory so a rename or unlink in it is durable; filesystems that refuse it are tolerated. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    // Some filesystems (and platforms) do not support fsync on a directory; the rename is already
    // atomic, only its durability across a power cut is at stake, so this is not a failure.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw new Error(`fsync directory ${dir}`, { cause: err });
  } finally {
    await fh?.close();
  }
}

/** Removes a file; a file that is already gone is not an error (clearing is idempotent). Returns whether it existed. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new Error(`remove ${path}: ${(err as Error).message}`, { cause: err });
  }
  await syncDir(dirname(path));
  return true;
}
