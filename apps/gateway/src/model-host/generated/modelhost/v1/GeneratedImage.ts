// Original file: proto/modelhost/v1/modelhost.proto

import type { Long } from '@grpc/proto-loader';

export interface GeneratedImage {
  'png'?: (Buffer | Uint8Array | string);
  'seed'?: (number | string | Long);
  'width'?: (number);
  'height'?: (number);
  'superres_applied'?: (boolean);
}

export interface GeneratedImage__Output {
  'png': (Buffer);
  'seed': (number);
  'width': (number);
  'height': (number);
  'superres_applied': (boolean);
}
