// Original file: proto/modelhost/v1/modelhost.proto

import type { LoadSource as _modelhost_v1_LoadSource, LoadSource__Output as _modelhost_v1_LoadSource__Output } from '../../modelhost/v1/LoadSource.js';
import type { Long } from '@grpc/proto-loader';

export interface LoadModelReply {
  'key'?: (string);
  'architecture'?: (string);
  'bytes'?: (number | string | Long);
  'estimated_bytes'?: (number | string | Long);
  'load_seconds'?: (number | string);
  'source'?: (_modelhost_v1_LoadSource);
  'evicted'?: (string)[];
  'device'?: (string);
  'evicted_to_ram'?: (string)[];
  'evicted_on_oom'?: (string)[];
  'prefetched'?: (boolean);
}

export interface LoadModelReply__Output {
  'key': (string);
  'architecture': (string);
  'bytes': (number);
  'estimated_bytes': (number);
  'load_seconds': (number);
  'source': (_modelhost_v1_LoadSource__Output);
  'evicted': (string)[];
  'device': (string);
  'evicted_to_ram': (string)[];
  'evicted_on_oom': (string)[];
  'prefetched': (boolean);
}
