import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { ValidateIf } from 'class-validator';

import { InvalidRequestError } from '../errors/domain.errors.js';

/**
 * Validator options shared by request bodies and modes.yaml: unknown keys are
 * errors, and each key gets one message. class-validator checks the decorator
 * nearest the property first and stops at the first failure, so the DTOs stack
 * their decorators bottom-up: presence, then type, then range.
 */
export const STRICT_VALIDATION = {
  whitelist: true,
  forbidNonWhitelisted: true,
  stopAtFirstError: true,
} as const;

/**
 * For request fields that may be left out: unlike IsOptional, which also skips null, only an absent field is
 * skipped, so `"mode": null` is checked (and refused) like any other value instead of meaning "absent" here and
 * "null" further on.
 */
export function IsOmittable(): PropertyDecorator {
  return ValidateIf((_object: object, value: unknown) => value !== undefined);
}

// class-validator's own wording for a constraint that takes no message option.
const REWORDED: Readonly<Record<string, string>> = { whitelistValidation: 'unknown field' };

/** Per body class: the names other tools use for its fields (A1111's `steps`, `cfg_scale`, ...) and ours. */
const FIELD_ALIASES = new Map<abstract new () => object, Readonly<Record<string, string>>>();

/**
 * Teaches a body class's unknown-field message the names people bring from other tools: `steps` answers
 * "unknown field; did you mean num_inference_steps?".
 */
export function registerFieldAliases(type: abstract new () => object, aliases: Readonly<Record<string, string>>): void {
  FIELD_ALIASES.set(type, aliases);
}

function unknownFieldHint(error: ValidationError): string {
  const type = (error.target as object | undefined)?.constructor as (abstract new () => object) | undefined;
  const hint = type && FIELD_ALIASES.get(type)?.[error.property.toLowerCase()];
  return hint === undefined ? '' : `; did you mean ${hint}?`;
}

/**
 * Flattens class-validator's tree into "path: reason" lines with YAML-style
 * paths (`modes.portraits.loras[1].strength`). Every decorator in this app
 * gives a message without the field name, so the path is said once, in front.
 */
export function formatValidationErrors(errors: readonly ValidationError[], prefix = ''): string[] {
  return errors.flatMap((error) => {
    const path = joinPath(prefix, error.property);
    const own = Object.entries(error.constraints ?? {}).map(
      ([constraint, message]) =>
        `${path}: ${REWORDED[constraint] ?? message}${constraint === 'whitelistValidation' ? unknownFieldHint(error) : ''}`,
    );
    const children = (error.children ?? []).map((child) =>
      Array.isArray(error.value) ? { ...child, property: `[${child.property}]` } : child,
    );
    return [...own, ...formatValidationErrors(children, path)];
  });
}

function joinPath(prefix: string, property: string): string {
  if (!prefix || property.startsWith('[')) return `${prefix}${property}`;
  return `${prefix}.${property}`;
}

/** The app's one ValidationPipe: a 400 that lists every problem as "field: reason". */
export class RequestValidationPipe extends ValidationPipe {
  constructor() {
    super({
      ...STRICT_VALIDATION,
      transform: true,
      // Our factory sends messages, never the errors themselves; it reads the target's class for its field aliases.
      validationError: { target: true },
      exceptionFactory: (errors: ValidationError[]) => new InvalidRequestError(formatValidationErrors(errors)),
    });
  }

  // A JSON array would otherwise be checked as an object whose fields are "0", "1", ...
  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      throw new InvalidRequestError(['body: must be a JSON object']);
    }
    return super.transform(value, metadata);
  }
}
