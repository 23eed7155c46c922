/**
 * The node flags a component runs with in production, read from the files that set them (the image's
 * ENTRYPOINT and the manifest's NODE_OPTIONS), so that tests and benchmarks run what is deployed and
 * cannot drift from it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** An image of the project: its Dockerfile (repository-relative) and the script its ENTRYPOINT runs. */
export interface ProjectImage {
  dockerfile: string;
  main: string;
}

/** The operator image (operator/Dockerfile). */
export const OPERATOR_IMAGE: ProjectImage = { dockerfile: 'operator/Dockerfile', main: 'dist/operator/src/main.js' };

/** The collector image (collector/Dockerfile). */
export const COLLECTOR_IMAGE: ProjectImage = { dockerfile: 'collector/Dockerfile', main: 'dist/collector/src/main.js' };

/** {@link entrypointNodeFlags} of one of the project's images, under the repository root `root`. */
export function imageNodeFlags(root: string, image: ProjectImage): string[] {
  return entrypointNodeFlags(join(root, image.dockerfile), image.main);
}

/**
 * The node flags of a Dockerfile's exec-form ENTRYPOINT `["node", ...flags, main]`. Throws when the
 * ENTRYPOINT has another shape, so a changed image is noticed rather than silently not measured.
 */
export function entrypointNodeFlags(dockerfile: string, main: string): string[] {
  const line = readFileSync(dockerfile, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ENTRYPOINT '));
  const argv = line ? (JSON.parse(line.slice('ENTRYPOINT '.length)) as unknown) : undefined;
  if (!Array.isArray(argv) || argv[0] !== 'node' || argv[argv.length - 1] !== main) throw new Error(`${dockerfile}: unexpected ENTRYPOINT ${line ?? '(none)'}`);
  return argv.slice(1, -1).map(String);
}

/** The NODE_OPTIONS of a container of a Deployment in a manifest file, split into flags (none when unset). */
export function manifestNodeOptions(manifest: string, container: string): string[] {
  for (const doc of parseAllDocuments(readFileSync(manifest, 'utf8'))) {
    const o = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Array<{ name?: string; env?: Array<{ name?: string; value?: string }> }> } } };
    };
    if (o.kind !== 'Deployment') continue;
    const c = o.spec?.template?.spec?.containers?.find((x) => x.name === container);
    if (!c) continue;
    return splitFlags(c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '');
  }
  throw new Error(`${manifest}: no Deployment with a container ${container}`);
}

/** Whitespace-separated flags, as an override variable gives them. */
function splitFlags(s: string): string[] {
  return s.split(/\s+/).filter(Boolean);
}

/** The flags of `override` when it is set (even empty, to compare with none), else `production()`. */
export function flagsOr(override: string | undefined, production: () => string[]): string[] {
  return override === undefined ? production() : splitFlags(override);
}
