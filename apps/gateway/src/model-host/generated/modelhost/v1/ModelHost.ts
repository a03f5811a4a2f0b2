// Original file: proto/modelhost/v1/modelhost.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GenerateBatchEvent as _modelhost_v1_GenerateBatchEvent, GenerateBatchEvent__Output as _modelhost_v1_GenerateBatchEvent__Output } from '../../modelhost/v1/GenerateBatchEvent.js';
import type { GenerateBatchRequest as _modelhost_v1_GenerateBatchRequest, GenerateBatchRequest__Output as _modelhost_v1_GenerateBatchRequest__Output } from '../../modelhost/v1/GenerateBatchRequest.js';
import type { GenerateEvent as _modelhost_v1_GenerateEvent, GenerateEvent__Output as _modelhost_v1_GenerateEvent__Output } from '../../modelhost/v1/GenerateEvent.js';
import type { GenerateRequest as _modelhost_v1_GenerateRequest, GenerateRequest__Output as _modelhost_v1_GenerateRequest__Output } from '../../modelhost/v1/GenerateRequest.js';
import type { GetMemoryRequest as _modelhost_v1_GetMemoryRequest, GetMemoryRequest__Output as _modelhost_v1_GetMemoryRequest__Output } from '../../modelhost/v1/GetMemoryRequest.js';
import type { ListModelsReply as _modelhost_v1_ListModelsReply, ListModelsReply__Output as _modelhost_v1_ListModelsReply__Output } from '../../modelhost/v1/ListModelsReply.js';
import type { ListModelsRequest as _modelhost_v1_ListModelsRequest, ListModelsRequest__Output as _modelhost_v1_ListModelsRequest__Output } from '../../modelhost/v1/ListModelsRequest.js';
import type { LoadModelReply as _modelhost_v1_LoadModelReply, LoadModelReply__Output as _modelhost_v1_LoadModelReply__Output } from '../../modelhost/v1/LoadModelReply.js';
import type { LoadModelRequest as _modelhost_v1_LoadModelRequest, LoadModelRequest__Output as _modelhost_v1_LoadModelRequest__Output } from '../../modelhost/v1/LoadModelRequest.js';
import type { MemoryStats as _modelhost_v1_MemoryStats, MemoryStats__Output as _modelhost_v1_MemoryStats__Output } from '../../modelhost/v1/MemoryStats.js';
import type { PrefetchReply as _modelhost_v1_PrefetchReply, PrefetchReply__Output as _modelhost_v1_PrefetchReply__Output } from '../../modelhost/v1/PrefetchReply.js';
import type { PrefetchRequest as _modelhost_v1_PrefetchRequest, PrefetchRequest__Output as _modelhost_v1_PrefetchRequest__Output } from '../../modelhost/v1/PrefetchRequest.js';
import type { RunTaskReply as _modelhost_v1_RunTaskReply, RunTaskReply__Output as _modelhost_v1_RunTaskReply__Output } from '../../modelhost/v1/RunTaskReply.js';
import type { RunTaskRequest as _modelhost_v1_RunTaskRequest, RunTaskRequest__Output as _modelhost_v1_RunTaskRequest__Output } from '../../modelhost/v1/RunTaskRequest.js';
import type { SetModelRootsReply as _modelhost_v1_SetModelRootsReply, SetModelRootsReply__Output as _modelhost_v1_SetModelRootsReply__Output } from '../../modelhost/v1/SetModelRootsReply.js';
import type { SetModelRootsRequest as _modelhost_v1_SetModelRootsRequest, SetModelRootsRequest__Output as _modelhost_v1_SetModelRootsRequest__Output } from '../../modelhost/v1/SetModelRootsRequest.js';
import type { UnloadModelReply as _modelhost_v1_UnloadModelReply, UnloadModelReply__Output as _modelhost_v1_UnloadModelReply__Output } from '../../modelhost/v1/UnloadModelReply.js';
import type { UnloadModelRequest as _modelhost_v1_UnloadModelRequest, UnloadModelRequest__Output as _modelhost_v1_UnloadModelRequest__Output } from '../../modelhost/v1/UnloadModelRequest.js';

