import { resolve } from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import type { ProtoGrpcType as HealthProto } from './generated/health.js';
import type { ProtoGrpcType as ModelHostServiceProto } from './generated/modelhost.js';

/** The repository's proto/ folder: four levels up from both apps/gateway/src/model-host and dist/apps/gateway/model-host. */
export const PROTO_ROOT = resolve(import.meta.dirname, '../../../../proto');

/** The options the TypeScript types in generated/ were made with (scripts/gen-proto.sh): they must agree. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export type ModelHostProto = ModelHostServiceProto & HealthProto;

export function loadModelHostProto(): ModelHostProto {
  const definition = protoLoader.loadSync(
    ['modelhost/v1/modelhost.proto', 'grpc/health/v1/health.proto'],
    PROTO_LOADER_OPTIONS,
  );
  return grpc.loadPackageDefinition(definition) as unknown as ModelHostProto;
}
