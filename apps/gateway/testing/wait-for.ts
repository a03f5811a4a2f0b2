/** What a condition's value is once it holds. */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/**
 * Resolves once `condition` holds (is truthy, or resolves truthy); polls every `intervalMs`. Throws naming `what`
 * when `timeoutMs` passes first: a wait never falls through silently. The deadline is generous on purpose: it
 * bounds a hang, it does not claim a latency.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { what, timeoutMs = 10_000, intervalMs = 5 }: { what: string; timeoutMs?: number; intervalMs?: number },
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
