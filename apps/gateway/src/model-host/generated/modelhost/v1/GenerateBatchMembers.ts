// Original file: proto/modelhost/v1/modelhost.proto

import type { GenerateRequest as _modelhost_v1_GenerateRequest, GenerateRequest__Output as _modelhost_v1_GenerateRequest__Output } from '../../modelhost/v1/GenerateRequest.js';

export interface GenerateBatchMembers {
  'members'?: (_modelhost_v1_GenerateRequest)[];
}

export interface GenerateBatchMembers__Output {
  'members': (_modelhost_v1_GenerateRequest__Output)[];
}
