import { describe, it, expect } from '@jest/globals';
import { evaluate } from '@marcbachmann/cel-js';
import { COLLECTOR_CONFIG_OPENAPI, DEFAULT_CONFIG, parseCollectorConfig, resolveConfig, validateCollectorConfig, type OpenApiSchema } from './config.js';
import { ConfigError } from './errors.js';

/** Builds the object the API server would produce by applying the schema's defaults to `{}`. */
function schemaDefaults(schema: OpenApiSchema): unknown {
  if (schema.type !== 'object') return schema.default;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of Object.entries(schema.properties ?? {})) out[k] = schemaDefaults(sub);
  return out;
}

function walk(schema: OpenApiSchema, path: string, visit: (s: OpenApiSchema, path: string) => void): void {
  visit(schema, path);
  for (const [k, sub] of Object.entries(schema.properties ?? {})) walk(sub, `${path}.${k}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
}

describe('collector config', () => {
  it('DEFAULT_CONFIG equals the schema defaults and resolveConfig({}) returns it', () => {
    expect(schemaDefaults(COLLECTOR_CONFIG_OPENAPI)).toEqual(DEFAULT_CONFIG);
    expect(resolveConfig({})).toEqual(DEFAULT_CONFIG);
    expect(resolveConfig(undefined)).toEqual(DEFAULT_CONFIG);
  });

  it('the schema is structural-friendly: description everywhere, defaults on fields, no uniqueItems', () => {
    walk(COLLECTOR_CONFIG_OPENAPI, 'config', (s, path) => {
      expect([path, typeof s.description, s.description.length > 10]).toEqual([path, 'string', true]);
      expect([path, 'uniqueItems' in s]).toEqual([path, false]);
      if (s.type === 'object') expect([path, s.properties !== undefined]).toEqual([path, true]);
      // Every field (not array items) carries a default so the API server fills it in.
      if (!path.endsWith('[]')) expect([path, s.default !== undefined]).toEqual([path, true]);
    });
    const backoff = COLLECTOR_CONFIG_OPENAPI.properties?.backoff;
    expect(backoff?.['x-kubernetes-validations']?.[0]?.rule).toBe('self.maxSeconds >= self.initialSeconds');
  });

  it('resolveConfig merges sections field by field and replaces arrays', () => {
    const c = resolveConfig({
      metadata: { mode: 'Naive' },
      clusterWatcher: { resources: ['nodes'] },
      apiRateLimit: { qps: 7, burst: undefined },
    });
    expect(c.metadata).toEqual({ ...DEFAULT_CONFIG.metadata, mode: 'Naive' });
    expect(c.clusterWatcher).toEqual({ enabled: true, resources: ['nodes'] });
    expect(c.apiRateLimit).toEqual({ qps: 7, burst: 5 });
    c.clusterWatcher.resources.push('pods');
    expect(DEFAULT_CONFIG.clusterWatcher.resources).toEqual(['pods', 'services']);
  });

  it.each([
    [{}, []],
    [null, []],
    [{ intervalSeconds: 0 }, ['intervalSeconds']],
    [{ intervalSeconds: 3601 }, ['intervalSeconds']],
    [{ intervalSeconds: 1.5 }, ['intervalSeconds']],
    [{ intervalSeconds: '10' }, ['intervalSeconds']],
    [{ metadata: { mode: 'Fast' } }, ['metadata.mode']],
    [{ metadata: { kubeletURL: 'ftp://x' } }, ['metadata.kubeletURL']],
    [{ metadata: { kubeletURL: 'https://10.0.0.1:10250' } }, []],
    [{ metadata: { kubeletURL: 'http://${HOST_IP}:10255' } }, []],
    [{ metadata: { kubeletURL: 'http://host name:10255' } }, ['metadata.kubeletURL']],
    [{ metadata: { kubeletURL: `http://${'a'.repeat(250)}` } }, ['metadata.kubeletURL']],
    [{ metadata: { naiveRelistSeconds: 0 } }, ['metadata.naiveRelistSeconds']],
    [{ clusterWatcher: { resources: ['pods', 'pods'] } }, ['clusterWatcher.resources[1]']],
    [{ clusterWatcher: { resources: ['secrets'] } }, ['clusterWatcher.resources[0]']],
    [{ clusterWatcher: { enabled: 'yes' } }, ['clusterWatcher.enabled']],
    [{ apiRateLimit: { qps: 0 } }, ['apiRateLimit.qps']],
    [{ apiRateLimit: { qps: 100 } }, []],
    [{ apiRateLimit: { qps: 100.5 } }, ['apiRateLimit.qps']],
    [{ apiRateLimit: { qps: 0.1, burst: 1 } }, []],
    [{ apiRateLimit: { burst: 0 } }, ['apiRateLimit.burst']],
    [{ apiRateLimit: { burst: 1001 } }, ['apiRateLimit.burst']],
    [{ backoff: { initialSeconds: 0 } }, ['backoff.initialSeconds']],
    [{ backoff: { jitter: 1.1 } }, ['backoff.jitter']],
    [{ backoff: { initialSeconds: 10, maxSeconds: 5 } }, ['backoff']],
    [{ backoff: { initialSeconds: 400 } }, ['backoff']],
    [{ backoff: { initialSeconds: 5, maxSeconds: 5 } }, []],
    [{ backoff: { initialSeconds: 3601, maxSeconds: 4000 } }, ['backoff.initialSeconds']],
    [{ backoff: { maxSeconds: 86401 } }, ['backoff.maxSeconds']],
    [{ collect: { node: 1 } }, ['collect.node']],
    [{ stopFilePath: 'relative/stop' }, ['stopFilePath']],
    [{ stopFilePath: '/var/run/has space/stop' }, ['stopFilePath']],
    [{ metricsPort: 80 }, ['metricsPort']],
    [{ metricsPort: 65536 }, ['metricsPort']],
    [{ logLevel: 'trace' }, ['logLevel']],
    [{ intervalSecond: 10 }, ['intervalSecond']],
    [{ metadata: { kubeletUrl: 'http://x' } }, ['metadata.kubeletUrl']],
    [[], ['(root)']],
    [{ metadata: [] }, ['metadata']],
    [{ intervalSeconds: 0, logLevel: 'x', apiRateLimit: { qps: -1 } }, ['intervalSeconds', 'logLevel', 'apiRateLimit.qps']],
  ])('validate %j → errors at %j', (input, paths) => {
    expect(
      validateCollectorConfig(input)
        .map((e) => e.path)
        .sort(),
    ).toEqual([...paths].sort());
  });

  it('prefixes paths and explains the problem', () => {
    const errors = validateCollectorConfig({ apiRateLimit: { qps: 0 } }, 'spec.collector.config');
    expect(errors).toEqual([{ path: 'spec.collector.config.apiRateLimit.qps', message: 'must be > 0, got 0' }]);
    const cross = validateCollectorConfig({ backoff: { initialSeconds: 10, maxSeconds: 5 } }, 'spec.collector.config');
    expect(cross).toEqual([
      {
        path: 'spec.collector.config.backoff',
        message: 'backoff.maxSeconds must be greater than or equal to backoff.initialSeconds',
      },
    ]);
  });

  it('the CEL rule and its TypeScript twin agree', () => {
    const rule = COLLECTOR_CONFIG_OPENAPI.properties?.backoff?.['x-kubernetes-validations']?.[0]?.rule ?? '';
    const cases = [
      { initialSeconds: 1, maxSeconds: 300 },
      { initialSeconds: 5, maxSeconds: 5 },
      { initialSeconds: 10, maxSeconds: 5 },
      { initialSeconds: 0.5, maxSeconds: 0.25 },
    ];
    for (const c of cases) {
      const cel = evaluate(rule, { self: { ...c, jitter: 0.5 } }) as boolean;
      const ts = validateCollectorConfig({ backoff: c }).length === 0;
      expect([c, cel]).toEqual([c, ts]);
    }
  });

  it('parseCollectorConfig throws a ConfigError listing every problem', () => {
    expect(() => parseCollectorConfig({ intervalSeconds: 0, logLevel: 'x' }, '/etc/collector/config.yaml')).toThrow(ConfigError);
    try {
      parseCollectorConfig({ intervalSeconds: 0, logLevel: 'x' }, '/etc/collector/config.yaml');
    } catch (err) {
      expect((err as ConfigError).errors).toHaveLength(2);
      expect((err as Error).message).toContain('/etc/collector/config.yaml');
    }
    expect(parseCollectorConfig({ metadata: { mode: 'Naive' } }).metadata.mode).toBe('Naive');
  });
});
