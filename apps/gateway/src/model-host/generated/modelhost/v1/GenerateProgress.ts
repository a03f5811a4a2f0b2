// Original file: proto/modelhost/v1/modelhost.proto


export interface GenerateProgress {
  'step'?: (number);
  'total_steps'?: (number);
  'elapsed_seconds'?: (number | string);
}

export interface GenerateProgress__Output {
  'step': (number);
  'total_steps': (number);
  'elapsed_seconds': (number);
}
