import { HAVE_REDIS_SERVER, startRedisServer, type RedisServer } from '../../testing/redis-server.js';
import { loadConfig } from '../config/app-config.js';
import { JobEvents } from './job.events.js';
import { JobStore } from './job.store.js';
import { queueBackendContract } from './queue-backend.contract.js';
import { RedisJobRecords } from './redis-job.records.js';
import { RedisQueueBackend, commandConnection } from './redis-queue.backend.js';

let server: RedisServer;
let made = 0;

if (HAVE_REDIS_SERVER) {
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  // Each test on a prefix of its own, on one redis-server this file starts.
  queueBackendContract('Redis (BullMQ)', async (options) => {
    made += 1;
    const prefix = `contract${made}`;
    const redis = commandConnection(server.url);
    await new Promise((resolve) => redis.once('ready', resolve));
    const store = new JobStore(loadConfig({}), new JobEvents());
    const records = new RedisJobRecords(store, redis, { prefix, origin: 'gateway-a', retentionMs: 60_000 });
    const backend = new RedisQueueBackend(
      { ...options, url: server.url, prefix, lockMs: 30_000, maxStalledCount: 1 },
      records,
      redis,
    );
    await backend.start();
    return {
      backend,
      close: async () => {
        await backend.dispose();
        redis.disconnect();
      },
    };
  });
} else {
  it.skip('QueueBackend contract on Redis: no redis-server on PATH (runner.sh installs Debian’s)', () => undefined);
}
