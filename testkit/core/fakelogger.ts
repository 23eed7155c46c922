/** A Logger that records every call, for assertions in unit tests. */
import type { Logger } from '#core/logger.js';

/** One recorded log call. */
export interface LogEntry {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  meta: Record<string, unknown> | undefined;
}

/** Records log calls in `entries`. */
export class RecordingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  error(message: string, meta?: Record<string, unknown>): void {
    this.entries.push({ level: 'error', message, meta });
  }
  warn(message: string, meta?: Record<string, unknown>): void {
    this.entries.push({ level: 'warn', message, meta });
  }
  info(message: string, meta?: Record<string, unknown>): void {
    this.entries.push({ level: 'info', message, meta });
  }
  debug(message: string, meta?: Record<string, unknown>): void {
    this.entries.push({ level: 'debug', message, meta });
  }
  /** Entries at `level`. */
  at(level: LogEntry['level']): LogEntry[] {
    return this.entries.filter((e) => e.level === level);
  }
}
