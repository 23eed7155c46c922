/**
 * The break-glass kill switch: node-local stop files that stop the agent's API calls without needing
 * the API server.
 *
 * Where: a stop directory (default /var/run/telemetry-rollout/stop.d) holding one file per issuer and
 * scope (`auto-<rev>` written by the operator, `manual-all` / `manual-<rev>` by a person), plus, for one
 * release, the single stop file of the previous layout (deprecated). The agent stops while ANY of them
 * says stop, so stops of different issuers compose: removing one never lifts another.
 *
 * Each file: JSON `{ "rollout": "...", "revision": "<hash>" | "*", "reason": "...", "issuedAt": "<RFC3339>" }`.
 * - absent → run;
 * - valid, revision equal to ours or "*" → stop;
 * - valid, another revision → ignore (logged once per distinct situation);
 * - present but malformed, oversized or unreadable → stop, logged as an error (when in doubt, protect the
 *   control plane: a half-written or corrupt stop file was still written by someone who wanted agents
 *   stopped). The same holds for a directory that exists but cannot be listed, and for a directory
 *   with more than {@link MAX_STOP_FILES} files (the rest cannot be checked).
 * Names starting with `.` are skipped: they are the temp files of atomic writes (temp file in the same
 * directory, then rename), which a reader must never see as stops. The file name is only the issuer's
 * bookkeeping; the content decides. The `rollout` field is recorded and logged but does not filter: a
 * stop that is too broad is recoverable, one that is ignored is not.
 *
 * Cost: each poll lists the directory and stats each file; a file is read again only when its inode,
 * size, mtime or ctime changed (atomic writes replace the inode), so an unchanged stop costs no read.
 *
 * The file is polled (every 500 ms by default) rather than watched: inotify (fs.watch) is unreliable on
 * hostPath mounts, bind mounts and when the directory itself is replaced, and a poll gives a hard bound.
 * With a 500 ms poll, the agent aborts every in-flight call at most ~0.5 s (plus one small file read)
 * after the file appears, well within the 2 s contract. Stopping means idling, not exiting: an exit would
 * make the kubelet restart the container in a crash loop, and a restarted agent would call the API
 * server at startup before reading the file.
 */
import { EventEmitter } from 'node:events';
import { abortReason, type Clock } from '#core/clock.js';
import { StoppedError } from './errors.js';
import type { Logger } from '#core/logger.js';
import { serializeError } from '#core/logger.js';

/** Default poll period of the stop files. */
export const STOP_FILE_POLL_MS = 500;
/** Files larger than this are treated as malformed (a stop file is a few hundred bytes). */
const MAX_STOP_FILE_BYTES = 64 * 1024;
/**
 * Files of the stop directory checked per poll at most. A directory holds a handful (one per issuer and
 * revision); more than this is not a state anyone meant, and since the rest cannot be checked, the
 * agent stops (fail-safe) rather than read without bound every 500 ms.
 */
export const MAX_STOP_FILES = 64;

/** The content of a valid stop file. */
export interface StopFile {
  rollout?: string;
  revision: string;
  reason?: string;
  issuedAt?: string;
}

/** What {@link StopFileReader.stat} reports: enough to tell that a file changed without reading it. */
export interface StopFileStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  isFile(): boolean;
}

/**
 * Reads the stop files. Every method rejects with an errno error (code ENOENT/ENOTDIR) when the file or
 * directory does not exist.
 */
export interface StopFileReader {
  readFile(path: string): Promise<string>;
  /** The names in a directory (any order). */
  readDir(path: string): Promise<string[]>;
  stat(path: string): Promise<StopFileStat>;
}

/** Why the switch is in its current state. */
export type KillSwitchReason = 'absent' | 'other-revision' | 'revision-match' | 'wildcard' | 'malformed' | 'unreadable' | 'too-many';

/** The switch's current decision and the evidence for it. */
export interface KillSwitchState {
  stopped: boolean;
  reason: KillSwitchReason;
  /** Human-readable explanation (no file content beyond the documented fields), naming the file that decided. */
  detail: string;
  /** The parsed file when it was valid. */
  file?: StopFile;
  /** The path of the file (or directory) that decided, when there is one. */
  source?: string;
  /** Every file that says stop right now, with why (several issuers may stop the agent at once). */
  stops?: Array<{ source: string; reason: KillSwitchReason }>;
}

