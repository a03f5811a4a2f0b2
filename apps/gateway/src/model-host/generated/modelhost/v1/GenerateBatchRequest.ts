// Original file: proto/modelhost/v1/modelhost.proto

import type { GenerateBatchMembers as _modelhost_v1_GenerateBatchMembers, GenerateBatchMembers__Output as _modelhost_v1_GenerateBatchMembers__Output } from '../../modelhost/v1/GenerateBatchMembers.js';

export interface GenerateBatchRequest {
  'batch'?: (_modelhost_v1_GenerateBatchMembers | null);
  'cancel_member'?: (number);
  'request'?: "batch"|"cancel_member";
}

export interface GenerateBatchRequest__Output {
  'batch'?: (_modelhost_v1_GenerateBatchMembers__Output | null);
  'cancel_member'?: (number);
  'request'?: "batch"|"cancel_member";
}
