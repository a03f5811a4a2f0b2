// Original file: proto/modelhost/v1/modelhost.proto

export const LoadSource = {
  LOAD_SOURCE_UNSPECIFIED: 'LOAD_SOURCE_UNSPECIFIED',
  LOAD_SOURCE_DISK: 'LOAD_SOURCE_DISK',
  LOAD_SOURCE_RESIDENT: 'LOAD_SOURCE_RESIDENT',
  LOAD_SOURCE_RAM: 'LOAD_SOURCE_RAM',
  LOAD_SOURCE_SHARED_BASE: 'LOAD_SOURCE_SHARED_BASE',
} as const;

export type LoadSource =
  | 'LOAD_SOURCE_UNSPECIFIED'
  | 0
  | 'LOAD_SOURCE_DISK'
  | 1
  | 'LOAD_SOURCE_RESIDENT'
  | 2
  | 'LOAD_SOURCE_RAM'
  | 3
  | 'LOAD_SOURCE_SHARED_BASE'
  | 4

export type LoadSource__Output = typeof LoadSource[keyof typeof LoadSource]
