import type { INestApplication } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';

import { ACCESS_EXTENSION, type Access } from '../auth/access.decorator.js';
import { ApiKeys } from '../auth/api-keys.js';
import { CLIP_SKIP_MAX, PREDICTION_TYPES, SAMPLER_NAMES } from '../common/samplers.js';
import { isOpenAiRoute } from '../errors/error-body.renderer.js';
import { toHttpError } from '../errors/http-error.table.js';

/** Swagger UI's path; the JSON document is served at `${DOCS_PATH}-json`. */
export const DOCS_PATH = 'docs';

/** Every error reply's body (errors/http-error.table.ts). */
const ERROR_SCHEMA = {
  type: 'object',
  required: ['error', 'message', 'statusCode'],
  properties: {
    error: { type: 'string', example: 'mode_not_found' },
    message: { type: 'string', example: "Mode 'xyz' not found" },
    statusCode: { type: 'integer', example: 404 },
    problems: {
      type: 'array',
      items: { type: 'string' },
      description: 'an invalid modes file: each problem as "yaml.path: reason"',
      example: ['modes.portraits.loras[1].strength: must be a number'],
    },
  },
};

/** Every error reply's body under /v1: OpenAI's (errors/error-body.renderer.ts). */
const OPENAI_ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string', example: "Mode 'xyz' not found" },
        type: {
          type: 'string',
          enum: ['invalid_request_error', 'rate_limit_error', 'server_error'],
          example: 'invalid_request_error',
        },
        param: { type: 'string', nullable: true, example: 'model', description: 'the request field at fault' },
        code: { type: 'string', nullable: true, example: 'model_not_found' },
      },
    },
  },
};

type Operation = NonNullable<OpenAPIObject['paths'][string]['post']>;
type SchemaOrRef = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];

const LORA_VIEW = {
  type: 'object',
  properties: { path: { type: 'string' }, strength: { type: 'number' }, adapter_name: { type: 'string' } },
};

/**
 * Replies of the modes endpoints (modes/modes.controller.ts), described here when that controller carries no
 * Swagger decorators of its own: the shapes of the spec's GET /api/modes and POST /api/modes/reload.
 */
const MODES_REPLIES: Readonly<
  Record<string, { method: 'get' | 'post'; summary: string; schema: object; errors?: Record<string, string> }>
> = {
  '/api/modes': {
    method: 'get',
    summary: 'The modes of modes.yaml and the default mode',
    schema: {
      type: 'object',
      properties: {
        default_mode: { type: 'string', example: 'sdxl-general' },
        modes: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            properties: {
              model: { type: 'string', example: 'sdxl/sdxl-base-1.0.safetensors' },
              loras: { type: 'array', items: LORA_VIEW },
              default_size: { type: 'string', example: '1024x1024' },
              default_steps: { type: 'integer', example: 30 },
              default_guidance: { type: 'number', example: 7.5 },
              scheduler: {
                type: 'string',
                enum: SAMPLER_NAMES,
                example: 'dpmpp_2m_karras',
                description: "the sampler a request without `scheduler` gets; `default`: the checkpoint's own",
              },
              clip_skip: { type: 'integer', minimum: 1, maximum: CLIP_SKIP_MAX, description: '1 = no skip' },
              prediction_type: { type: 'string', enum: PREDICTION_TYPES },
              vae: { type: 'string', example: 'vae/sdxl-vae-fp16-fix.safetensors' },
              metadata: { type: 'object', additionalProperties: true },
              superres: {
                type: 'object',
                required: ['model'],
                description: "added: the upscaler a request's `superres` applies; absent: the mode has none",
                properties: {
                  model: { type: 'string', example: 'upscalers/4x-UltraSharp.safetensors' },
                  scale: { type: 'number', example: 2, description: "absent: the upscaler's own scale" },
                },
              },
              config: {
                type: 'string',
                example: 'configs/sdxl-base',
                description: 'added: the diffusers config folder the checkpoint is read with; absent: the bundled one',
              },
            },
          },
        },
      },
    },
  },
  '/api/modes/reload': {
    method: 'post',
    summary: 'Reload modes.yaml now; 400 with every problem when it is invalid (the running modes stay)',
    schema: {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['reloaded'] },
        modes_count: { type: 'integer', example: 5 },
        modes: { type: 'array', items: { type: 'string' }, example: ['sdxl-general', 'sdxl-portrait', 'sd15-fast'] },
        default_mode: { type: 'string', example: 'sdxl-general' },
        warnings: {
          type: 'array',
          description:
            'added: what the new file names that is not on disk (the mode stays listed; a request for it answers ' +
            '409 model_file_missing until the file is there)',
          items: {
            type: 'object',
            required: ['path', 'message'],
            properties: {
              path: { type: 'string', example: 'modes.portraits.model' },
              message: { type: 'string', example: 'file not found: /models/sdxl/portrait.safetensors' },
            },
          },
        },
      },
    },
    errors: {
      '400': 'modes.yaml is invalid: every problem with its YAML path; the running modes stay',
      '409': 'the server runs the legacy MODEL_ROOT/MODEL setup: nothing to reload',
    },
  },
};

