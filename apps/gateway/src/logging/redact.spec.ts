import { REDACTED, redactUrl, withoutAbsolutePaths } from './redact.js';

describe('redactUrl', () => {
  it('replaces the value of every key-like query parameter, and keeps the rest as it came', () => {
    expect(redactUrl('/api/modes?api_key=s3cret&limit=2')).toBe(`/api/modes?api_key=${REDACTED}&limit=2`);
    expect(redactUrl('/x?KEY=a&token=b&access_token=c&password=d&sig=e&X-Api-Key=f&q=keep%20me')).toBe(
      `/x?KEY=${REDACTED}&token=${REDACTED}&access_token=${REDACTED}&password=${REDACTED}&sig=${REDACTED}` +
        `&X-Api-Key=${REDACTED}&q=keep%20me`,
    );
    expect(redactUrl('/x?api%5Fkey=s3cret')).toBe(`/x?api%5Fkey=${REDACTED}`);
    expect(redactUrl('/x?%zz=1&flag')).toBe('/x?%zz=1&flag');
  });

  it('leaves a URL without a query alone', () => {
    expect(redactUrl('/api/jobs/key')).toBe('/api/jobs/key');
    expect(redactUrl(undefined)).toBeUndefined();
  });
});

describe('withoutAbsolutePaths', () => {
  it('shortens absolute paths to their last part, and leaves URLs and single names alone', () => {
    expect(withoutAbsolutePaths("file not found: /srv/models/sdxl/base.safetensors (mode 'x')")).toBe(
      "file not found: …/base.safetensors (mode 'x')",
    );
    expect(withoutAbsolutePaths('listening on unix:/tmp/gw-1/host.sock')).toBe('listening on unix:…/host.sock');
    expect(withoutAbsolutePaths('see http://example.com/a/b and GET /ready')).toBe(
      'see http://example.com/a/b and GET /ready',
    );
  });
});
