/**
 * The agent's config file and environment expansion, for the container entry point (main.ts, which
 * re-exports both).
 */
import { readFile } from 'node:fs/promises';
import { parseCollectorConfig, type CollectorConfig } from './config.js';

/**
 * Reads and validates a config file (JSON or YAML; YAML is a superset of JSON). JSON, what the operator
 * renders into the ConfigMap, is parsed without loading the YAML parser, which alone costs an agent
 * several MiB of RSS.
 */
export async function loadConfigFile(file: string): Promise<CollectorConfig> {
  const text = await readFile(file, 'utf8');
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    const YAML = (await import('yaml')).default;
    try {
      obj = YAML.parse(text);
    } catch (err) {
      throw new Error(`${file}: not valid JSON or YAML`, { cause: err });
    }
  }
  return parseCollectorConfig(obj ?? {}, file);
}

/**
 * Replaces `${VAR}` in `text` with `env.VAR`; throws when a referenced variable is unset (a silently
 * empty host in a URL would be worse than a clear startup error). Used for `metadata.kubeletURL`, so a
 * DaemonSet can reach its node's kubelet at `http://${HOST_IP}:10255` (downward API status.hostIP)
 * without hostNetwork.
 */
export function expandEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') throw new Error(`environment variable ${name} (referenced as \${${name}}) is not set`);
    return v;
  });
}
