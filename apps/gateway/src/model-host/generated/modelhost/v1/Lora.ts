// Original file: proto/modelhost/v1/modelhost.proto


export interface Lora {
  'path'?: (string);
  'strength'?: (number | string);
  'adapter_name'?: (string);
}

export interface Lora__Output {
  'path': (string);
  'strength': (number);
  'adapter_name': (string);
}
