// Original file: proto/modelhost/v1/modelhost.proto


export interface UnloadModelRequest {
  'key'?: (string);
  'to_ram_tier'?: (boolean);
}

export interface UnloadModelRequest__Output {
  'key': (string);
  'to_ram_tier': (boolean);
}
