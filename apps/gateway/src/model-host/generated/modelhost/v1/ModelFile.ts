// Original file: proto/modelhost/v1/modelhost.proto

import type { Long } from '@grpc/proto-loader';

export interface ModelFile {
  'path'?: (string);
  'root'?: (string);
  'architecture'?: (string);
  'format'?: (string);
  'size_bytes'?: (number | string | Long);
  'mtime_unix_ms'?: (number | string | Long);
  'reason'?: (string);
  'resident_keys'?: (string)[];
  'stale'?: (boolean);
}

export interface ModelFile__Output {
  'path': (string);
  'root': (string);
  'architecture': (string);
  'format': (string);
  'size_bytes': (number);
  'mtime_unix_ms': (number);
  'reason': (string);
  'resident_keys': (string)[];
  'stale': (boolean);
}
