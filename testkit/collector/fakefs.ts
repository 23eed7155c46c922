/**
 * An in-memory filesystem for unit tests: the stop-file reader and the node collector's filesystem
 * reader. Missing files reject with an ENOENT error like node:fs; `failWith` simulates EACCES & co.
 */
import type { StopFileReader, StopFileStat } from '../../collector/src/killswitch.js';

function errno(code: string, path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${path}`);
  err.code = code;
  return err;
}

/**
 * Map-backed files with injectable read failures. Counts reads per path. Directories exist implicitly
 * (a path with files under it); each write gives the file a new inode, as an atomic rename does.
 */
export class FakeFs implements StopFileReader {
  readonly files = new Map<string, string>();
  readonly failures = new Map<string, string>();
  readonly reads = new Map<string, number>();
  /** Directories explicitly present (empty ones); directories holding files exist anyway. */
  readonly dirs = new Set<string>();
  private readonly inodes = new Map<string, number>();
  private nextInode = 1;

  write(path: string, content: string): void {
    this.files.set(path, content);
    this.inodes.set(path, this.nextInode++);
  }

  remove(path: string): void {
    this.files.delete(path);
    this.inodes.delete(path);
  }

  async readDir(path: string): Promise<string[]> {
    const failure = this.failures.get(path);
    if (failure) throw errno(failure, path);
    const prefix = `${path}/`;
    const names = new Set<string>();
    for (const p of this.files.keys()) if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]!);
    if (names.size === 0 && !this.dirs.has(path)) throw errno('ENOENT', path);
    return [...names];
  }

  async stat(path: string): Promise<StopFileStat> {
    const content = this.files.get(path);
    if (content === undefined) {
      if ([...this.files.keys()].some((p) => p.startsWith(`${path}/`))) return { size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0, isFile: () => false };
      throw errno('ENOENT', path);
    }
    const ino = this.inodes.get(path) ?? 0;
    return { size: Buffer.byteLength(content), mtimeMs: ino, ctimeMs: ino, ino, isFile: () => true };
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
