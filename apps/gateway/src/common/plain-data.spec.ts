import { inspectPlainData } from './plain-data.js';

const LIMITS = { maxNodes: 100, maxDepth: 4 };

describe('inspectPlainData', () => {
  it('passes flat and nested data within the bounds, surrogate pairs included', () => {
    expect(inspectPlainData({ a: [1, { b: 'x 😀' }], c: null, d: true }, LIMITS)).toBeUndefined();
    expect(inspectPlainData('text', LIMITS)).toBeUndefined();
  });

  it('counts a shared value once per use, as a deep copy would', () => {
    const shared = Array.from({ length: 10 }, (_, index) => index);
    // The mapping, its 10 keys, and 10 values under each: 111 values, from 10 distinct numbers.
    const data = Object.fromEntries(Array.from({ length: 10 }, (_, index) => [`k${index}`, shared]));
    expect(inspectPlainData(data, { ...LIMITS, maxNodes: 111 })).toBeUndefined();
    expect(inspectPlainData(data, { ...LIMITS, maxNodes: 110 })).toEqual({ kind: 'too_many_nodes' });
  });

  it('stops on a cycle', () => {
    const cycle: unknown[] = [];
    cycle.push(cycle);
    expect(inspectPlainData(cycle, { maxNodes: 1_000_000, maxDepth: 10 })).toEqual({
      kind: 'too_deep',
      path: '[0]'.repeat(10),
    });
    expect(inspectPlainData(cycle, { maxNodes: 50, maxDepth: 1_000 })).toEqual({ kind: 'too_many_nodes' });
  });

  it('names the path that nests too deep', () => {
    expect(inspectPlainData({ a: [[[['x']]]] }, LIMITS)).toEqual({ kind: 'too_deep', path: 'a[0][0][0]' });
    expect(inspectPlainData({ a: [[[[]]]] }, LIMITS)).toBeUndefined();
  });

  it('names a lone surrogate in a value or a key', () => {
    expect(inspectPlainData({ a: ['ok', 'x\ud800'] }, LIMITS)).toEqual({ kind: 'lone_surrogate', path: 'a[1]' });
    expect(inspectPlainData({ a: { ['\udc00']: 1 } }, LIMITS)).toEqual({ kind: 'lone_surrogate', path: 'a.\udc00' });
  });

  it('refuses keys that replace a prototype or a class, except names where names are expected', () => {
    const parsed = JSON.parse('{"a":{"__proto__":{"x":1}}}') as unknown;
    expect(inspectPlainData(parsed, LIMITS)).toEqual({ kind: 'reserved_key', path: 'a.__proto__', key: '__proto__' });
    expect(inspectPlainData({ constructor: 1 }, LIMITS)).toEqual({
      kind: 'reserved_key',
      path: 'constructor',
      key: 'constructor',
    });
    const modes = { modes: { constructor: { model: 'a' }, prototype: { model: 'b' } } };
    expect(inspectPlainData(modes, { ...LIMITS, namesAt: 'modes' })).toBeUndefined();
    const proto = JSON.parse('{"modes":{"__proto__":{"model":"a"}}}') as unknown;
    expect(inspectPlainData(proto, { ...LIMITS, namesAt: 'modes' })).toEqual({
      kind: 'reserved_key',
      path: 'modes.__proto__',
      key: '__proto__',
    });
  });
});
