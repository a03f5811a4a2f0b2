import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';

/**
 * Who may call a route when API keys are configured (README "API keys"):
 * - `key` (every route that says nothing): any key of API_KEY or ADMIN_API_KEY;
 * - `admin`: a key of ADMIN_API_KEY when it is set, else any key;
 * - `public`: anyone (liveness and readiness probes);
 * - `metrics`: public when METRICS_PUBLIC=1, else like `key` — for the Prometheus endpoint.
 */
export type Access = 'public' | 'key' | 'admin' | 'metrics';

export const ACCESS_METADATA = 'gateway:access';
/** The same level in the OpenAPI document, where createOpenApiDocument turns it into security requirements. */
export const ACCESS_EXTENSION = 'x-access';

function access(level: Access): MethodDecorator & ClassDecorator {
  return applyDecorators(SetMetadata(ACCESS_METADATA, level), ApiExtension(ACCESS_EXTENSION, level));
}

/** Opens a route (or a whole controller) to callers without a key. Routes are closed unless they say this. */
export const Public = (): MethodDecorator & ClassDecorator => access('public');
/** Routes that change what the server runs for everyone: reload, switch, unload. */
export const Admin = (): MethodDecorator & ClassDecorator => access('admin');
/** The Prometheus scrape endpoint: open or closed by METRICS_PUBLIC. */
export const MetricsAccess = (): MethodDecorator & ClassDecorator => access('metrics');
