// Original file: proto/modelhost/v1/modelhost.proto

import type { ModelFile as _modelhost_v1_ModelFile, ModelFile__Output as _modelhost_v1_ModelFile__Output } from '../../modelhost/v1/ModelFile.js';

export interface ListModelsReply {
  'models'?: (_modelhost_v1_ModelFile)[];
  'roots'?: (string)[];
  'polling'?: (boolean);
}

export interface ListModelsReply__Output {
  'models': (_modelhost_v1_ModelFile__Output)[];
  'roots': (string)[];
  'polling': (boolean);
}
