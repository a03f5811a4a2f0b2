import { Fifo } from './fifo.js';

describe('Fifo', () => {
  it('takes items in the order they came, across its compactions', () => {
    const fifo = new Fifo<number>();
    const taken: number[] = [];
    for (let i = 0; i < 5000; i += 1) {
      fifo.push(i);
      if (i % 2 === 1) taken.push(fifo.shift() as number, fifo.shift() as number);
    }
    expect(taken).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(fifo.size).toBe(0);
    expect(fifo.peek()).toBeUndefined();
  });

  it('skips the items that left at the head, and keeps the first that has not', () => {
    const fifo = new Fifo<{ id: number; left: boolean }>();
    for (const [id, left] of [
      [1, true],
      [2, true],
      [3, false],
      [4, true],
    ] as const)
      fifo.push({ id, left });
    expect(fifo.skip((item) => item.left)?.id).toBe(3);
    expect(fifo.size).toBe(2);
    fifo.shift();
    expect(fifo.skip((item) => item.left)).toBeUndefined();
    expect(fifo.size).toBe(0);
  });
});