/** The OpenAPI document of the whole HTTP API, built from the controllers and their DTOs. */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Image generation server')
    .setDescription(
      'Hot-swappable Stable Diffusion modes from modes.yaml. Errors are JSON `{error, message, statusCode}`, ' +
        "never a stack trace; under /v1 (OpenAI's images API) they are OpenAI's `{error: {message, type, param, " +
        'code}}`. Sizes in GB are GiB (bytes / 2^30).',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'a key of API_KEY (or ADMIN_API_KEY)' }, 'bearer')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'the same keys' }, 'api-key')
    .build();
  const document = SwaggerModule.createDocument(app, config);
  document.components = {
    ...document.components,
    schemas: { ...document.components?.schemas, Error: ERROR_SCHEMA, OpenAIError: OPENAI_ERROR_SCHEMA },
  };

  for (const [path, reply] of Object.entries(MODES_REPLIES)) {
    const operation = document.paths[path]?.[reply.method];
    if (!operation) continue;
    operation.summary ??= reply.summary;
    operation.tags = operation.tags?.length ? operation.tags : ['modes'];
    const ok = operation.responses['200'];
    if (!ok || !('content' in ok) || !ok.content) {
      operation.responses['200'] = { description: 'OK', content: { 'application/json': { schema: reply.schema } } };
    }
    for (const [status, description] of Object.entries(reply.errors ?? {})) {
      operation.responses[status] ??= { description };
    }
  }

  stateBodyRules(document);
  stateAccess(document);

  // Every 4xx/5xx reply without a body described has the error body of its route: OpenAI's under /v1, else ours.
  for (const [path, item] of Object.entries(document.paths)) {
    const schema = { $ref: `#/components/schemas/${isOpenAiRoute(path) ? 'OpenAIError' : 'Error'}` };
    for (const operation of [item.get, item.post, item.put, item.delete, item.patch]) {
      for (const [status, response] of Object.entries(operation?.responses ?? {})) {
        if (Number(status) >= 400 && response && !('$ref' in response) && !response.content) {
          response.content = { 'application/json': { schema } };
        }
      }
    }
  }
  return document;
}

/**
 * States what every route enforces on bodies, so that a generated client and a fuzzer see the contract the server
 * keeps: the validation pipe refuses unknown fields (additionalProperties: false), the JSON parser refuses bodies
 * over 100 kB (413), and common/request-body.guard.ts refuses any body but JSON, and any body at all where the
 * route takes none (415).
 */
function stateBodyRules(document: OpenAPIObject): void {
  const schemas = document.components?.schemas ?? {};
  const resolved = (schema: SchemaOrRef | undefined): SchemaOrRef | undefined =>
    schema && '$ref' in schema ? schemas[schema.$ref.split('/').pop() ?? ''] : schema;
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item) as [string, Operation | undefined][]) {
      if (!operation?.responses) continue;
      const body = operation.requestBody;
      if (body && !('$ref' in body)) {
        for (const media of Object.values(body.content)) {
          const schema = resolved(media.schema);
          if (schema && !('$ref' in schema)) schema.additionalProperties = false;
        }
        operation.responses['400'] ??= {
          description: 'the body fails validation: the message names each field and why',
        };
        operation.responses['413'] ??= { description: 'the body is larger than 100 kB' };
        operation.responses['415'] ??= { description: 'the body is not application/json' };
      } else {
        operation.responses['415'] ??= { description: `${method.toUpperCase()} ${path} takes no body` };
      }
    }
  }
}

/**
 * Each operation's security from its access level (auth/access.decorator.ts): public routes need nothing, the rest
 * take either header form, and may answer 401 (and 403 for admin routes). Keys are only enforced when API_KEY or
 * ADMIN_API_KEY is set.
 */
function stateAccess(document: OpenAPIObject): void {
  for (const item of Object.values(document.paths)) {
    for (const operation of [item.get, item.post, item.put, item.delete, item.patch]) {
      if (!operation) continue;
      const extensions = operation as Operation & { [ACCESS_EXTENSION]?: Access };
      const access = extensions[ACCESS_EXTENSION] ?? 'key';
      delete extensions[ACCESS_EXTENSION];
      if (access === 'public') {
        operation.security = [];
        continue;
      }
      operation.security = [{ bearer: [] }, { 'api-key': [] }];
      operation.responses['401'] ??= { description: 'no API key, or not a valid one (when API_KEY is set)' };
      if (access === 'admin') {
        operation.responses['403'] ??= {
          description: 'a valid key that is not an ADMIN_API_KEY key (when that is set)',
        };
      }
    }
  }
}

/** Swagger UI at /docs, the document at /docs-json; both behind the API key when one is set. */
export function setupOpenApi(app: INestApplication): void {
  const keys = app.get(ApiKeys);
  // Swagger's routes are plain Express handlers that Nest's guards never see.
  app.use(
    [`/${DOCS_PATH}`, `/${DOCS_PATH}-json`, `/${DOCS_PATH}-yaml`],
    (request: Request, response: Response, next: NextFunction) => {
      try {
        keys.check(request, 'key');
      } catch (error) {
        const { status, body, headers } = toHttpError(error);
        response.status(status).set(headers).json(body);
        return;
      }
      next();
    },
  );
  SwaggerModule.setup(DOCS_PATH, app, () => createOpenApiDocument(app), {
    jsonDocumentUrl: `${DOCS_PATH}-json`,
    yamlDocumentUrl: `${DOCS_PATH}-yaml`,
  });
}
