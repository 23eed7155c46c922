/**
 * A real OpenSSH server on 127.0.0.1 for the ssh transport's tests and benchmark (not a mock): fresh
 * host and user keys from `ssh-keygen`, a generated sshd_config, `sshd -D -e` as a child process that
 * `stop()` ends. It accepts only the generated user key, for the current user, on loopback.
 *
 * Needs Debian's openssh-server (`/usr/sbin/sshd`) and openssh-client (`ssh`, `ssh-keygen`); without
 * them it fails with a message saying what to install, so a test never silently skips.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The sshd binary Debian's openssh-server installs. */
export const SSHD_PATH = '/usr/sbin/sshd';

/** A running loopback sshd and the client-side files that reach it. */
export interface LoopbackSshd {
  /** The port on 127.0.0.1. */
  port: number;
  /** sshd's process id (the benchmark reads its CPU time, children included, from /proc). */
  pid: number;
  /** The user to log in as (the current user). */
  user: string;
  /** A scratch directory (removed by stop()). */
  dir: string;
  /** The accepted user private key (0600). */
  privateKeyPath: string;
  /** The user private key's text (for Secret-shaped tests). */
  privateKeyPem: string;
  /** A known_hosts file with this server's host key for `[127.0.0.1]:port`. */
  knownHostsPath: string;
  /** That known_hosts line. */
  knownHostsLine: string;
  /** sshd's own log (stderr) so far. */
  log(): string;
  /** Stops sshd and removes the directory. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (free when asked; a race with other processes is possible but rare). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port from the kernel');
  return addr.port;
}

/** Generates an ed25519 key pair at `path` / `path.pub`. */
export async function sshKeygen(path: string, comment: string): Promise<void> {
  try {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  } catch (err) {
    throw new Error(`ssh-keygen failed (is openssh-client installed? apt-get install -y openssh-client): ${(err as Error).message}`, { cause: err });
  }
}

/** Starts sshd on a free loopback port; resolves once it listens. */
export async function startLoopbackSshd(opts: { maxStartups?: number } = {}): Promise<LoopbackSshd> {
  try {
    await access(SSHD_PATH, constants.X_OK);
  } catch {
    throw new Error(
      `${SSHD_PATH} not found: install Debian's openssh-server (apt-get update && apt-get install -y openssh-server) to run the ssh transport tests`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'tro-sshd-'));
  let child: ChildProcess | undefined;
  try {
    await sshKeygen(join(dir, 'host_ed25519'), 'tro-test-host');
    await sshKeygen(join(dir, 'user_ed25519'), 'tro-test-user');
    await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user_ed25519.pub')), { mode: 0o600 });
    const user = userInfo().username;
    if (process.getuid?.() === 0) {
      // sshd's privilege separation directory; the package creates it only through its service unit.
      await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    }
    const port = await freePort();
    const maxStartups = opts.maxStartups ?? 256;
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      'PidFile none',
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${user}`,
      // The default (10:30:100) drops unauthenticated connections beyond 10: the benchmark opens 50 at once.
      `MaxStartups ${maxStartups}`,
      'MaxSessions 64',
      'LogLevel INFO',
      '',
    ].join('\n');
    const configPath = join(dir, 'sshd_config');
    await writeFile(configPath, config, { mode: 0o600 });

    const sshd = spawn(SSHD_PATH, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = sshd;
    let stderr = '';
    sshd.stderr.setEncoding('utf8');
    sshd.stderr.on('data', (c: string) => {
      // Bounded: a long benchmark logs a line per connection.
      stderr = (stderr + c).slice(-64 * 1024);
    });
    await new Promise<void>((resolve, reject) => {
      const onData = (): void => {
        if (stderr.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          cleanup();
          resolve();
        }
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`sshd exited (code ${code}) before listening:\n${stderr}`));
      };
      // A real-time bound on startup: a fixture must not hang the test run.
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`sshd did not listen within 10 s:\n${stderr}`));
      }, 10_000);
      const cleanup = (): void => {
        clearTimeout(timer);
        sshd.stderr.off('data', onData);
        sshd.off('exit', onExit);
      };
      sshd.stderr.on('data', onData);
      sshd.once('exit', onExit);
    });

    const hostPub = (await readFile(join(dir, 'host_ed25519.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const knownHostsLine = `[127.0.0.1]:${port} ${hostPub}`;
    const knownHostsPath = join(dir, 'known_hosts');
    await writeFile(knownHostsPath, `${knownHostsLine}\n`, { mode: 0o600 });
    const privateKeyPath = join(dir, 'user_ed25519');
    const privateKeyPem = await readFile(privateKeyPath, 'utf8');
    return {
      port,
      pid: sshd.pid ?? 0,
      user,
      dir,
      privateKeyPath,
      privateKeyPem,
      knownHostsPath,
      knownHostsLine,
      log: () => stderr,
      stop: async () => {
        if (sshd.exitCode === null && sshd.signalCode === null) {
          const exited = new Promise<void>((resolve) => sshd.once('exit', () => resolve()));
          sshd.kill('SIGTERM');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
