// Original file: proto/modelhost/v1/modelhost.proto

import type { LoadModelRequest as _modelhost_v1_LoadModelRequest, LoadModelRequest__Output as _modelhost_v1_LoadModelRequest__Output } from '../../modelhost/v1/LoadModelRequest.js';

export interface PrefetchRequest {
  'loads'?: (_modelhost_v1_LoadModelRequest)[];
}

export interface PrefetchRequest__Output {
  'loads': (_modelhost_v1_LoadModelRequest__Output)[];
}
