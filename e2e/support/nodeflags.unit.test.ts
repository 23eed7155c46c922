import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { findRepoRoot } from '../../operator/src/api/crd.js';
import { COLLECTOR_IMAGE, OPERATOR_IMAGE, entrypointNodeFlags, flagsOr, imageNodeFlags, manifestNodeOptions } from './nodeflags.js';

const ROOT = findRepoRoot();
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

/** Runs `node <flags> -e script` and resolves with its stdout (rejects with its stderr). */
function runNode(flags: string[], script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(NODE, [...flags, '--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

describe('the production node flags', () => {
  const images = [
    { name: 'operator', flags: () => imageNodeFlags(ROOT, OPERATOR_IMAGE) },
    { name: 'collector', flags: () => imageNodeFlags(ROOT, COLLECTOR_IMAGE) },
  ];

  it.each(images)('the $name image keeps fetch working (WebAssembly, which undici needs; --lite-mode removes it)', async ({ flags }) => {
    // Found the hard way: under --lite-mode every Prometheus query failed with "WebAssembly is not defined".
    const server = createServer((_req, res) => res.end('ok from the test server'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const out = await runNode(flags(), `console.log(typeof WebAssembly, await (await fetch(${JSON.stringify(url)})).text())`);
      expect(out).toBe('object ok from the test server');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('reads the operator flags from the image and the manifest, and an override replaces them', () => {
    expect(imageNodeFlags(ROOT, OPERATOR_IMAGE)).toContain('--no-opt');
    expect(manifestNodeOptions(join(ROOT, 'config', 'manager', 'manager.yaml'), 'operator')).toEqual(['--max-old-space-size=128']);
    expect(() => entrypointNodeFlags(join(ROOT, OPERATOR_IMAGE.dockerfile), 'other.js')).toThrow(/unexpected ENTRYPOINT/);
    expect(flagsOr('--a  --b', () => ['--c'])).toEqual(['--a', '--b']);
    expect(flagsOr('', () => ['--c'])).toEqual([]);
    expect(flagsOr(undefined, () => ['--c'])).toEqual(['--c']);
  });
});
