// Original file: proto/modelhost/v1/modelhost.proto

import type { ResidentModel as _modelhost_v1_ResidentModel, ResidentModel__Output as _modelhost_v1_ResidentModel__Output } from '../../modelhost/v1/ResidentModel.js';
import type { Long } from '@grpc/proto-loader';

export interface MemoryStats {
  'device'?: (string);
  'device_name'?: (string);
  'total_bytes'?: (number | string | Long);
  'used_bytes'?: (number | string | Long);
  'available_bytes'?: (number | string | Long);
  'models'?: (_modelhost_v1_ResidentModel)[];
  'reserve_bytes'?: (number | string | Long);
  'ram_tier_bytes'?: (number | string | Long);
  'ram_tier_capacity_bytes'?: (number | string | Long);
}

export interface MemoryStats__Output {
  'device': (string);
  'device_name': (string);
  'total_bytes': (number);
  'used_bytes': (number);
  'available_bytes': (number);
  'models': (_modelhost_v1_ResidentModel__Output)[];
  'reserve_bytes': (number);
  'ram_tier_bytes': (number);
  'ram_tier_capacity_bytes': (number);
}