/** Parameters of a KillSwitch. */
export interface KillSwitchOptions {
  /** Absolute path of the legacy single stop file as seen by this agent (deprecated, still obeyed). */
  path: string;
  /** Absolute path of the stop directory as seen by this agent; without it only `path` is polled. */
  directory?: string;
  /** This agent's revision hash (TRO_REVISION). */
  revision: string;
  reader: StopFileReader;
  clock: Clock;
  logger: Logger;
  pollIntervalMs?: number;
}

/**
 * Parses stop-file text. Returns the file, or an error message when it is not a JSON object with a
 * non-empty string `revision` (other documented fields must be strings when present).
 */
export function parseStopFile(text: string): StopFile | { error: string } {
  if (text.length > MAX_STOP_FILE_BYTES) return { error: `larger than ${MAX_STOP_FILE_BYTES} bytes` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { error: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { error: 'not a JSON object' };
  }
  const obj = parsed as Record<string, unknown>;
  if (typeof obj.revision !== 'string' || obj.revision === '') {
    return { error: 'field "revision" must be a non-empty string' };
  }
  for (const key of ['rollout', 'reason', 'issuedAt'] as const) {
    if (obj[key] !== undefined && typeof obj[key] !== 'string') return { error: `field "${key}" must be a string` };
  }
  const file: StopFile = { revision: obj.revision };
  if (typeof obj.rollout === 'string') file.rollout = obj.rollout;
  if (typeof obj.reason === 'string') file.reason = obj.reason;
  if (typeof obj.issuedAt === 'string') file.issuedAt = obj.issuedAt;
  return file;
}

/** Decides what a stop file (or its absence / a read error) means for an agent of `revision`. */
export function decide(revision: string, read: { text: string } | { error: unknown }): KillSwitchState {
  if ('error' in read) {
    const code = (read.error as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { stopped: false, reason: 'absent', detail: 'no stop file' };
    const msg = read.error instanceof Error ? read.error.message : String(read.error);
    return { stopped: true, reason: 'unreadable', detail: `stop file present but unreadable: ${msg}` };
  }
  const parsed = parseStopFile(read.text);
  if ('error' in parsed) return { stopped: true, reason: 'malformed', detail: `stop file malformed: ${parsed.error}` };
  if (parsed.revision === '*') {
    return { stopped: true, reason: 'wildcard', detail: 'stop file names every revision ("*")', file: parsed };
  }
  if (parsed.revision === revision) {
    return { stopped: true, reason: 'revision-match', detail: `stop file names this revision`, file: parsed };
  }
  return {
    stopped: false,
    reason: 'other-revision',
    detail: `stop file names revision ${parsed.revision}, not ours`,
    file: parsed,
  };
}

type ReadResult = { text: string } | { error: unknown };

/** One file's decision and how it was read. */
interface Decided {
  path: string;
  state: KillSwitchState;
  read: ReadResult;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function stopsKey(s: KillSwitchState): string {
  return (s.stops ?? []).map((x) => `${x.source}=${x.reason}`).join(',');
}

// Which stop is named first when several files say stop: a valid file naming us says the most.
const STOP_RANK: Partial<Record<KillSwitchReason, number>> = { 'revision-match': 0, wildcard: 1, malformed: 2, unreadable: 3, 'too-many': 4 };

/**
 * Combines the decisions of every file: stopped when any file says stop, and then the state of the most
 * telling one (a valid match before a malformed file) with its path in `source` and the detail, and all
 * of them in `stops`; otherwise "other-revision" when some file names another revision, else "absent".
 */
export function combine(decisions: ReadonlyArray<{ path: string; state: KillSwitchState; read?: ReadResult }>): { state: KillSwitchState; error?: unknown } {
  const stopping = decisions.filter((d) => d.state.stopped);
  if (stopping.length > 0) {
    const first = [...stopping].sort((a, b) => (STOP_RANK[a.state.reason] ?? 9) - (STOP_RANK[b.state.reason] ?? 9))[0]!;
    const others = stopping.length - 1;
    const detail = `${first.state.detail} (${first.path})${others > 0 ? `; ${others} more stop file(s)` : ''}`;
    const state: KillSwitchState = { ...first.state, detail, source: first.path, stops: stopping.map((d) => ({ source: d.path, reason: d.state.reason })) };
    return first.read && 'error' in first.read ? { state, error: first.read.error } : { state };
  }
  const other = decisions.filter((d) => d.state.reason === 'other-revision');
  if (other.length > 0) {
    const revisions = [...new Set(other.map((d) => d.state.file?.revision ?? '?'))].join(', ');
    const state: KillSwitchState = {
      stopped: false,
      reason: 'other-revision',
      detail: `stop files name revision(s) ${revisions}, not ours`,
      source: other[0]!.path,
    };
    if (other[0]!.state.file) state.file = other[0]!.state.file;
    return { state };
  }
  return { state: { stopped: false, reason: 'absent', detail: 'no stop file' } };
}

/**
 * Polls the stop files and exposes the decision: `isStopped()`, a `change` event / `onChange` callback,
 * and `signal`, an AbortSignal that aborts (reason: StoppedError) the moment the switch stops and is
 * replaced by a fresh one when it resumes. Every API call of the agent passes `signal`, so a stop aborts
 * all in-flight calls at once. Until the first poll completes the switch reports "running": callers
 * should `await poll()` once before making calls (startAgent does).
 */
export class KillSwitch {
  private readonly opts: Required<Omit<KillSwitchOptions, 'directory'>> & Pick<KillSwitchOptions, 'directory'>;
  private readonly events = new EventEmitter();
  private controller = new AbortController();
  private current: KillSwitchState = { stopped: false, reason: 'absent', detail: 'not polled yet' };
  private lastLoggedKey: string | undefined;
  private closer: AbortController | undefined;
  private loopDone: Promise<void> | undefined;
  private polls = 0;
  private reads = 0;
  /** The last decision per directory file, keyed by what stat says, so an unchanged file is not re-read. */
  private readonly cache = new Map<string, { key: string; decided: Decided }>();

  constructor(options: KillSwitchOptions) {
    this.opts = { pollIntervalMs: STOP_FILE_POLL_MS, ...options };
  }

  /** The current decision. */
  get state(): KillSwitchState {
    return this.current;
  }

  /** True while API calls are forbidden. */
  isStopped(): boolean {
    return this.current.stopped;
  }

  /** Aborted when the switch stops; a new, live signal is returned after it resumes. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Number of completed polls (for status and tests). */
  get pollCount(): number {
    return this.polls;
  }

  /** Throws StoppedError when stopped. */
  throwIfStopped(): void {
    if (this.current.stopped) throw new StoppedError(this.current.detail);
  }

  /** Registers `listener` for every stop/resume transition; returns an unsubscribe function. */
  onChange(listener: (state: KillSwitchState) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  /**
   * Registers `listener` for every change of the set of files that say stop (`state.stops`), transitions
   * included; returns an unsubscribe function.
   */
  onStopsChange(listener: (state: KillSwitchState) => void): () => void {
    this.events.on('stops', listener);
    return () => this.events.off('stops', listener);
  }

  /** Resolves at once when running, otherwise when the switch resumes; rejects when `signal` aborts. */
  waitUntilRunning(signal?: AbortSignal): Promise<void> {
    if (!this.current.stopped) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const off = this.onChange((s) => {
        if (!s.stopped) {
          cleanup();
          resolve();
        }
      });
      const onAbort = (): void => {
        cleanup();
        reject(abortReason(signal));
      };
      const cleanup = (): void => {
        off();
        signal?.removeEventListener('abort', onAbort);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Reads the legacy file and the stop directory once and applies the decision. Never throws: read
   * errors are part of the decision.
   */
  async poll(): Promise<KillSwitchState> {
    const decisions: Decided[] = [await this.readOne(this.opts.path, undefined)];
    if (this.opts.directory !== undefined) decisions.push(...(await this.readDirectory(this.opts.directory)));
    this.polls++;
    this.apply(combine(decisions));
    return this.current;
  }

  /** One file's decision; unchanged files (same inode, size, mtime, ctime) reuse the last one without a read. */
  private async readOne(path: string, st: StopFileStat | undefined): Promise<Decided> {
    const key = st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : undefined;
    const cached = this.cache.get(path);
    if (key !== undefined && cached?.key === key) return cached.decided;
    let read: ReadResult;
    try {
      read = { text: await this.opts.reader.readFile(path) };
    } catch (error) {
      read = { error };
    }
    this.reads++;
    const decided: Decided = { path, state: decide(this.opts.revision, read), read };
    if (key !== undefined) this.cache.set(path, { key, decided });
    return decided;
  }

  /** The decisions of the directory's files (see the module comment for what is skipped and capped). */
  private async readDirectory(dir: string): Promise<Decided[]> {
    let names: string[];
    try {
      names = await this.opts.reader.readDir(dir);
    } catch (error) {
      this.cache.clear();
      const code = (error as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      return [
        {
          path: dir,
          state: { stopped: true, reason: 'unreadable', detail: `stop directory ${dir} present but unreadable: ${errorText(error)}` },
          read: { error },
        },
      ];
    }
    const files = names.filter((n) => !n.startsWith('.')).sort();
    const seen = new Set<string>();
    if (files.length > MAX_STOP_FILES) {
      const detail = `stop directory ${dir} holds ${files.length} files, more than the ${MAX_STOP_FILES} checked`;
      return [{ path: dir, state: { stopped: true, reason: 'too-many', detail }, read: { text: `too-many:${files.length}` } }];
    }
    const out: Decided[] = [];
    for (const name of files) {
      const path = `${dir}/${name}`;
      let st: StopFileStat;
      try {
        st = await this.opts.reader.stat(path);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        // Removed between the listing and the stat: gone, like a file never listed.
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        out.push({ path, state: decide(this.opts.revision, { error }), read: { error } });
        continue;
      }
      // A subdirectory is not a stop file (nothing writes one; ignoring it cannot hide a stop file).
      if (!st.isFile()) continue;
      seen.add(path);
      out.push(await this.readOne(path, st));
    }
    for (const p of this.cache.keys()) if (!seen.has(p)) this.cache.delete(p);
    return out;
  }

  /** Number of stop files read so far (unchanged files are not read again). */
  get readCount(): number {
    return this.reads;
  }

  private apply({ state: next, error }: { state: KillSwitchState; error?: unknown }): void {
    const prev = this.current;
    this.current = next;
    this.log(next, error);
    if (next.stopped && !prev.stopped) {
      this.controller.abort(new StoppedError(`collector stopped: ${next.detail}`));
      this.events.emit('change', next);
    } else if (!next.stopped && prev.stopped) {
      this.controller = new AbortController();
      this.events.emit('change', next);
    }
    // Also while staying stopped, when other files hold the stop (one lifted while another holds), so
    // what the metrics show about the cause stays true.
    if (stopsKey(next) !== stopsKey(prev)) this.events.emit('stops', next);
  }

  /** Logs each distinct situation once, not on every poll. */
  private log(s: KillSwitchState, error: unknown): void {
    const key = `${s.reason}|${s.source ?? ''}|${stopsKey(s)}|${s.detail}`;
    if (key === this.lastLoggedKey) return;
    this.lastLoggedKey = key;
    const meta = {
      stopFile: s.source ?? this.opts.path,
      ...(this.opts.directory !== undefined ? { stopDirectory: this.opts.directory } : {}),
      revision: this.opts.revision,
      reason: s.reason,
      ...(s.stops && s.stops.length > 1 ? { stops: s.stops.map((x) => `${x.source} (${x.reason})`) } : {}),
      ...(s.file ? { stopRollout: s.file.rollout, stopRevision: s.file.revision, stopReason: s.file.reason, issuedAt: s.file.issuedAt } : {}),
    };
    switch (s.reason) {
      case 'absent':
        if (this.polls > 1) this.info('no stop file: API calls allowed', meta);
        return;
      case 'other-revision':
        this.info(`ignoring stop files: ${s.detail}`, meta);
        return;
      case 'revision-match':
      case 'wildcard':
        this.opts.logger.warn(`stop file matches: all API calls stopped, agent idle (${s.detail})`, meta);
        return;
      case 'malformed':
      case 'unreadable':
      case 'too-many':
        this.opts.logger.error(`${s.detail}: treating as stop, all API calls stopped`, {
          ...meta,
          ...(error !== undefined ? { err: serializeError(error) } : {}),
        });
        return;
    }
  }

  private info(message: string, meta: Record<string, unknown>): void {
    this.opts.logger.info(message, meta);
  }

  /** Starts polling every pollIntervalMs (first poll immediately). Idempotent. */
  start(): void {
    if (this.closer) return;
    const closer = new AbortController();
    this.closer = closer;
    this.loopDone = (async () => {
      while (!closer.signal.aborted) {
        await this.poll();
        try {
          await this.opts.clock.sleep(this.opts.pollIntervalMs, closer.signal);
        } catch {
          // Aborted by close(): the only way this sleep rejects.
          return;
        }
      }
    })();
  }

  /** Stops polling; the current decision and signal stay as they are. */
  async close(): Promise<void> {
    this.closer?.abort();
    await this.loopDone;
  }
}
