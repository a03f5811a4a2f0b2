import { createHash } from 'node:crypto';

import { modeKey, modeOfKey } from './mode-key.js';

describe('mode keys', () => {
  it('are the name and 12 hex digits that change with the definition only', () => {
    const key = modeKey('sd15-fast', { modelPath: '/m/a.safetensors' });
    expect(key).toMatch(/^sd15-fast-[0-9a-f]{12}$/);
    expect(modeKey('sd15-fast', { modelPath: '/m/a.safetensors' })).toBe(key);
    expect(modeKey('sd15-fast', { modelPath: '/m/b.safetensors' })).not.toBe(key);
  });

  it('hash the JSON of the definition with SHA-256, so that keys stay what they were', () => {
    const loaded = { modelPath: '/m/a.safetensors', loras: [['/m/l.safetensors', 0.8, 'l']] };
    const digest = createHash('sha256').update(JSON.stringify(loaded)).digest('hex');
    expect(modeKey('m', loaded)).toBe(`m-${digest.slice(0, 12)}`);
  });

  it('give back the mode they were made for, dashes and hex-like names included', () => {
    for (const name of ['sdxl-general', 'a', 'beef-cafe', 'x-0123456789ab']) {
      expect(modeOfKey(modeKey(name, { any: 1 }))).toBe(name);
    }
  });
});
