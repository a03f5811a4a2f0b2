import type { Request } from 'express';

import { SESSION_COOKIE, SESSION_TTL_MS, Sessions, SESSIONS_MAX, sessionToken } from './sessions.js';

const withCookie = (cookie: string | undefined): Request =>
  ({ headers: cookie === undefined ? {} : { cookie } }) as unknown as Request;

describe('Sessions', () => {
  it('maps a fresh random token to its key until the session expires', () => {
    let now = 1_000;
    const sessions = new Sessions(() => now);
    const token = sessions.create('k');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sessions.create('k')).not.toBe(token);
    expect(sessions.keyOf(withCookie(`${SESSION_COOKIE}=${token}`))).toBe('k');
    now += SESSION_TTL_MS;
    expect(sessions.keyOf(withCookie(`${SESSION_COOKIE}=${token}`))).toBeUndefined();
    expect(sessions.size).toBe(1);
  });

  it('drops the oldest session past SESSIONS_MAX', () => {
    const sessions = new Sessions();
    const first = sessions.create('first');
    for (let i = 0; i < SESSIONS_MAX; i++) sessions.create(`k${i}`);
    expect(sessions.size).toBe(SESSIONS_MAX);
    expect(sessions.keyOf(withCookie(`${SESSION_COOKIE}=${first}`))).toBeUndefined();
  });

  it('reads its cookie among others, and nothing from a missing or empty one', () => {
    expect(sessionToken(withCookie(`a=1; ${SESSION_COOKIE}=tok ; b=2`))).toBe('tok');
    expect(sessionToken(withCookie(`x${SESSION_COOKIE}=tok`))).toBeUndefined();
    expect(sessionToken(withCookie(`${SESSION_COOKIE}=`))).toBeUndefined();
    expect(sessionToken(withCookie(undefined))).toBeUndefined();
  });
});
