// Original file: proto/modelhost/v1/modelhost.proto


export interface SetModelRootsRequest {
  'roots'?: (string)[];
}

export interface SetModelRootsRequest__Output {
  'roots': (string)[];
}
