// Jest 30 in ESM mode: ts-jest with useESM, .js suffixes stripped from
// relative imports; the package's own `#core/x.js` (and `#collector/x.js`) imports map to the TypeScript
// sources, as package.json's "imports" do under the `types`/`source` conditions. Two projects: unit
// tests beside the code (and the fleet simulator's, sim/), e2e tests against the real control plane.
const common = {
  preset: 'ts-jest/presets/default-esm',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    '^#core/(.*)\\.js$': '<rootDir>/lib/core/$1',
    '^#collector/(.*)\\.js$': '<rootDir>/collector/src/$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: ['TS151001'] } }],
  },
  testEnvironment: 'node',
};

/** @type {import('jest').Config} */
export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/lib/**/*.test.ts',
        '<rootDir>/operator/**/*.test.ts',
        '<rootDir>/collector/**/*.test.ts',
        '<rootDir>/e2e/**/*.unit.test.ts',
        '<rootDir>/sim/**/*.test.ts',
      ],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.e2e.test.ts'],
      globalSetup: '<rootDir>/e2e/jest/global-setup.ts',
      globalTeardown: '<rootDir>/e2e/jest/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/e2e/jest/setup-timeout.ts'],
    },
  ],
};
