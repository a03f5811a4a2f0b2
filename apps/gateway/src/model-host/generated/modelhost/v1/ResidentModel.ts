// Original file: proto/modelhost/v1/modelhost.proto

import type { Lora as _modelhost_v1_Lora, Lora__Output as _modelhost_v1_Lora__Output } from '../../modelhost/v1/Lora.js';
import type { Long } from '@grpc/proto-loader';

export interface ResidentModel {
  'key'?: (string);
  'model_path'?: (string);
  'bytes'?: (number | string | Long);
  'loras'?: (_modelhost_v1_Lora)[];
  'tier'?: (string);
  'last_used_unix_ms'?: (number | string | Long);
  'architecture'?: (string);
  'in_ram_tier'?: (boolean);
  'base_key'?: (string);
  'stale'?: (boolean);
}

export interface ResidentModel__Output {
  'key': (string);
  'model_path': (string);
  'bytes': (number);
  'loras': (_modelhost_v1_Lora__Output)[];
  'tier': (string);
  'last_used_unix_ms': (number);
  'architecture': (string);
  'in_ram_tier': (boolean);
  'base_key': (string);
  'stale': (boolean);
}
