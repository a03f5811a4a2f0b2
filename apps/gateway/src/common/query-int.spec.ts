import { plainToInstance } from 'class-transformer';
import { IsInt } from 'class-validator';
import { validateSync } from 'class-validator';

import { QueryInt } from './query-int.js';

class Query {
  @IsInt()
  @QueryInt()
  limit?: unknown;
}

const read = (limit: unknown): unknown => plainToInstance(Query, { limit }).limit;

describe('QueryInt', () => {
  it('reads plain decimal integers', () => {
    expect(read('12')).toBe(12);
    expect(read('-3')).toBe(-3);
    expect(read('007')).toBe(7);
  });

  it('leaves anything else as it came, for @IsInt() to refuse: what Number() would read too', () => {
    for (const text of ['1e2', '0x10', '0b11', '0o7', ' 5', '5 ', '5.0', '', 'Infinity', '+5', '1_000']) {
      expect(read(text)).toBe(text);
      expect(validateSync(plainToInstance(Query, { limit: text }))).toHaveLength(1);
    }
    expect(read(['1', '2'])).toEqual(['1', '2']);
  });
});
