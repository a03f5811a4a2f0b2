import { registerDecorator, type ValidationArguments, type ValidationOptions } from 'class-validator';

export interface ImageSize {
  readonly width: number;
  readonly height: number;
}

export const MIN_SIDE = 8;
export const MAX_SIDE = 2048;

export type ImageSizeParse = { ok: true; size: ImageSize } | { ok: false; reason: string };

/**
 * "WIDTHxHEIGHT" exactly as IMAGE_SIZE_PATTERN says (the OpenAPI document states the same pattern): ASCII digits,
 * a lowercase x, nothing around them.
 */
export const IMAGE_SIZE_PATTERN = '^([0-9]{1,5})x([0-9]{1,5})$';
const IMAGE_SIZE = new RegExp(IMAGE_SIZE_PATTERN);

/** Parses "WIDTHxHEIGHT"; each side from 8 to 2048 and a multiple of 8 (the VAE's downsampling factor). */
export function parseImageSize(value: unknown): ImageSizeParse {
  const match = typeof value === 'string' ? IMAGE_SIZE.exec(value) : null;
  if (!match) return { ok: false, reason: 'must be WIDTHxHEIGHT, e.g. "512x512"' };
  const [width, height] = [Number(match[1]), Number(match[2])];
  if ([width, height].some((side) => side < MIN_SIDE || side > MAX_SIDE)) {
    return { ok: false, reason: `width and height must each be from ${MIN_SIDE} to ${MAX_SIDE}` };
  }
  if (width % 8 !== 0 || height % 8 !== 0) {
    return { ok: false, reason: 'width and height must both be multiples of 8' };
  }
  return { ok: true, size: { width, height } };
}

export function formatImageSize(size: ImageSize): string {
  return `${size.width}x${size.height}`;
}

/** class-validator decorator for a "WIDTHxHEIGHT" string; its message says what is wrong. */
export function IsImageSize(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'isImageSize',
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => parseImageSize(value).ok,
        defaultMessage: (args?: ValidationArguments) => {
          const parsed = parseImageSize(args?.value);
          return parsed.ok ? 'is not a valid size' : parsed.reason;
        },
      },
    });
  };
}
