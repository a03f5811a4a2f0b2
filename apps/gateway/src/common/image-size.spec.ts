import { formatImageSize, parseImageSize } from './image-size.js';

describe('parseImageSize', () => {
  it.each([
    ['512x512', 512, 512],
    ['896x1152', 896, 1152],
    ['8x2048', 8, 2048],
  ])('reads %s', (text, width, height) => {
    expect(parseImageSize(text)).toEqual({ ok: true, size: { width, height } });
  });

  it.each([
    ['64by64', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['512', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['-8x8', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    [512, 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['64X64', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    [' 64x64', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['64x64\n', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['６４x６４', 'must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['60x64', 'width and height must both be multiples of 8'],
    ['0x64', 'width and height must each be from 8 to 2048'],
    ['2056x64', 'width and height must each be from 8 to 2048'],
  ])('refuses %j: %s', (value, reason) => {
    expect(parseImageSize(value)).toEqual({ ok: false, reason });
  });

  it('formats back', () => {
    expect(formatImageSize({ width: 768, height: 512 })).toBe('768x512');
  });
});
