// Original file: proto/modelhost/v1/modelhost.proto

import type { Long } from '@grpc/proto-loader';

export interface GenerateRequest {
  'key'?: (string);
  'prompt'?: (string);
  'negative_prompt'?: (string);
  'width'?: (number);
  'height'?: (number);
  'steps'?: (number);
  'guidance_scale'?: (number | string);
  'seed'?: (number | string | Long);
  'superres'?: (boolean);
  'scheduler'?: (string);
  'clip_skip'?: (number);
}

export interface GenerateRequest__Output {
  'key': (string);
  'prompt': (string);
  'negative_prompt': (string);
  'width': (number);
  'height': (number);
  'steps': (number);
  'guidance_scale': (number);
  'seed': (number);
  'superres': (boolean);
  'scheduler': (string);
  'clip_skip': (number);
}
