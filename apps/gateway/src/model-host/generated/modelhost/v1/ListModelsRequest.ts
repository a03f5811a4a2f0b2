// Original file: proto/modelhost/v1/modelhost.proto


export interface ListModelsRequest {
}

export interface ListModelsRequest__Output {
}
