/** What a condition's value is once it holds. */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/**
 * Resolves once `condition` holds (is truthy, or resolves truthy); polls every `intervalMs`. Throws naming `what`
 * (and `context()`, e.g. the gateway's log) when `timeoutMs` passes first: a wait never falls through silently.
 * The deadline is generous on purpose: it bounds a hang, it does not claim a latency.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  {
    what,
    timeoutMs = 60_000,
    intervalMs = 100,
    context,
  }: { what: string; timeoutMs?: number; intervalMs?: number; context?: () => string },
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) {
      const detail = context ? `:\n${context().slice(-4000)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
