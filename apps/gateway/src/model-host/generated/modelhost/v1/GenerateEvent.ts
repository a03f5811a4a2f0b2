// Original file: proto/modelhost/v1/modelhost.proto

import type { GenerateProgress as _modelhost_v1_GenerateProgress, GenerateProgress__Output as _modelhost_v1_GenerateProgress__Output } from '../../modelhost/v1/GenerateProgress.js';
import type { GeneratedImage as _modelhost_v1_GeneratedImage, GeneratedImage__Output as _modelhost_v1_GeneratedImage__Output } from '../../modelhost/v1/GeneratedImage.js';

export interface GenerateEvent {
  'progress'?: (_modelhost_v1_GenerateProgress | null);
  'image'?: (_modelhost_v1_GeneratedImage | null);
  'event'?: "progress"|"image";
}

export interface GenerateEvent__Output {
  'progress'?: (_modelhost_v1_GenerateProgress__Output | null);
  'image'?: (_modelhost_v1_GeneratedImage__Output | null);
  'event'?: "progress"|"image";
}
