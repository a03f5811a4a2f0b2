// Original file: proto/modelhost/v1/modelhost.proto


export interface GenerateMemberError {
  'code'?: (string);
  'message'?: (string);
}

export interface GenerateMemberError__Output {
  'code': (string);
  'message': (string);
}
