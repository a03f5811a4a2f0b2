import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

import { status as Status } from '@grpc/grpc-js';

import { ModelHostError } from '../errors/domain.errors.js';
import { GRPC_ERROR_TABLE } from './grpc-error.mapper.js';

/**
 * The two error tables (docs/ARCHITECTURE.md, "Errors") must agree: every error class the model host raises on
 * purpose has a gRPC code there, and every such code has a row here that applies to any call. The model host's
 * table is read from the model host itself, so adding a class or a code on that side without a row on this side
 * fails here.
 */
const PYTHON = resolve('sidecar/.venv/bin/python');
const DUMP = `
import json
from modelhost.errors import ModelHostError
from modelhost.servicer import STATUS_BY_ERROR

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

def code_of(cls):
    for base in cls.__mro__:
        if base in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[base].name
    return None

print(json.dumps({cls.__name__: code_of(cls) for cls in subclasses(ModelHostError)}))
`;

function modelHostTable(): Record<string, string | null> {
  const out = execFileSync(PYTHON, ['-c', DUMP], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  return JSON.parse(out) as Record<string, string | null>;
}

describe('the model host error table and the gateway error table', () => {
  const table = modelHostTable();

  it('reads the model host table (the classes the model host raises on purpose)', () => {
    expect(Object.keys(table)).toEqual(
      expect.arrayContaining(['ModelFileNotFoundError', 'InvalidModelError', 'OutOfMemoryError', 'NotLoadedError']),
    );
  });

  it.each(Object.entries(table))('%s has a gRPC code and the gateway maps that code for any call', (_name, code) => {
    expect(code).not.toBeNull();
    const grpcCode = Status[code as keyof typeof Status];
    expect(typeof grpcCode).toBe('number');
    const generic = GRPC_ERROR_TABLE.find((rule) => rule.code === grpcCode && rule.rpc === undefined);
    expect(generic).toBeDefined();
    // ModelHostError is the catch-all for codes without a row; INTERNAL is the one code meant to land there.
    if (code !== 'INTERNAL')
      expect(generic?.toError('x', { rpc: 'generate', subject: 'k', timeoutMs: 1 })).not.toBeInstanceOf(ModelHostError);
  });
});
