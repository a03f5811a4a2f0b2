// Unit tests: the specs beside the gateway's code. The gateway is ESM (Nest 12
// ships only ES modules), so jest runs in its ESM mode: see the `test` script.
/** @type {import('jest').Config} */
module.exports = {
  rootDir: '.',
  roots: ['<rootDir>/apps'],
  testRegex: '\\.spec\\.ts$',
  testEnvironment: 'node',
  setupFilesAfterEnv: ['<rootDir>/apps/gateway/jest.setup.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  // Sources import './x.js' as Node's ESM rules require; jest finds the .ts.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.json' }],
  },
};
