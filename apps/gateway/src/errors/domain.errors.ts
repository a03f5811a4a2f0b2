import type { ErrorBody } from './http-error.table.js';

/**
 * The gateway's failures, in its own words. Services throw these; the one
 * exception filter turns them into HTTP through HTTP_ERROR_TABLE.
 */
export abstract class DomainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A request that cannot be served as asked; `problems` are "field: reason" lines. */
export class InvalidRequestError extends DomainError {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

/**
 * A body in a form the route does not take: only `application/json`, or none at all on a route without one.
 * Browsers send forms and text/plain across sites without asking first; JSON they must ask for (CORS preflight).
 */
export class UnsupportedMediaTypeError extends DomainError {}

/** How many of the modes a ModeNotFoundError lists: enough to spot a typo, short enough for one line. */
const MODES_LISTED = 5;

export class ModeNotFoundError extends DomainError {
  /** `known`: the modes there are, the first few of which the message lists after the spec's text. */
  constructor(
    readonly mode: string,
    known: readonly string[] = [],
  ) {
    const listed = known.slice(0, MODES_LISTED).join(', ') + (known.length > MODES_LISTED ? ', …' : '');
    super(`Mode '${mode}' not found${known.length > 0 ? ` (modes: ${listed})` : ''}`);
  }
}

export class QueueFullError extends DomainError {
  constructor(
    readonly queueMax: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`Queue full: ${queueMax} waiting jobs (QUEUE_MAX), retry later`);
  }
}

/** EVENT_STREAMS_MAX event streams are open already: one more would only add to what every event costs. */
export class EventStreamsFullError extends DomainError {
  constructor(
    readonly streamsMax: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`Too many event streams: ${streamsMax} are open (EVENT_STREAMS_MAX), retry later`);
  }
}

/** The model host cannot be reached, is not serving, or is going away. */
export class ModelHostUnavailableError extends DomainError {
  constructor(detail: string) {
    super(`Model host unavailable: ${detail}`);
  }
}

/** The shared queue (QUEUE_BACKEND=redis) cannot be reached: no new work until it is back. */
export class QueueUnavailableError extends DomainError {
  constructor(
    detail: string,
    readonly retryAfterSeconds = 5,
  ) {
    super(`Queue unavailable: ${detail}`);
  }
}

/** A job another gateway ran (a shared queue) failed there: its caller here gets the same reply. */
export class FailedElsewhereError extends DomainError {
  constructor(readonly body: ErrorBody) {
    super(body.message);
  }
}

/** The model host had no device memory left, even after evicting every idle model. */
export class OutOfMemoryError extends DomainError {
  constructor(detail: string) {
    super(`Device out of memory: ${detail}`);
  }
}

export class ModeSwitchTimeoutError extends DomainError {
  /** `detail` says more when the request timed out waiting behind a switch rather than in its own load. */
  constructor(
    readonly mode: string,
    detail?: string,
  ) {
    super(
      detail === undefined ? `Mode switch timed out while loading mode '${mode}'` : `Mode switch timed out: ${detail}`,
    );
  }
}

/** A request waited for its turn longer than QUEUE_TIMEOUT_MS (and not on a mode switch). */
export class QueueTimeoutError extends DomainError {
  constructor(readonly waitedMs: number) {
    super(`Request timed out after waiting ${waitedMs} ms in the queue (QUEUE_TIMEOUT_MS)`);
  }
}

/** A CustomJob named a handler, or RunTask a model host task, that nobody registered. */
export class UnknownTaskError extends DomainError {
  constructor(detail: string) {
    super(`Unknown task: ${detail}`);
  }
}

/** A model host task refused its work in the present state (its own message says why). */
export class TaskFailedError extends DomainError {
  constructor(detail: string) {
    super(`Task failed: ${detail}`);
  }
}

export class GenerationTimeoutError extends DomainError {
  constructor(timeoutMs: number) {
    super(`Generation timed out after ${timeoutMs} ms`);
  }
}

/** The model host refused a mode's files: missing, corrupt, or a format it does not load. */
export class ModelLoadError extends DomainError {
  constructor(
    readonly mode: string,
    detail: string,
  ) {
    super(`Mode '${mode}' could not be loaded: ${detail}`);
  }
}

/** A mode fits on the device only if pinned modes were evicted, which they never are (README, "Memory policy"). */
export class PinnedModelsError extends DomainError {
  constructor(
    readonly mode: string,
    readonly pinnedModes: readonly string[],
    detail: string,
  ) {
    super(
      `Mode '${mode}' cannot be loaded without evicting pinned mode(s) ${pinnedModes.join(', ')}: unpin or unload ` +
        `one of them (POST /api/models/unload). Model host: ${detail}`,
    );
  }
}

/** The model host no longer holds a pipeline the gateway believed resident. */
export class ModelNotLoadedError extends DomainError {
  constructor(detail: string) {
    super(`Model not loaded: ${detail}`);
  }
}

export class JobCancelledError extends DomainError {
  constructor(detail = 'job cancelled') {
    super(detail);
  }
}

/** Any other failure the model host reported (its INTERNAL errors carry no traceback). */
export class ModelHostError extends DomainError {
  constructor(detail: string) {
    super(`Model host error: ${detail}`);
  }
}

/** The gateway got SIGTERM or SIGINT: it takes no new work and answers what still waits. */
export class ShuttingDownError extends DomainError {
  constructor(detail: string) {
    super(`Shutting down: ${detail}`);
  }
}

/** A switch names a mode whose model (or LoRA, or upscaler) file is not on disk. */
export class ModelFileMissingError extends DomainError {
  constructor(
    readonly mode: string,
    readonly path: string,
  ) {
    super(`Mode '${mode}' cannot be loaded: file not found: ${path}`);
  }
}

export class NotReadyError extends DomainError {
  constructor(reason: string) {
    super(`Not ready: ${reason}`);
  }
}

export class ModesFileNotFoundError extends DomainError {
  constructor(readonly path: string) {
    super(`modes.yaml not found: ${path} (write one, or set MODEL_ROOT and MODEL for the legacy single-mode setup)`);
  }
}

/** modes.yaml (or the legacy environment) is invalid; `problems` are "yaml.path: reason" lines. */
export class ModesConfigError extends DomainError {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`Invalid ${source}:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/** The server runs on the legacy MODEL_ROOT/MODEL variables: there is no modes file to reload or switch within. */
export class ModesDisabledError extends DomainError {
  constructor(readonly feature: string) {
    super(
      `${feature} needs a modes.yaml: this server runs the single mode of the legacy MODEL_ROOT/MODEL variables. ` +
        'Write a modes.yaml (see modes.yaml.example) and point MODES_FILE at it to use mode features',
    );
  }
}

/** No API key, or one that is not valid (README "API keys"). */
export class UnauthorizedError extends DomainError {}

/** A valid key that may not call this route: an admin route without an ADMIN_API_KEY key. */
export class ForbiddenError extends DomainError {}

/** No job has this id (never had, or it left the store past JOB_RETENTION_MS / JOB_RETENTION_MAX). */
export class JobNotFoundError extends DomainError {
  constructor(readonly id: string) {
    super(`Job '${id}' not found`);
  }
}

/** The job is not in a state that allows what was asked (its image before it completed, a cancel after it ended). */
export class JobStateConflictError extends DomainError {}

/** The job completed, but its image was dropped to keep JOB_RESULTS_MAX_BYTES. */
export class JobResultExpiredError extends DomainError {
  constructor(readonly id: string) {
    super(`The image of job '${id}' is no longer kept (JOB_RESULTS_MAX_BYTES)`);
  }
}
