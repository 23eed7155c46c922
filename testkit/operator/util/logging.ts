/**
 * The operator's logger for tests: the production winston pipeline (formats, redaction) writing into
 * memory instead of stdout, so tests assert on the JSON lines the operator would have written.
 */
import { Writable } from 'node:stream';
import { createLogger, type LogLevel, type Logger } from '../../../operator/src/util/logging.js';

/** A captured log line: the parsed JSON object that would have been written. */
export type LogEntry = Record<string, unknown> & { level: string; message: string };

/**
 * A logger for tests that keeps the parsed JSON lines in memory (`entries`) instead of writing them, at
 * level `debug` unless told. Lines go through the same formats (including redaction) as production and
 * arrive through winston's stream pipeline, so await one event-loop turn (e.g. `FakeClock.flush()`)
 * before reading them.
 */
export function memoryLogger(level: LogLevel = 'debug'): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') entries.push(JSON.parse(line) as LogEntry);
      }
      cb();
    },
  });
  return { logger: createLogger({ level, stream: sink, env: {} }), entries };
}
