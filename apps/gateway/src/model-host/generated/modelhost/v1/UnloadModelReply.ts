// Original file: proto/modelhost/v1/modelhost.proto

import type { Long } from '@grpc/proto-loader';

export interface UnloadModelReply {
  'key'?: (string);
  'freed_bytes'?: (number | string | Long);
  'parked'?: (boolean);
}

export interface UnloadModelReply__Output {
  'key': (string);
  'freed_bytes': (number);
  'parked': (boolean);
}
