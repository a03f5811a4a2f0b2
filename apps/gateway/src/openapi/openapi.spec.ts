import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { SAMPLER_NAMES } from '../common/samplers.js';
import { createOpenApiDocument } from './openapi.js';

describe('the OpenAPI document', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });

  afterAll(() => t.close());

  it('describes every endpoint of the spec, and health', () => {
    const document = createOpenApiDocument(t.app);
    const operations = Object.entries(document.paths).flatMap(([path, item]) =>
      (['get', 'post', 'delete'] as const)
        .filter((method) => item[method])
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(operations.sort()).toEqual(
      [
        'POST /generate',
        'GET /api/events',
        'GET /api/models',
        'POST /api/models/unload',
        'POST /api/jobs',
        'GET /api/jobs',
        'GET /api/jobs/{id}',
        'GET /api/jobs/{id}/events',
        'GET /api/jobs/{id}/image',
        'DELETE /api/jobs/{id}',
        'GET /api/models/status',
        'GET /api/modes',
        'POST /api/modes/switch',
        'POST /api/modes/reload',
        'GET /api/vram',
        'GET /api/session',
        'POST /api/session',
        'DELETE /api/session',
        'GET /health',
        'GET /metrics',
        'GET /ready',
        'POST /v1/images/generations',
        'GET /v1/models',
        'GET /v1/models/{model}',
      ].sort(),
    );
  });

  it('takes the request and reply shapes from the DTOs', () => {
    const document = createOpenApiDocument(t.app);
    const schemas = document.components?.schemas ?? {};
    expect(Object.keys(schemas)).toEqual(
      expect.arrayContaining([
        'GenerateRequestDto',
        'SwitchModeDto',
        'SwitchQueuedDto',
        'ModelsStatusDto',
        'VramDto',
        'JobDto',
        'JobListDto',
        'Error',
      ]),
    );
    expect(schemas['GenerateRequestDto']).toMatchObject({
      required: ['prompt'],
      properties: { size: { type: 'string' }, num_inference_steps: { type: 'integer', minimum: 1, maximum: 1000 } },
    });
    expect(Object.keys((schemas['VramDto'] as { properties: object }).properties)).toEqual(
      expect.arrayContaining([
        'device',
        'total_gb',
        'used_gb',
        'available_gb',
        'usage_percent',
        'models_loaded',
        'models',
      ]),
    );
    const generate = document.paths['/generate']?.post;
    expect(generate?.responses['200']).toMatchObject({ content: { 'image/png': {} } });
    expect(generate?.responses['404']).toMatchObject({
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    });
    expect(document.paths['/api/modes']?.get?.responses['200']).toMatchObject({
      content: { 'application/json': { schema: { properties: { default_mode: {}, modes: {} } } } },
    });
  });

  it('offers the same scheduler names for a request and in the modes listing', () => {
    const document = createOpenApiDocument(t.app);
    expect(document.components?.schemas?.['GenerateRequestDto']).toMatchObject({
      properties: { scheduler: { type: 'string', enum: [...SAMPLER_NAMES] } },
    });
    expect(document.paths['/api/modes']?.get?.responses['200']).toMatchObject({
      content: {
        'application/json': {
          schema: {
            properties: { modes: { additionalProperties: { properties: { scheduler: { enum: SAMPLER_NAMES } } } } },
          },
        },
      },
    });
  });

  it('states what the server enforces on bodies', () => {
    const document = createOpenApiDocument(t.app);
    const schemas = document.components?.schemas ?? {};
    expect(schemas['GenerateRequestDto']).toMatchObject({
      additionalProperties: false,
      required: ['prompt'],
      properties: {
        prompt: { type: 'string', minLength: 1, maxLength: 10_000, pattern: '\\S' },
        mode: { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' },
        size: { pattern: '^([0-9]{1,5})x([0-9]{1,5})$' },
        guidance_scale: { minimum: 0, maximum: 30 },
        seed: { type: 'integer', minimum: 0 },
      },
    });
    expect(schemas['SwitchModeDto']).toMatchObject({ additionalProperties: false, required: ['mode'] });
    const error = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    const generate = document.paths['/generate']?.post?.responses ?? {};
    for (const status of ['400', '404', '413', '415', '429', '500', '503', '504']) {
      expect([status, generate[status]]).toEqual([status, expect.objectContaining(error)]);
    }
    const reload = document.paths['/api/modes/reload']?.post?.responses ?? {};
    expect(reload['415']).toMatchObject({ description: 'POST /api/modes/reload takes no body', ...error });
    expect(reload['413']).toBeUndefined();
    expect(schemas['Error']).toMatchObject({ properties: { problems: { type: 'array' } } });
  });

  it("gives the /v1 routes OpenAI's shapes, their errors included", () => {
    const document = createOpenApiDocument(t.app);
    const schemas = document.components?.schemas ?? {};
    expect(schemas['ImageGenerationRequestDto']).toMatchObject({
      additionalProperties: false,
      required: ['prompt'],
      properties: {
        model: { type: 'string', nullable: true },
        n: { type: 'integer', minimum: 1, maximum: 10 },
        size: { pattern: '^auto$|^([0-9]{1,5})x([0-9]{1,5})$' },
        response_format: { enum: ['b64_json', 'url'] },
        steps: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    });
    expect(Object.keys((schemas['ImageGenerationRequestDto'] as { properties: object }).properties)).not.toContain(
      'output_compression',
    );
    expect(schemas['ImagesResponseDto']).toMatchObject({ required: ['created', 'data'] });
    expect(schemas['ModelListDto']).toMatchObject({ properties: { object: { enum: ['list'] } } });
    const openAiError = { content: { 'application/json': { schema: { $ref: '#/components/schemas/OpenAIError' } } } };
    const generations = document.paths['/v1/images/generations']?.post?.responses ?? {};
    for (const status of ['400', '404', '413', '415', '429', '500', '503', '504']) {
      expect([status, generations[status]]).toEqual([status, expect.objectContaining(openAiError)]);
    }
    expect(document.paths['/v1/models/{model}']?.get?.responses['404']).toMatchObject(openAiError);
    expect(document.paths['/v1/models']?.get?.security).toEqual([{ bearer: [] }, { 'api-key': [] }]);
    expect(schemas['OpenAIError']).toMatchObject({
      required: ['error'],
      properties: { error: { required: ['message', 'type', 'param', 'code'] } },
    });
  });
});
