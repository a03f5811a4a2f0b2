// Original file: proto/modelhost/v1/modelhost.proto

import type { Lora as _modelhost_v1_Lora, Lora__Output as _modelhost_v1_Lora__Output } from '../../modelhost/v1/Lora.js';

export interface LoadModelRequest {
  'key'?: (string);
  'model_path'?: (string);
  'config_dir'?: (string);
  'loras'?: (_modelhost_v1_Lora)[];
  'dtype'?: (string);
  'superres_model'?: (string);
  'superres_scale'?: (number);
  'prediction_type'?: (string);
  'vae_path'?: (string);
  'pinned'?: (boolean);
}

export interface LoadModelRequest__Output {
  'key': (string);
  'model_path': (string);
  'config_dir': (string);
  'loras': (_modelhost_v1_Lora__Output)[];
  'dtype': (string);
  'superres_model': (string);
  'superres_scale': (number);
  'prediction_type': (string);
  'vae_path': (string);
  'pinned': (boolean);
}
