// Original file: proto/modelhost/v1/modelhost.proto


export interface SetModelRootsReply {
  'roots'?: (string)[];
}

export interface SetModelRootsReply__Output {
  'roots': (string)[];
}
