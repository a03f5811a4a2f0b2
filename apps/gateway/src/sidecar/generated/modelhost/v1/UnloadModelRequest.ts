// Original file: proto/modelhost/v1/modelhost.proto


export interface UnloadModelRequest {
  'key'?: (string);
}

export interface UnloadModelRequest__Output {
  'key': (string);
}
