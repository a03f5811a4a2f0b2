// Original file: proto/modelhost/v1/modelhost.proto


export interface PrefetchReply {
  'wanted'?: (string)[];
  'skipped'?: (string)[];
}

export interface PrefetchReply__Output {
  'wanted': (string)[];
  'skipped': (string)[];
}
