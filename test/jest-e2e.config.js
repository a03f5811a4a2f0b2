// End-to-end tests: the built gateway and the real model host as child processes.
// The tests are CommonJS (the repo root is not an ES module package) and talk
// HTTP only, so jest runs them in its ordinary mode.
/** @type {import('jest').Config} */
module.exports = {
  rootDir: '..',
  roots: ['<rootDir>/test'],
  testRegex: '\\.e2e-spec\\.ts$',
  testEnvironment: 'node',
  testTimeout: 120000,
  maxWorkers: 1,
  globalSetup: '<rootDir>/test/support/demo-models.ts',
  globalTeardown: '<rootDir>/test/support/demo-models-teardown.ts',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
  },
};
