// Original file: proto/modelhost/v1/modelhost.proto


export interface RunTaskRequest {
  'name'?: (string);
  'args_json'?: (string);
}

export interface RunTaskRequest__Output {
  'name': (string);
  'args_json': (string);
}
