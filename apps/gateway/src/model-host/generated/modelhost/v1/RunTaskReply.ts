// Original file: proto/modelhost/v1/modelhost.proto


export interface RunTaskReply {
  'result_json'?: (string);
}

export interface RunTaskReply__Output {
  'result_json': (string);
}
