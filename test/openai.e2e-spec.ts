import { join } from 'node:path';

import OpenAI from 'openai';
import type { ImageGenerateParamsNonStreaming } from 'openai/resources/images';

import { demoDir } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

const KEY = 'e2e-openai-key';
/** The demo's default mode: loaded at start, so no test here waits for a switch. */
const MODE = 'sdxl-general';

/** OpenAI's parameters plus ours, which its types do not know: the client sends every field it is given. */
type Params = ImageGenerateParamsNonStreaming & { steps?: number; seed?: number; negative_prompt?: string };

/**
 * The official `openai` npm client against the built gateway and a real model host on the demo models, with an
 * API key set as a real deployment would: models listed and retrieved, images as base64 and as URLs, errors as
 * the client's own classes.
 */
describe('the OpenAI-compatible API, through the openai client', () => {
  let gateway: Gateway;
  let client: OpenAI;

  // One step on 64x64: the client and the shapes are under test, not the pictures.
  const generate = (params: Partial<Params>): Promise<OpenAI.ImagesResponse> =>
    client.images.generate({ model: MODE, prompt: 'a lighthouse', size: '64x64', steps: 1, ...params } as Params);

  beforeAll(async () => {
    gateway = await startGateway({ MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0', API_KEY: KEY });
    // No retries: a failure shows as it happened, not after the client's back-off.
    client = new OpenAI({ apiKey: KEY, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
  });

  it('lists the modes as models, and retrieves one', async () => {
    const modes = (await (await fetch(`${gateway.url}/api/modes`, { headers: { 'X-API-Key': KEY } })).json()) as {
      modes: Record<string, unknown>;
    };
    const models: OpenAI.Model[] = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((model) => model.id)).toEqual(Object.keys(modes.modes));
    const created = expect.any(Number) as unknown;
    for (const model of models)
      expect(model).toEqual({ id: model.id, object: 'model', created, owned_by: 'modelhost' });
    const one = await client.models.retrieve(MODE);
    expect(one).toEqual(models.find((model) => model.id === MODE));
  });

  it('generates a PNG of the asked size as b64_json', async () => {
    const response = await generate({ response_format: 'b64_json', size: '64x48', seed: 3 });
    expect(response.data).toHaveLength(1);
    const [image] = response.data ?? [];
    expect(image?.url).toBeUndefined();
    expect(pngSize(Buffer.from(image?.b64_json ?? '', 'base64'))).toEqual({ width: 64, height: 48 });
    expect(response.created).toBeGreaterThan(0);
  });

  it("generates a PNG behind a URL of its job's image, in the default mode when no model is named", async () => {
    const response = await generate({ response_format: 'url', seed: 11, model: undefined });
    const url = response.data?.[0]?.url ?? '';
    expect(url).toMatch(new RegExp(`^${gateway.url}/api/jobs/[0-9a-f-]{36}/image$`));
    // The URL is this server's own API: it takes the same key.
    expect((await fetch(url)).status).toBe(401);
    const image = await fetch(url, { headers: { Authorization: `Bearer ${KEY}` } });
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(image.headers.get('x-mode')).toBe(MODE);
    expect(image.headers.get('x-seed')).toBe('11');
    expect(pngSize(Buffer.from(await image.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });

  it('makes n = 2 different images, seeds seed and seed + 1', async () => {
    const response = await generate({ n: 2, seed: 20 });
    const images = (response.data ?? []).map((image) => Buffer.from(image.b64_json ?? '', 'base64'));
    expect(images).toHaveLength(2);
    for (const png of images) expect(pngSize(png)).toEqual({ width: 64, height: 64 });
    expect(images[0]?.equals(images[1] ?? Buffer.alloc(0))).toBe(false);
    expect((response.data as unknown as { seed: number }[]).map((image) => image.seed)).toEqual([20, 21]);
  });

  it("answers an unknown model with the client's NotFoundError and OpenAI's error shape", async () => {
    const thrown = await generate({ model: 'dall-e-3' }).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(OpenAI.NotFoundError);
    const error = thrown as InstanceType<typeof OpenAI.NotFoundError>;
    expect([error.status, error.type, error.code, error.param]).toEqual([
      404,
      'invalid_request_error',
      'model_not_found',
      'model',
    ]);
    expect(error.error).toEqual({
      message: "Mode 'dall-e-3' not found (modes: sdxl-general, sdxl-portrait, sd15-fast, sd15-detail)",
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
    await expect(client.models.retrieve('dall-e-3')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('answers a bad parameter with BadRequestError naming it, and a wrong key with AuthenticationError', async () => {
    const invalid = await generate({ n: 11 }).catch((error: unknown) => error);
    expect(invalid).toBeInstanceOf(OpenAI.BadRequestError);
    expect((invalid as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('n');
    const stranger = new OpenAI({ apiKey: 'not-the-key', baseURL: `${gateway.url}/v1`, maxRetries: 0 });
    const refused = await stranger.models.list().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
  });
});
