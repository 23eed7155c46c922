/**
 * An in-memory filesystem for unit tests: the stop-file reader and the node collector's filesystem
 * reader. Missing files reject with an ENOENT error like node:fs; `failWith` simulates EACCES & co.
 */
import type { StopFileReader } from '../../collector/src/killswitch.js';

function errno(code: string, path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${path}`);
  err.code = code;
  return err;
}

/** Map-backed files with injectable read failures. Counts reads per path. */
export class FakeFs implements StopFileReader {
  readonly files = new Map<string, string>();
  readonly failures = new Map<string, string>();
  readonly reads = new Map<string, number>();

  write(path: string, content: string): void {
    this.files.set(path, content);
  }

  remove(path: string): void {
    this.files.delete(path);
  }

  /** Makes reads of `path` fail with errno `code` (e.g. EACCES) until cleared with `failWith(path)`. */
  failWith(path: string, code?: string): void {
    if (code) this.failures.set(path, code);
    else this.failures.delete(path);
  }

  async readFile(path: string): Promise<string> {
    this.reads.set(path, (this.reads.get(path) ?? 0) + 1);
    const failure = this.failures.get(path);
    if (failure) throw errno(failure, path);
    const content = this.files.get(path);
    if (content === undefined) throw errno('ENOENT', path);
    return content;
  }
}
