// Original file: proto/modelhost/v1/modelhost.proto


export interface GenerateMemberCancelled {
}

export interface GenerateMemberCancelled__Output {
}
