import { describe, expect, it } from 'vitest';
import { LoginThrottle } from '../../src/access/throttle.js';

describe('login throttle', () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it('lets a few failures pass, then locks the client out for twice as long after each', () => {
    const c = clock();
    const throttle = new LoginThrottle({ now: c.now });
    expect([throttle.failed('a'), throttle.failed('a'), throttle.failed('a')]).toEqual([0, 0, 0]);
    expect(throttle.waitMs('a')).toBe(0);
    expect(throttle.failed('a')).toBe(1000);
    expect(throttle.waitMs('a')).toBe(1000);
    c.advance(400);
    expect(throttle.waitMs('a')).toBe(600);
    c.advance(600);
    expect(throttle.failed('a')).toBe(2000);
    c.advance(2000);
    expect(throttle.failed('a')).toBe(4000);
    // Another client is not affected.
    expect(throttle.waitMs('b')).toBe(0);
  });

  it('caps the wait and clears it on success', () => {
    const c = clock();
    const throttle = new LoginThrottle({ now: c.now, maxDelayMs: 5000 });
    let last = 0;
    for (let i = 0; i < 40; i++) last = throttle.failed('a');
    expect(last).toBe(5000);
    throttle.succeeded('a');
    expect(throttle.waitMs('a')).toBe(0);
    expect(throttle.failed('a')).toBe(0);
  });

  it('forgets clients quiet for long, and never remembers more than its limit', () => {
    const c = clock();
    const throttle = new LoginThrottle({ now: c.now, forgetAfterMs: 10_000, maxClients: 3 });
    for (let i = 0; i < 4; i++) throttle.failed('old');
    c.advance(10_000);
    throttle.failed('new');
    // 'old' starts afresh: its next failures are free again.
    expect(throttle.failed('old')).toBe(0);
    for (const name of ['x', 'y', 'z']) for (let i = 0; i < 5; i++) throttle.failed(name);
    // The quietest ('new', 'old') were dropped to stay at three clients.
    expect(throttle.waitMs('x')).toBeGreaterThan(0);
    expect(throttle.failed('new')).toBe(0);
  });
});