export interface ModelHostClient extends grpc.Client {
  Generate(argument: _modelhost_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_modelhost_v1_GenerateEvent__Output>;
  Generate(argument: _modelhost_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_modelhost_v1_GenerateEvent__Output>;
  generate(argument: _modelhost_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_modelhost_v1_GenerateEvent__Output>;
  generate(argument: _modelhost_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_modelhost_v1_GenerateEvent__Output>;
  
  GenerateBatch(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchEvent__Output>;
  GenerateBatch(options?: grpc.CallOptions): grpc.ClientDuplexStream<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchEvent__Output>;
  generateBatch(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchEvent__Output>;
  generateBatch(options?: grpc.CallOptions): grpc.ClientDuplexStream<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchEvent__Output>;
  
  GetMemory(argument: _modelhost_v1_GetMemoryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  GetMemory(argument: _modelhost_v1_GetMemoryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  GetMemory(argument: _modelhost_v1_GetMemoryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  GetMemory(argument: _modelhost_v1_GetMemoryRequest, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  getMemory(argument: _modelhost_v1_GetMemoryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  getMemory(argument: _modelhost_v1_GetMemoryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  getMemory(argument: _modelhost_v1_GetMemoryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  getMemory(argument: _modelhost_v1_GetMemoryRequest, callback: grpc.requestCallback<_modelhost_v1_MemoryStats__Output>): grpc.ClientUnaryCall;
  
  ListModels(argument: _modelhost_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _modelhost_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _modelhost_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _modelhost_v1_ListModelsRequest, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  listModels(argument: _modelhost_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  listModels(argument: _modelhost_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  listModels(argument: _modelhost_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  listModels(argument: _modelhost_v1_ListModelsRequest, callback: grpc.requestCallback<_modelhost_v1_ListModelsReply__Output>): grpc.ClientUnaryCall;
  
  LoadModel(argument: _modelhost_v1_LoadModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  LoadModel(argument: _modelhost_v1_LoadModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  LoadModel(argument: _modelhost_v1_LoadModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  LoadModel(argument: _modelhost_v1_LoadModelRequest, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  loadModel(argument: _modelhost_v1_LoadModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  loadModel(argument: _modelhost_v1_LoadModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  loadModel(argument: _modelhost_v1_LoadModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  loadModel(argument: _modelhost_v1_LoadModelRequest, callback: grpc.requestCallback<_modelhost_v1_LoadModelReply__Output>): grpc.ClientUnaryCall;
  
  Prefetch(argument: _modelhost_v1_PrefetchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  Prefetch(argument: _modelhost_v1_PrefetchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  Prefetch(argument: _modelhost_v1_PrefetchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  Prefetch(argument: _modelhost_v1_PrefetchRequest, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  prefetch(argument: _modelhost_v1_PrefetchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  prefetch(argument: _modelhost_v1_PrefetchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  prefetch(argument: _modelhost_v1_PrefetchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  prefetch(argument: _modelhost_v1_PrefetchRequest, callback: grpc.requestCallback<_modelhost_v1_PrefetchReply__Output>): grpc.ClientUnaryCall;
  
  RunTask(argument: _modelhost_v1_RunTaskRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  RunTask(argument: _modelhost_v1_RunTaskRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  RunTask(argument: _modelhost_v1_RunTaskRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  RunTask(argument: _modelhost_v1_RunTaskRequest, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  runTask(argument: _modelhost_v1_RunTaskRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  runTask(argument: _modelhost_v1_RunTaskRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  runTask(argument: _modelhost_v1_RunTaskRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  runTask(argument: _modelhost_v1_RunTaskRequest, callback: grpc.requestCallback<_modelhost_v1_RunTaskReply__Output>): grpc.ClientUnaryCall;
  
  SetModelRoots(argument: _modelhost_v1_SetModelRootsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  SetModelRoots(argument: _modelhost_v1_SetModelRootsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  SetModelRoots(argument: _modelhost_v1_SetModelRootsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  SetModelRoots(argument: _modelhost_v1_SetModelRootsRequest, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  setModelRoots(argument: _modelhost_v1_SetModelRootsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  setModelRoots(argument: _modelhost_v1_SetModelRootsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  setModelRoots(argument: _modelhost_v1_SetModelRootsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  setModelRoots(argument: _modelhost_v1_SetModelRootsRequest, callback: grpc.requestCallback<_modelhost_v1_SetModelRootsReply__Output>): grpc.ClientUnaryCall;
  
  UnloadModel(argument: _modelhost_v1_UnloadModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  UnloadModel(argument: _modelhost_v1_UnloadModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  UnloadModel(argument: _modelhost_v1_UnloadModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  UnloadModel(argument: _modelhost_v1_UnloadModelRequest, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  unloadModel(argument: _modelhost_v1_UnloadModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  unloadModel(argument: _modelhost_v1_UnloadModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  unloadModel(argument: _modelhost_v1_UnloadModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  unloadModel(argument: _modelhost_v1_UnloadModelRequest, callback: grpc.requestCallback<_modelhost_v1_UnloadModelReply__Output>): grpc.ClientUnaryCall;
  
}

export interface ModelHostHandlers extends grpc.UntypedServiceImplementation {
  Generate: grpc.handleServerStreamingCall<_modelhost_v1_GenerateRequest__Output, _modelhost_v1_GenerateEvent>;
  
  GenerateBatch: grpc.handleBidiStreamingCall<_modelhost_v1_GenerateBatchRequest__Output, _modelhost_v1_GenerateBatchEvent>;
  
  GetMemory: grpc.handleUnaryCall<_modelhost_v1_GetMemoryRequest__Output, _modelhost_v1_MemoryStats>;
  
  ListModels: grpc.handleUnaryCall<_modelhost_v1_ListModelsRequest__Output, _modelhost_v1_ListModelsReply>;
  
  LoadModel: grpc.handleUnaryCall<_modelhost_v1_LoadModelRequest__Output, _modelhost_v1_LoadModelReply>;
  
  Prefetch: grpc.handleUnaryCall<_modelhost_v1_PrefetchRequest__Output, _modelhost_v1_PrefetchReply>;
  
  RunTask: grpc.handleUnaryCall<_modelhost_v1_RunTaskRequest__Output, _modelhost_v1_RunTaskReply>;
  
  SetModelRoots: grpc.handleUnaryCall<_modelhost_v1_SetModelRootsRequest__Output, _modelhost_v1_SetModelRootsReply>;
  
  UnloadModel: grpc.handleUnaryCall<_modelhost_v1_UnloadModelRequest__Output, _modelhost_v1_UnloadModelReply>;
  
}

export interface ModelHostDefinition extends grpc.ServiceDefinition {
  Generate: MethodDefinition<_modelhost_v1_GenerateRequest, _modelhost_v1_GenerateEvent, _modelhost_v1_GenerateRequest__Output, _modelhost_v1_GenerateEvent__Output>
  GenerateBatch: MethodDefinition<_modelhost_v1_GenerateBatchRequest, _modelhost_v1_GenerateBatchEvent, _modelhost_v1_GenerateBatchRequest__Output, _modelhost_v1_GenerateBatchEvent__Output>
  GetMemory: MethodDefinition<_modelhost_v1_GetMemoryRequest, _modelhost_v1_MemoryStats, _modelhost_v1_GetMemoryRequest__Output, _modelhost_v1_MemoryStats__Output>
  ListModels: MethodDefinition<_modelhost_v1_ListModelsRequest, _modelhost_v1_ListModelsReply, _modelhost_v1_ListModelsRequest__Output, _modelhost_v1_ListModelsReply__Output>
  LoadModel: MethodDefinition<_modelhost_v1_LoadModelRequest, _modelhost_v1_LoadModelReply, _modelhost_v1_LoadModelRequest__Output, _modelhost_v1_LoadModelReply__Output>
  Prefetch: MethodDefinition<_modelhost_v1_PrefetchRequest, _modelhost_v1_PrefetchReply, _modelhost_v1_PrefetchRequest__Output, _modelhost_v1_PrefetchReply__Output>
  RunTask: MethodDefinition<_modelhost_v1_RunTaskRequest, _modelhost_v1_RunTaskReply, _modelhost_v1_RunTaskRequest__Output, _modelhost_v1_RunTaskReply__Output>
  SetModelRoots: MethodDefinition<_modelhost_v1_SetModelRootsRequest, _modelhost_v1_SetModelRootsReply, _modelhost_v1_SetModelRootsRequest__Output, _modelhost_v1_SetModelRootsReply__Output>
  UnloadModel: MethodDefinition<_modelhost_v1_UnloadModelRequest, _modelhost_v1_UnloadModelReply, _modelhost_v1_UnloadModelRequest__Output, _modelhost_v1_UnloadModelReply__Output>
}
