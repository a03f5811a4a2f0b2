// Original file: proto/modelhost/v1/modelhost.proto


export interface GetMemoryRequest {
}

export interface GetMemoryRequest__Output {
}
