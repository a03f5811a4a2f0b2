// Original file: proto/modelhost/v1/modelhost.proto

import type { GenerateProgress as _modelhost_v1_GenerateProgress, GenerateProgress__Output as _modelhost_v1_GenerateProgress__Output } from '../../modelhost/v1/GenerateProgress.js';
import type { GeneratedImage as _modelhost_v1_GeneratedImage, GeneratedImage__Output as _modelhost_v1_GeneratedImage__Output } from '../../modelhost/v1/GeneratedImage.js';
import type { GenerateMemberCancelled as _modelhost_v1_GenerateMemberCancelled, GenerateMemberCancelled__Output as _modelhost_v1_GenerateMemberCancelled__Output } from '../../modelhost/v1/GenerateMemberCancelled.js';
import type { GenerateMemberError as _modelhost_v1_GenerateMemberError, GenerateMemberError__Output as _modelhost_v1_GenerateMemberError__Output } from '../../modelhost/v1/GenerateMemberError.js';

export interface GenerateBatchEvent {
  'member'?: (number);
  'progress'?: (_modelhost_v1_GenerateProgress | null);
  'image'?: (_modelhost_v1_GeneratedImage | null);
  'cancelled'?: (_modelhost_v1_GenerateMemberCancelled | null);
  'error'?: (_modelhost_v1_GenerateMemberError | null);
  'event'?: "progress"|"image"|"cancelled"|"error";
}

export interface GenerateBatchEvent__Output {
  'member': (number);
  'progress'?: (_modelhost_v1_GenerateProgress__Output | null);
  'image'?: (_modelhost_v1_GeneratedImage__Output | null);
  'cancelled'?: (_modelhost_v1_GenerateMemberCancelled__Output | null);
  'error'?: (_modelhost_v1_GenerateMemberError__Output | null);
  'event'?: "progress"|"image"|"cancelled"|"error";
}
