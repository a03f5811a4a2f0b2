import { JobIndex } from './job-index.js';

describe('JobIndex', () => {
  it('gets, counts and forgets like a Map', () => {
    const index = new JobIndex<string>();
    index.set('a', 'A');
    index.set('b', 'B');
    expect(index.size).toBe(2);
    expect(index.get('a')).toBe('A');
    expect(index.has('b')).toBe(true);

    expect(index.delete('a')).toBe(true);
    expect(index.delete('a')).toBe(false);
    expect(index.delete('never')).toBe(false);
    expect(index.has('a')).toBe(false);
    expect(index.get('a')).toBeUndefined();
    expect(index.size).toBe(1);
    expect([...index.values()]).toEqual(['B']);
  });

  it('adds only where nothing is filed, and takes a value out once', () => {
    const index = new JobIndex<string>();
    expect(index.add('a', 'A')).toBe(true);
    expect(index.add('a', 'other')).toBe(false);
    expect(index.get('a')).toBe('A');
    expect(index.take('a')).toBe('A');
    expect(index.take('a')).toBeUndefined();
    expect(index.size).toBe(0);
    expect(index.add('a', 'A again')).toBe(true);
    expect(index.size).toBe(1);
  });

  it('files the value 0 (a position) as a value', () => {
    const index = new JobIndex<number>();
    index.set('first', 0);
    expect(index.has('first')).toBe(true);
    expect(index.take('first')).toBe(0);
    expect(index.has('first')).toBe(false);
  });

  it('replaces a value in place, without counting it twice', () => {
    const index = new JobIndex<number>();
    index.set('a', 0);
    index.set('b', 1);
    index.set('a', 2);
    expect(index.size).toBe(2);
    expect([...index.entries()]).toEqual([
      ['a', 2],
      ['b', 1],
    ]);
  });

  it('puts a key set again after it went last, as a Map does', () => {
    const index = new JobIndex<string>();
    index.set('a', 'A');
    index.set('b', 'B');
    index.delete('a');
    index.set('a', 'A again');
    expect([...index.entries()]).toEqual([
      ['b', 'B'],
      ['a', 'A again'],
    ]);
    expect(index.size).toBe(2);
  });

  it('keeps its contents and order through a deep queue that drains past 1,024 and fills again', () => {
    const index = new JobIndex<number>();
    const map = new Map<string, number>();
    const fill = (from: number, to: number): void => {
      for (let i = from; i < to; i += 1) {
        index.set(`job-${i}`, i);
        map.set(`job-${i}`, i);
      }
    };
    fill(0, 5000);
    // Every other job leaves while the index is deep, then all but the last 100 of what is left.
    for (let i = 0; i < 5000; i += 2) {
      expect(index.take(`job-${i}`)).toBe(i);
      map.delete(`job-${i}`);
    }
    expect([...index.entries()]).toEqual([...map.entries()]);
    for (const id of [...map.keys()].slice(0, -100)) {
      expect(index.delete(id)).toBe(true);
      map.delete(id);
    }
    fill(5000, 6500);
    expect(index.size).toBe(map.size);
    expect([...index.entries()]).toEqual([...map.entries()]);
  });

  it('keeps its contents and order across the sweeps of thousands of jobs that came and went', () => {
    const index = new JobIndex<number>();
    const map = new Map<string, number>();
    // Waves of 100 in, the oldest 90 out, so that some stay behind each wave while most leave.
    let next = 0;
    for (let wave = 0; wave < 60; wave += 1) {
      for (let i = 0; i < 100; i += 1) {
        const id = `job-${next}`;
        index.set(id, next);
        map.set(id, next);
        next += 1;
      }
      for (const id of [...map.keys()].slice(0, 90)) {
        expect(index.delete(id)).toBe(true);
        map.delete(id);
      }
      expect(index.size).toBe(map.size);
    }
    expect([...index.entries()]).toEqual([...map.entries()]);
    expect(index.get('job-0')).toBeUndefined();
    expect(index.get(`job-${next - 1}`)).toBe(next - 1);
  });
});
