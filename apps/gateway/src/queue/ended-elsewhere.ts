import { FailedElsewhereError } from '../errors/domain.errors.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import type { Entry } from './job-entry.js';
import type { JobSnapshot } from './job-record.types.js';
import { call, drive, isPromise, type JobRecords } from './queue-backend.js';

/**
 * A job this engine queued ended on another gateway (a shared queue): its caller here gets the outcome from the
 * job's final record. A generation's image is read back from the queue's store; a custom job's value stays where it
 * ran (its caller gets undefined).
 */
export function settleFromRecord(entry: Entry, job: JobSnapshot, records: JobRecords): void {
  if (job.state !== 'completed') {
    entry.reject(new FailedElsewhereError(job.error ?? { error: job.state, message: job.state, statusCode: 500 }));
    return;
  }
  const settled = drive(resultSteps(entry, job, records));
  if (isPromise(settled)) settled.catch((error: unknown) => entry.reject(error));
}

function* resultSteps(entry: Entry, job: JobSnapshot, records: JobRecords): Generator<unknown, void, unknown> {
  const generateMs = job.generate_ms ?? undefined;
  if (entry.job.kind === 'mode-switch') {
    entry.resolve({ value: { mode: entry.job.mode, load: undefined }, generateMs });
    return;
  }
  if (entry.job.kind !== 'generation') {
    entry.resolve({ value: undefined, generateMs });
    return;
  }
  const found = yield* call(records.image(job.id));
  if (found.found !== 'image') throw new Error(`job ${job.id} completed elsewhere, and its image is gone`);
  const { png, seed, superres } = found.image;
  const { width, height } = pngSize(png) ?? entry.job.params;
  const image: GeneratedImage = { png, seed, width, height, superresApplied: superres };
  entry.resolve({ value: image, generateMs });
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG's size from its IHDR (width and height, big-endian, at bytes 16 and 20); undefined for anything else. */
function pngSize(png: Buffer): { width: number; height: number } | undefined {
  if (png.length < 24 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
