/**
 * Loads the TelemetryRollout CustomResourceDefinition from `crds/`, the single source of truth of the API.
 * The offline validator, the type generator and the e2e tests all read this one file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** File name of the CRD inside `crds/` (and its copy in `config/crd/bases/`). */
export const CRD_FILE = 'telemetry.rollout.dev_telemetryrollouts.yaml';

/** The API group of TelemetryRollout. */
export const GROUP = 'telemetry.rollout.dev';
/** The served and stored version. */
export const VERSION = 'v1alpha1';
/** The kind. */
export const KIND = 'TelemetryRollout';
/** The plural resource name. */
export const PLURAL = 'telemetryrollouts';
/** apiVersion as written in manifests. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/**
 * A node of a structural OpenAPI v3 schema as CRDs use it. Only the keywords Kubernetes allows in
 * structural schemas are modelled.
 */
export interface SchemaNode {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  nullable?: boolean;
  anyOf?: SchemaNode[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: Array<{ rule: string; message?: string; messageExpression?: string; fieldPath?: string; reason?: string }>;
  'x-kubernetes-embedded-resource'?: boolean;
}

/** The parts of the CRD object this project reads. */
export interface CustomResourceDefinition {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular: string; shortNames?: string[]; categories?: string[] };
    versions: Array<{
      name: string;
      schema: { openAPIV3Schema: SchemaNode };
      additionalPrinterColumns?: Array<{ name: string; type: string; jsonPath: string; priority?: number }>;
    }>;
  };
}

/** Walks up from this module to the repository (or package) root that holds `crds/`. */
export function findRepoRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'crds', CRD_FILE))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find crds/${CRD_FILE} above ${start}`);
    dir = parent;
  }
}

/** Absolute path of the CRD file. */
export function crdPath(): string {
  return join(findRepoRoot(), 'crds', CRD_FILE);
}

let cached: CustomResourceDefinition | undefined;

/** The CRD, parsed once per process. */
export function loadCrd(): CustomResourceDefinition {
  if (!cached) {
    try {
      cached = parse(readFileSync(crdPath(), 'utf8')) as CustomResourceDefinition;
    } catch (err) {
      throw new Error('load TelemetryRollout CRD', { cause: err });
    }
  }
  return cached;
}

/** The openAPIV3Schema of the v1alpha1 version. */
export function rolloutSchema(): SchemaNode {
  const v = loadCrd().spec.versions.find((x) => x.name === VERSION);
  if (!v) throw new Error(`CRD has no version ${VERSION}`);
  return v.schema.openAPIV3Schema;
}
