/**
 * The break-glass kill switch: a node-local stop file that stops the agent's API calls without needing
 * the API server.
 *
 * File: JSON `{ "rollout": "...", "revision": "<hash>" | "*", "reason": "...", "issuedAt": "<RFC3339>" }`.
 * - absent → run;
 * - valid, revision equal to ours or "*" → stop;
 * - valid, another revision → ignore (logged once per distinct file);
 * - present but malformed or unreadable → stop, logged as an error (when in doubt, protect the control
 *   plane: a half-written or corrupt stop file was still written by someone who wanted agents stopped).
 * The `rollout` field is recorded and logged but does not filter: one stop file per node, and a
 * stop that is too broad is recoverable, one that is ignored is not.
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

/** Default poll period of the stop file. */
export const STOP_FILE_POLL_MS = 500;
/** Files larger than this are treated as malformed (a stop file is a few hundred bytes). */
const MAX_STOP_FILE_BYTES = 64 * 1024;

/** The content of a valid stop file. */
export interface StopFile {
  rollout?: string;
  revision: string;
  reason?: string;
  issuedAt?: string;
}

/** Reads the stop file. Rejects with an errno error (code ENOENT/ENOTDIR) when it does not exist. */
export interface StopFileReader {
  readFile(path: string): Promise<string>;
}

/** Why the switch is in its current state. */
export type KillSwitchReason = 'absent' | 'other-revision' | 'revision-match' | 'wildcard' | 'malformed' | 'unreadable';

/** The switch's current decision and the evidence for it. */
export interface KillSwitchState {
  stopped: boolean;
  reason: KillSwitchReason;
  /** Human-readable explanation (no file content beyond the documented fields). */
  detail: string;
  /** The parsed file when it was valid. */
  file?: StopFile;
}

/** Parameters of a KillSwitch. */
export interface KillSwitchOptions {
  /** Absolute path of the stop file as seen by this agent. */
  path: string;
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

/**
 * Polls the stop file and exposes the decision: `isStopped()`, a `change` event / `onChange` callback,
 * and `signal`, an AbortSignal that aborts (reason: StoppedError) the moment the switch stops and is
 * replaced by a fresh one when it resumes. Every API call of the agent passes `signal`, so a stop aborts
 * all in-flight calls at once. Until the first poll completes the switch reports "running": callers
 * should `await poll()` once before making calls (startAgent does).
 */
export class KillSwitch {
  private readonly opts: Required<KillSwitchOptions>;
  private readonly events = new EventEmitter();
  private controller = new AbortController();
  private current: KillSwitchState = { stopped: false, reason: 'absent', detail: 'not polled yet' };
  private lastLoggedKey: string | undefined;
  private closer: AbortController | undefined;
  private loopDone: Promise<void> | undefined;
  private polls = 0;

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

  /** Reads the file once and applies the decision. Never throws: read errors are part of the decision. */
  async poll(): Promise<KillSwitchState> {
    let read: { text: string } | { error: unknown };
    try {
      read = { text: await this.opts.reader.readFile(this.opts.path) };
    } catch (error) {
      read = { error };
    }
    this.polls++;
    this.apply(decide(this.opts.revision, read), read);
    return this.current;
  }

  private apply(next: KillSwitchState, read: { text: string } | { error: unknown }): void {
    const prev = this.current;
    this.current = next;
    this.log(next, read);
    if (next.stopped && !prev.stopped) {
      this.controller.abort(new StoppedError(`collector stopped: ${next.detail}`));
      this.events.emit('change', next);
    } else if (!next.stopped && prev.stopped) {
      this.controller = new AbortController();
      this.events.emit('change', next);
    }
  }

  /** Logs each distinct situation once, not on every poll. */
  private log(s: KillSwitchState, read: { text: string } | { error: unknown }): void {
    const key = `${s.reason}|${'text' in read ? read.text : String((read.error as { code?: unknown }).code)}`;
    if (key === this.lastLoggedKey) return;
    this.lastLoggedKey = key;
    const meta = {
      stopFile: this.opts.path,
      revision: this.opts.revision,
      reason: s.reason,
      ...(s.file ? { stopRollout: s.file.rollout, stopRevision: s.file.revision, stopReason: s.file.reason, issuedAt: s.file.issuedAt } : {}),
    };
    switch (s.reason) {
      case 'absent':
        if (this.polls > 1) this.info('stop file absent: API calls allowed', meta);
        return;
      case 'other-revision':
        this.info(`ignoring stop file: ${s.detail}`, meta);
        return;
      case 'revision-match':
      case 'wildcard':
        this.opts.logger.warn(`stop file matches: all API calls stopped, agent idle (${s.detail})`, meta);
        return;
      case 'malformed':
      case 'unreadable':
        this.opts.logger.error(`${s.detail}: treating as stop, all API calls stopped`, {
          ...meta,
          ...('error' in read ? { err: serializeError(read.error) } : {}),
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
