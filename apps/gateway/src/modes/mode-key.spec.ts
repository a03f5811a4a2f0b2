import { modeKey, modeOfKey } from './mode-key.js';

describe('mode keys', () => {
  it('are the name and 12 hex digits that change with the definition only', () => {
    const key = modeKey('sd15-fast', { modelPath: '/m/a.safetensors' });
    expect(key).toMatch(/^sd15-fast-[0-9a-f]{12}$/);
    expect(modeKey('sd15-fast', { modelPath: '/m/a.safetensors' })).toBe(key);
    expect(modeKey('sd15-fast', { modelPath: '/m/b.safetensors' })).not.toBe(key);
  });

  it('give back the mode they were made for, dashes and hex-like names included', () => {
    for (const name of ['sdxl-general', 'a', 'beef-cafe', 'x-0123456789ab']) {
      expect(modeOfKey(modeKey(name, { any: 1 }))).toBe(name);
    }
  });
});
