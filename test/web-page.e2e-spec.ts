import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

import { demoDir, ROOT } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

/** Debian's package (.ci/run installs it); CHROMIUM_PATH names another build. Playwright's own download is never used. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of each run, kept as test artifacts (ignored by git). */
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'web');
const API_KEY = 'web-e2e-key-0123456789';
const STREAM_MS = 4000;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const available = executable(CHROMIUM);
if (!available) {
  console.warn(
    `SKIPPED web page browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
}

/** The fields of an <img> the tests read. */
type Loaded = { complete: boolean; naturalWidth: number; naturalHeight: number };

interface ModesYaml {
  default_mode: string;
  modes: Record<string, Record<string, unknown>>;
}

/**
 * The web page in a real Chromium, against the built gateway (behind API_KEY) and the real model host it spawns, on
 * the demo models. Every wait is for what the page shows; the page is never reloaded after it opened.
 */
(available ? describe : describe.skip)('the web page in Chromium', () => {
  let folder: string;
  let modesFile: string;
  let original: ModesYaml;
  let gateway: Gateway;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    folder = mkdtempSync(join(tmpdir(), 'e2e-web-'));
    modesFile = join(folder, 'modes.yaml');
    original = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as ModesYaml;
    writeFileSync(modesFile, dump(original));
    [gateway, browser] = await Promise.all([
      // Each event stream ends after EVENTS_STREAM_MAX_MS: the page reconnects all through the run, and every test
      // below sees what it waits for only if the reconnects with Last-Event-ID miss nothing.
      startGateway({ MODES_FILE: modesFile, API_KEY, EVENTS_STREAM_MAX_MS: String(STREAM_MS) }),
      chromium.launch({
        executablePath: CHROMIUM,
        // As root (CI containers) Chromium refuses to start with its sandbox.
        args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
      }),
    ]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  /** A fresh browser profile on the page: no cookie yet. */
  async function openPage(width = 1280): Promise<Page> {
    context = await browser.newContext({ viewport: { width, height: 900 } });
    const opened = await context.newPage();
    opened.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await opened.goto(`${gateway.url}/`);
    return opened;
  }

  async function logIn(target: Page, key = API_KEY): Promise<void> {
    await target.getByLabel('API key').fill(key);
    await target.getByRole('button', { name: 'Log in' }).click();
  }

  /** A page logged in, its event stream open. */
  async function openLoggedIn(): Promise<Page> {
    const opened = await openPage();
    await logIn(opened);
    await opened.getByTestId('feed-state').filter({ hasText: 'live' }).waitFor();
    // Reloading the page would clear this: the tests below check it is still there.
    await opened.evaluate('window.marker = 1');
    return opened;
  }

  /**
   * Records each value the expression `read` gives as the page's DOM changes, in the page (`seen` reads it back): a
   * state that lasts a moment is caught however briefly it shows. Browser code goes as text: the tests' TypeScript has
   * no DOM types.
   */
  async function record(target: Page, name: string, read: string): Promise<void> {
    await target.evaluate(`(() => {
      const values = (window[${JSON.stringify(name)}] = []);
      const note = () => {
        const value = ${read};
        if (value !== null && values.at(-1) !== value) values.push(value);
      };
      note();
      new MutationObserver(note).observe(document.body, {
        subtree: true, childList: true, attributes: true, characterData: true,
      });
    })()`);
  }

  const seen = (target: Page, name: string): Promise<string[]> =>
    target.evaluate(`window[${JSON.stringify(name)}] ?? []`);

  /** What the page set on `window.marker` when it opened: gone if anything reloaded it. */
  const marker = (target: Page): Promise<unknown> => target.evaluate('window.marker');

  async function fillForm(target: Page, fields: { mode: string; prompt: string; steps: number }): Promise<void> {
    await target.getByLabel('Mode', { exact: true }).selectOption(fields.mode);
    await target.getByLabel('Prompt', { exact: true }).fill(fields.prompt);
    await target.getByLabel('Steps', { exact: true }).fill(String(fields.steps));
  }

  afterEach(async () => {
    const name = expect.getState().currentTestName ?? 'test';
    await page
      ?.screenshot({ path: join(ARTIFACTS, `${name.replace(/[^\w]+/g, '-')}.png`), fullPage: true })
      .catch(() => undefined);
    await context?.close();
  });

  it('asks for the key, refuses a wrong one, then works with the right one through an HttpOnly cookie', async () => {
    page = await openPage();
    await page.getByLabel('API key').waitFor();
    await expect(page.getByRole('button', { name: 'Generate' }).count()).resolves.toBe(0);
    await logIn(page, 'not-the-key');
    await page.getByRole('alert').filter({ hasText: 'the API key is not valid' }).waitFor();
    expect(await context.cookies()).toEqual([]);

    await logIn(page);
    await page.getByRole('button', { name: 'Generate' }).waitFor();
    await page.getByTestId('feed-state').filter({ hasText: 'live' }).waitFor();
    await expect(page.getByLabel('Mode', { exact: true }).locator('option').allTextContents()).resolves.toEqual(
      Object.keys(original.modes),
    );
    const [cookie, ...others] = await context.cookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ name: 'modelhost_session', httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie?.value).not.toContain(API_KEY);
    // Neither the key nor the session's token reaches a URL or the log.
    expect(gateway.logs()).not.toContain(API_KEY);
    expect(gateway.logs()).not.toContain(cookie?.value);
  });

  it('reconnects when the stream ends, and shows what happened meanwhile: replayed after Last-Event-ID', async () => {
    page = await openLoggedIn();
    // The streams the page opens from now on: when, and with which Last-Event-ID.
    const streams: { at: number; lastEventId: Promise<string | undefined> }[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname !== '/api/events') return;
      streams.push({ at: Date.now(), lastEventId: request.allHeaders().then((headers) => headers['last-event-id']) });
    });
    const streamEnds = (): Promise<unknown> =>
      page.waitForEvent('requestfinished', {
        predicate: (request) => new URL(request.url()).pathname === '/api/events',
        timeout: STREAM_MS * 3,
      });
    /** Queues a one-step job behind the page's back (its cookie, not its form) and waits until the page shows it. */
    const jobShown = async (prompt: string): Promise<number> => {
      const response = await context.request.post(`${gateway.url}/api/jobs`, {
        data: { mode: 'sdxl-general', prompt, num_inference_steps: 1 },
      });
      expect(response.status()).toBe(202);
      const postedAt = Date.now();
      const { id } = (await response.json()) as { id: string };
      await page.locator(`.gallery li[data-job-id="${id}"][data-state="completed"]`).waitFor();
      return postedAt;
    };

    // Queued while the page is away, before it has seen any event (it has no id to resume from): it reads the
    // state again once the stream is back.
    await streamEnds();
    await jobShown('while the page was away, first');
    // Seen live: the page now holds an event id.
    await jobShown('while the page watched');
    await streamEnds();
    const postedAt = await jobShown('while the page was away, again');
    // The page had not reconnected when the job was queued: the stream that brought it was opened after, and asked
    // for what came after the last event the page had.
    const reconnect = streams.find((stream) => stream.at > postedAt);
    expect(reconnect).toBeDefined();
    await expect(reconnect?.lastEventId).resolves.toMatch(/^\d+$/);
  });

  it('generates a 64x64 image: the progress bar advances step by step, then the image shows', async () => {
    page = await openLoggedIn();
    const steps = 6;
    await fillForm(page, { mode: 'sd15-fast', prompt: 'a lighthouse at dusk', steps });
    await expect(page.getByLabel('Size', { exact: true }).inputValue()).resolves.toBe('64x64');
    await record(page, 'steps', `document.querySelector('.result progress')?.getAttribute('data-step') ?? null`);
    await record(page, 'feed', `document.querySelector('[data-testid="feed-state"]')?.textContent ?? null`);
    await page.getByRole('button', { name: 'Generate' }).click();

    const image = page.getByAltText('Generated image');
    await image.waitFor();
    await waitFor(() => image.evaluate((img: Loaded) => img.complete && img.naturalWidth > 0), {
      what: 'the image to load',
    });
    expect(await image.evaluate((img: Loaded) => [img.naturalWidth, img.naturalHeight])).toEqual([64, 64]);
    const advanced = (await seen(page, 'steps')).filter((step) => step !== '0').map(Number);
    if ((await seen(page, 'feed')).includes('reconnecting')) {
      // The stream ended meanwhile (STREAM_MS): the steps missed came back in one replay, which the page may draw
      // as one move. Still forward only, to the last step.
      expect(advanced).toEqual([...advanced].sort((a, b) => a - b));
      expect(new Set(advanced).size).toBe(advanced.length);
      expect(advanced.at(-1)).toBe(steps);
    } else {
      expect(advanced).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    }
    await expect(page.locator('.result .switch').textContent()).resolves.toContain('→ sd15-fast');
    await expect(page.locator('.params').textContent()).resolves.toContain('a lighthouse at dusk');
    await page.getByRole('button', { name: 'Copy as curl' }).waitFor();
  });

  it('cancels a long job from the queue panel: it shows cancelled and the next job runs', async () => {
    page = await openLoggedIn();
    await fillForm(page, { mode: 'sd15-detail', prompt: 'a long one', steps: 1000 });
    await page.getByRole('button', { name: 'Generate' }).click();
    const long = page.locator('table.jobs tr[data-state="running"]');
    await long.waitFor();
    const longId = await long.getAttribute('data-job-id');
    await fillForm(page, { mode: 'sd15-detail', prompt: 'the next one', steps: 3 });
    await page.getByRole('button', { name: 'Generate' }).click();
    const next = page.locator('table.jobs tr[data-state="queued"]');
    await next.waitFor();
    const nextId = await next.getAttribute('data-job-id');
    expect(nextId).not.toBe(longId);

    await page.getByRole('button', { name: `Cancel job ${longId}` }).click();
    await page.locator(`.gallery li[data-job-id="${longId}"][data-state="cancelled"]`).waitFor();
    await page.locator(`.gallery li[data-job-id="${nextId}"][data-state="completed"]`).waitFor();
    await page.getByAltText('Generated image').waitFor();
  });

  it('shows a new mode of modes.yaml in the picker without a reload, and a broken file with its YAML path', async () => {
    page = await openLoggedIn();
    const added: ModesYaml = {
      ...original,
      modes: { ...original.modes, 'web-added': { ...original.modes['sd15-fast'], scheduler: 'euler' } },
    };
    writeFileSync(modesFile, dump(added));
    await page
      .getByLabel('Mode', { exact: true })
      .getByRole('option', { name: 'web-added', exact: true })
      .waitFor({ state: 'attached' });

    const broken = JSON.parse(JSON.stringify(added)) as ModesYaml;
    broken.modes['web-added'].default_steps = 'many';
    writeFileSync(modesFile, dump(broken));
    const alert = page.locator('.rejected');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toContain('modes.web-added.default_steps');

    // The running modes stay, and serve.
    await fillForm(page, { mode: 'web-added', prompt: 'still here', steps: 2 });
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.getByAltText('Generated image').waitFor();
    await expect(marker(page)).resolves.toBe(1);

    // A good file clears the error.
    writeFileSync(modesFile, dump(original));
    await alert.waitFor({ state: 'detached' });
    await page
      .getByLabel('Mode', { exact: true })
      .getByRole('option', { name: 'web-added', exact: true })
      .waitFor({ state: 'detached' });
  });

  it('unloads a mode from the memory panel: the bar shrinks', async () => {
    page = await openLoggedIn();
    const bar = page.locator('.host .bar');
    const segment = bar.locator('.segment[data-mode="sd15-detail"]');
    await segment.waitFor();
    const modelBytes = async (): Promise<number> => Number(await bar.getAttribute('data-models-bytes'));
    const before = await modelBytes();
    const unloaded = Number(await segment.getAttribute('data-bytes'));
    expect(unloaded).toBeGreaterThan(0);
    expect((await segment.boundingBox())?.width).toBeGreaterThan(0);

    await page.getByRole('button', { name: 'Unload sd15-detail' }).click();
    await segment.waitFor({ state: 'detached' });
    // By the bytes the mode held: sd15-detail's LoRA, its base being shared with sd15-fast, which stays.
    await waitFor(async () => (await modelBytes()) === before - unloaded, { what: 'the bar to shrink' });
    await expect(page.locator('table.models tr[data-mode="sd15-detail"]').count()).resolves.toBe(0);
  });

  it('shows the model host lost when it is killed, and back once it serves again', async () => {
    page = await openLoggedIn();
    const state = page.locator('.host [data-testid="host-state"]');
    await expect(state.textContent()).resolves.toBe('serving');
    await record(page, 'states', `document.querySelector('.host [data-testid="host-state"]')?.textContent ?? null`);
    await record(page, 'feed', `document.querySelector('[data-testid="feed-state"]')?.textContent ?? null`);
    const pid = Number([...gateway.logs().matchAll(/model host started \(pid (\d+)\)/g)].at(-1)?.[1]);
    expect(pid).toBeGreaterThan(0);

    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () => (await seen(page, 'states')).length >= 3 && (await seen(page, 'states')).at(-1) === 'serving',
      {
        what: 'the page to show the model host gone, then serving again',
        timeoutMs: 120_000,
        context: () => gateway.logs(),
      },
    );
    const states = await seen(page, 'states');
    expect(states[0]).toBe('serving');
    // Lost, then recovering (its restart), then serving. A stream that ended meanwhile (STREAM_MS) brings the
    // states missed in one replay, which the page may draw as one change: then 'lost' may not show by itself.
    if ((await seen(page, 'feed')).includes('reconnecting')) {
      expect(states.slice(1, -1).length).toBeGreaterThan(0);
      expect(states.slice(1, -1).every((shown) => shown === 'lost' || shown === 'recovering')).toBe(true);
    } else {
      expect(states).toEqual(['serving', 'lost', 'recovering', 'serving']);
    }
    await expect(marker(page)).resolves.toBe(1);
  }, 180_000);
});
