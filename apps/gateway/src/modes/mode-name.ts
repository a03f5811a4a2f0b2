/**
 * What a mode name may be, in modes.yaml and in a request: names travel in headers (X-Mode), logs and the model
 * host's keys. The OpenAPI document states the same pattern.
 */
export const MODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
export const MODE_NAME = new RegExp(MODE_NAME_PATTERN);
export const MODE_NAME_RULE = "may only use letters, digits, '.', '_' and '-', and start with a letter or digit";
