import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { GREY_LEVELS, maxPixelDifference } from './support/image-compare';
import { jobFinished, jobRecord, submitJob, type JobRecord } from './support/jobs';
import { waitFor } from './support/wait-for';

interface HostView {
  id: string;
  device: string;
  state: string;
  vram: { total_gb: number; models: { name: string; host: string }[] } | null;
  current_mode?: string | null;
}

/**
 * Two model hosts on the CPU behind one gateway (SIDECAR_DEVICES=cpu,cpu), on the demo models: dispatch by what each
 * host holds, the whole and each host in status and /api/vram, and a host killed under a running job.
 */
describe('several model hosts behind one gateway (SIDECAR_DEVICES=cpu,cpu)', () => {
  let gateway: Gateway;

  // Strict FIFO on both sides of the comparison: the mode-aware delay would let one client wait up to
  // SCHEDULER_MAX_DELAY_MS per job on one host, which is not what is measured here.
  const env = { MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0', SCHEDULER_MAX_DELAY_MS: '0' };

  beforeAll(async () => {
    gateway = await startGateway({ ...env, SIDECAR_DEVICES: 'cpu,cpu', GATEWAY_ID: 'e2e' });
  }, 300_000);

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  const finished = (url: string, id: string): Promise<JobRecord> => jobFinished(url, id, gateway.logs);

  /** Two clients, each sending its mode's jobs one after the other: 20 jobs alternating between two modes. */
  async function twoClients(url: string): Promise<JobRecord[]> {
    const client = async (mode: string): Promise<JobRecord[]> => {
      const done: JobRecord[] = [];
      for (let i = 0; i < 10; i += 1) {
        done.push(await finished(url, await submitJob(url, { mode, prompt: `${mode} ${i}`, num_inference_steps: 2 })));
      }
      return done;
    };
    return (await Promise.all([client('sdxl-general'), client('sd15-fast')])).flat();
  }

  async function hostsOf(path: '/api/models/status' | '/api/vram'): Promise<HostView[]> {
    return ((await (await fetch(`${gateway.url}${path}`)).json()) as { hosts: HostView[] }).hosts;
  }

  it('lists both hosts in status and /api/vram, the whole summed over them', async () => {
    // /ready is 200 once one host serves; the other may still be loading its default mode.
    await waitFor(
      async () => (await hostsOf('/api/vram')).every((host) => host.state === 'serving' && host.vram !== null),
      { what: 'both hosts to serve, with memory figures', context: gateway.logs },
    );
    const status = (await (await fetch(`${gateway.url}/api/models/status`)).json()) as {
      vram: { total_gb: number };
      hosts: HostView[];
    };
    expect(status.hosts.map((host) => [host.id, host.device, host.state])).toEqual([
      ['e2e/cpu#0', 'cpu', 'serving'],
      ['e2e/cpu#1', 'cpu', 'serving'],
    ]);
    expect(status.hosts.map((host) => host.current_mode)).toEqual(['sdxl-general', 'sdxl-general']);
    const vram = (await (await fetch(`${gateway.url}/api/vram`)).json()) as { total_gb: number; hosts: HostView[] };
    expect(vram.hosts.map((host) => host.id)).toEqual(['e2e/cpu#0', 'e2e/cpu#1']);
    const sum = vram.hosts.reduce((total, host) => total + (host.vram?.total_gb ?? 0), 0);
    expect(vram.total_gb).toBeCloseTo(sum, 1);
  });

  it('keeps each of two alternating modes on the host that holds it, with fewer switches than one host makes', async () => {
    const jobs = await twoClients(gateway.url);
    expect(jobs.map((job) => job.state)).toEqual(Array(20).fill('completed'));
    const hostsByMode = new Map<string, Set<string | null>>();
    for (const job of jobs) hostsByMode.set(job.mode, (hostsByMode.get(job.mode) ?? new Set()).add(job.host));
    const general = [...(hostsByMode.get('sdxl-general') ?? [])];
    const fast = [...(hostsByMode.get('sd15-fast') ?? [])];
    expect(general).toHaveLength(1);
    expect(fast).toHaveLength(1);
    expect(general[0]).not.toBe(fast[0]);
    const switches = jobs.filter((job) => job.switch !== null).length;

    const one = await startGateway({ ...env, SIDECAR_DEVICES: 'cpu', GATEWAY_ID: 'e2e-one' });
    try {
      const alone = await twoClients(one.url);
      expect(alone.map((job) => job.host)).toEqual(Array(20).fill('e2e-one/cpu'));
      const switchesAlone = alone.filter((job) => job.switch !== null).length;
      expect(switches).toBeLessThan(switchesAlone);
    } finally {
      expect(await one.stop()).toBe(0);
    }
  }, 600_000);

  it('finishes a job on the other host, with the image its seed gives, when its host is killed under it', async () => {
    const job = { mode: 'sdxl-general', prompt: 'survives', seed: 4242, size: '192x192', num_inference_steps: 30 };
    const reference = await finished(gateway.url, await submitJob(gateway.url, job));
    expect(reference.state).toBe('completed');
    const expected = Buffer.from(await (await fetch(`${gateway.url}/api/jobs/${reference.id}/image`)).arrayBuffer());

    const id = await submitJob(gateway.url, job);
    const running = await waitFor(
      async () => {
        const now = await jobRecord(gateway.url, id);
        return (now.progress?.step ?? 0) >= 1 && now;
      },
      { what: 'the job to make a step', context: gateway.logs },
    );
    const doomed = running.host;
    const index = doomed?.split('#')[1];
    expect(['0', '1']).toContain(index);
    const pid = execFileSync('pgrep', ['-P', String(gateway.process.pid), '-f', `modelhost-${index}.sock`], {
      encoding: 'utf8',
    }).trim();
    process.kill(Number(pid), 'SIGKILL');

    const done = await finished(gateway.url, id);
    expect(done.state).toBe('completed');
    expect(done.host).not.toBe(doomed);
    const image = Buffer.from(await (await fetch(`${gateway.url}/api/jobs/${id}/image`)).arrayBuffer());
    expect(maxPixelDifference(image, expected)).toBeLessThanOrEqual(GREY_LEVELS);

    // The queue goes on meanwhile, and the killed host comes back on its own.
    const after = await finished(gateway.url, await submitJob(gateway.url, { mode: 'sd15-fast', prompt: 'after' }));
    expect(after.state).toBe('completed');
    await waitFor(async () => (await hostsOf('/api/models/status')).every((host) => host.state === 'serving'), {
      what: 'the killed host to serve again',
      context: gateway.logs,
    });
    await gateway.logged(`job ${id} runs again on model host`);
  }, 600_000);
});
