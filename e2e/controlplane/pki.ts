// Key material for a local fleet: one CA, one serving certificate for 127.0.0.1 (shared by every
// kube-apiserver of the fleet: they differ only by port) and one service-account signing key pair.
// node:crypto cannot issue X.509 certificates, so the certificates come from the openssl CLI.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Absolute paths of the PEM files written by {@link createPki}. */
export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (cause) {
    throw new Error(`openssl ${args[0]} failed`, { cause });
  }
}

/**
 * Writes a fresh PKI into `dir` (created if needed; private keys mode 0600). The serving certificate is
 * valid for IP 127.0.0.1 and DNS localhost for one year. Needs the `openssl` binary (OpenSSL 1.1.1 or 3).
 */
export function createPki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-subj',
      '/CN=telemetry-rollout-e2e-ca',
      '-days',
      '365',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=kube-apiserver',
    ],
    dir,
  );
  writeFileSync(
    p('server.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc.cluster.local',
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      '',
    ].join('\n'),
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '365',
      '-extfile',
      'server.ext',
    ],
    dir,
  );
  // RSA because kube-apiserver's service-account token signer and verifier take RSA or ECDSA; RSA is what clusters use.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(p('sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  writeFileSync(p('sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  return {
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    serviceAccountKey: p('sa.key'),
    serviceAccountPub: p('sa.pub'),
  };
}

/** The CA certificate as base64, for `certificate-authority-data` in kubeconfigs. */
export function caData(pki: Pick<Pki, 'caCert'>): string {
  return readFileSync(pki.caCert).toString('base64');
}
