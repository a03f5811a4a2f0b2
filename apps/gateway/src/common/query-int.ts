import { Transform } from 'class-transformer';

/** What a query-string integer may be written as: decimal digits, an optional minus; nothing Number() also reads. */
const DECIMAL_INTEGER = /^-?\d{1,15}$/;

/**
 * A query-string integer, read strictly: `Number()` would take `1e2`, `0x10`, `0b11`, ` 5` and `''` as numbers. A
 * value that is not plain decimal stays a string, so the property's @IsInt() refuses it with its own message.
 */
export function QueryInt(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && DECIMAL_INTEGER.test(value) ? Number(value) : value,
  );
}
