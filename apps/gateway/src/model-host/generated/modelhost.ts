import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { GenerateBatchEvent as _modelhost_v1_GenerateBatchEvent, GenerateBatchEvent__Output as _modelhost_v1_GenerateBatchEvent__Output } from './modelhost/v1/GenerateBatchEvent.js';
import type { GenerateBatchMembers as _modelhost_v1_GenerateBatchMembers, GenerateBatchMembers__Output as _modelhost_v1_GenerateBatchMembers__Output } from './modelhost/v1/GenerateBatchMembers.js';
import type { GenerateBatchRequest as _modelhost_v1_GenerateBatchRequest, GenerateBatchRequest__Output as _modelhost_v1_GenerateBatchRequest__Output } from './modelhost/v1/GenerateBatchRequest.js';
import type { GenerateEvent as _modelhost_v1_GenerateEvent, GenerateEvent__Output as _modelhost_v1_GenerateEvent__Output } from './modelhost/v1/GenerateEvent.js';
import type { GenerateMemberCancelled as _modelhost_v1_GenerateMemberCancelled, GenerateMemberCancelled__Output as _modelhost_v1_GenerateMemberCancelled__Output } from './modelhost/v1/GenerateMemberCancelled.js';
import type { GenerateMemberError as _modelhost_v1_GenerateMemberError, GenerateMemberError__Output as _modelhost_v1_GenerateMemberError__Output } from './modelhost/v1/GenerateMemberError.js';
import type { GenerateProgress as _modelhost_v1_GenerateProgress, GenerateProgress__Output as _modelhost_v1_GenerateProgress__Output } from './modelhost/v1/GenerateProgress.js';
import type { GenerateRequest as _modelhost_v1_GenerateRequest, GenerateRequest__Output as _modelhost_v1_GenerateRequest__Output } from './modelhost/v1/GenerateRequest.js';
import type { GeneratedImage as _modelhost_v1_GeneratedImage, GeneratedImage__Output as _modelhost_v1_GeneratedImage__Output } from './modelhost/v1/GeneratedImage.js';
import type { GetMemoryRequest as _modelhost_v1_GetMemoryRequest, GetMemoryRequest__Output as _modelhost_v1_GetMemoryRequest__Output } from './modelhost/v1/GetMemoryRequest.js';
import type { ListModelsReply as _modelhost_v1_ListModelsReply, ListModelsReply__Output as _modelhost_v1_ListModelsReply__Output } from './modelhost/v1/ListModelsReply.js';
import type { ListModelsRequest as _modelhost_v1_ListModelsRequest, ListModelsRequest__Output as _modelhost_v1_ListModelsRequest__Output } from './modelhost/v1/ListModelsRequest.js';
import type { LoadModelReply as _modelhost_v1_LoadModelReply, LoadModelReply__Output as _modelhost_v1_LoadModelReply__Output } from './modelhost/v1/LoadModelReply.js';
import type { LoadModelRequest as _modelhost_v1_LoadModelRequest, LoadModelRequest__Output as _modelhost_v1_LoadModelRequest__Output } from './modelhost/v1/LoadModelRequest.js';
import type { Lora as _modelhost_v1_Lora, Lora__Output as _modelhost_v1_Lora__Output } from './modelhost/v1/Lora.js';
import type { MemoryStats as _modelhost_v1_MemoryStats, MemoryStats__Output as _modelhost_v1_MemoryStats__Output } from './modelhost/v1/MemoryStats.js';
import type { ModelFile as _modelhost_v1_ModelFile, ModelFile__Output as _modelhost_v1_ModelFile__Output } from './modelhost/v1/ModelFile.js';
import type { ModelHostClient as _modelhost_v1_ModelHostClient, ModelHostDefinition as _modelhost_v1_ModelHostDefinition } from './modelhost/v1/ModelHost.js';
import type { PrefetchReply as _modelhost_v1_PrefetchReply, PrefetchReply__Output as _modelhost_v1_PrefetchReply__Output } from './modelhost/v1/PrefetchReply.js';
import type { PrefetchRequest as _modelhost_v1_PrefetchRequest, PrefetchRequest__Output as _modelhost_v1_PrefetchRequest__Output } from './modelhost/v1/PrefetchRequest.js';
import type { ResidentModel as _modelhost_v1_ResidentModel, ResidentModel__Output as _modelhost_v1_ResidentModel__Output } from './modelhost/v1/ResidentModel.js';
import type { RunTaskReply as _modelhost_v1_RunTaskReply, RunTaskReply__Output as _modelhost_v1_RunTaskReply__Output } from './modelhost/v1/RunTaskReply.js';
import type { RunTaskRequest as _modelhost_v1_RunTaskRequest, RunTaskRequest__Output as _modelhost_v1_RunTaskRequest__Output } from './modelhost/v1/RunTaskRequest.js';
import type { SetModelRootsReply as _modelhost_v1_SetModelRootsReply, SetModelRootsReply__Output as _modelhost_v1_SetModelRootsReply__Output } from './modelhost/v1/SetModelRootsReply.js';
import type { SetModelRootsRequest as _modelhost_v1_SetModelRootsRequest, SetModelRootsRequest__Output as _modelhost_v1_SetModelRootsRequest__Output } from './modelhost/v1/SetModelRootsRequest.js';
import type { UnloadModelReply as _modelhost_v1_UnloadModelReply, UnloadModelReply__Output as _modelhost_v1_UnloadModelReply__Output } from './modelhost/v1/UnloadModelReply.js';
import type { UnloadModelRequest as _modelhost_v1_UnloadModelRequest, UnloadModelRequest__Output as _modelhost_v1_UnloadModelRequest__Output } from './modelhost/v1/UnloadModelRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  modelhost: {
    v1: {
      GenerateBatchEvent: MessageTypeDefinition<_modelhost_v1_GenerateBatchEvent, _modelhost_v1_GenerateBatchEvent__Output>
      GenerateBatchMembers: MessageTypeDefinition<_modelhost_v1_GenerateBatchMembers, _modelhost_v1_GenerateBatchMembers__Output>
      GenerateBatchRequest: MessageTypeDefinition<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchRequest__Output>
      GenerateEvent: MessageTypeDefinition<_modelhost_v1_GenerateEvent, _modelhost_v1_GenerateEvent__Output>
      GenerateMemberCancelled: MessageTypeDefinition<_modelhost_v1_GenerateMemberCancelled, _modelhost_v1_GenerateMemberCancelled__Output>
      GenerateMemberError: MessageTypeDefinition<_modelhost_v1_GenerateMemberError, _modelhost_v1_GenerateMemberError__Output>
      GenerateProgress: MessageTypeDefinition<_modelhost_v1_GenerateProgress, _modelhost_v1_GenerateProgress__Output>
      GenerateRequest: MessageTypeDefinition<_modelhost_v1_GenerateRequest, _modelhost_v1_GenerateRequest__Output>
      GeneratedImage: MessageTypeDefinition<_modelhost_v1_GeneratedImage, _modelhost_v1_GeneratedImage__Output>
      GetMemoryRequest: MessageTypeDefinition<_modelhost_v1_GetMemoryRequest, _modelhost_v1_GetMemoryRequest__Output>
      ListModelsReply: MessageTypeDefinition<_modelhost_v1_ListModelsReply, _modelhost_v1_ListModelsReply__Output>
      ListModelsRequest: MessageTypeDefinition<_modelhost_v1_ListModelsRequest, _modelhost_v1_ListModelsRequest__Output>
      LoadModelReply: MessageTypeDefinition<_modelhost_v1_LoadModelReply, _modelhost_v1_LoadModelReply__Output>
      LoadModelRequest: MessageTypeDefinition<_modelhost_v1_LoadModelRequest, _modelhost_v1_LoadModelRequest__Output>
      LoadSource: EnumTypeDefinition
      Lora: MessageTypeDefinition<_modelhost_v1_Lora, _modelhost_v1_Lora__Output>
      MemoryStats: MessageTypeDefinition<_modelhost_v1_MemoryStats, _modelhost_v1_MemoryStats__Output>
      ModelFile: MessageTypeDefinition<_modelhost_v1_ModelFile, _modelhost_v1_ModelFile__Output>
      ModelHost: SubtypeConstructor<typeof grpc.Client, _modelhost_v1_ModelHostClient> & { service: _modelhost_v1_ModelHostDefinition }
      PrefetchReply: MessageTypeDefinition<_modelhost_v1_PrefetchReply, _modelhost_v1_PrefetchReply__Output>
      PrefetchRequest: MessageTypeDefinition<_modelhost_v1_PrefetchRequest, _modelhost_v1_PrefetchRequest__Output>
      ResidentModel: MessageTypeDefinition<_modelhost_v1_ResidentModel, _modelhost_v1_ResidentModel__Output>
      RunTaskReply: MessageTypeDefinition<_modelhost_v1_RunTaskReply, _modelhost_v1_RunTaskReply__Output>
      RunTaskRequest: MessageTypeDefinition<_modelhost_v1_RunTaskRequest, _modelhost_v1_RunTaskRequest__Output>
      SetModelRootsReply: MessageTypeDefinition<_modelhost_v1_SetModelRootsReply, _modelhost_v1_SetModelRootsReply__Output>
      SetModelRootsRequest: MessageTypeDefinition<_modelhost_v1_SetModelRootsRequest, _modelhost_v1_SetModelRootsRequest__Output>
      UnloadModelReply: MessageTypeDefinition<_modelhost_v1_UnloadModelReply, _modelhost_v1_UnloadModelReply__Output>
      UnloadModelRequest: MessageTypeDefinition<_modelhost_v1_UnloadModelRequest, _modelhost_v1_UnloadModelRequest__Output>
    }
  }
}

