/**
 * Throw-away TLS material for tests, made by the openssl CLI: node:crypto can make keys but not X.509
 * certificates, and a real certificate is what the transport's verification must be tested against.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** A PEM certificate and key, also as files. */
export interface TestCert {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/**
 * A self-signed P-256 certificate for `cn` with the given subjectAltName (e.g. `IP:127.0.0.1`), valid for
 * a day, written to `<dir>/<name>.{crt,key}`. Self-signed, so it is its own CA: pass it as `ca` to trust it.
 */
export function selfSignedCert(dir: string, name: string, cn: string, san: string): TestCert {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=${san}`,
    ],
    { stdio: 'pipe' },
  );
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}
