import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { load } from 'js-yaml';

import { ROOT } from './support/demo-models';

interface Service {
  image?: string;
  build?: { dockerfile?: string };
  stop_grace_period?: string;
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  profiles?: string[];
  restart?: string;
  environment?: Record<string, string>;
  volumes?: (string | { source?: string; target: string; read_only?: boolean })[];
  healthcheck?: { test: string[] };
  deploy?: {
    resources?: { reservations?: { devices?: { driver: string; device_ids?: string[]; capabilities: string[] }[] } };
  };
}

const COMPOSE = 'docker-compose';
const available = spawnSync(COMPOSE, ['version'], { encoding: 'utf8' }).status === 0;
if (!available) {
  // Debian's docker-compose package; ./runner.sh test installs it where apt-get may.
  console.warn(`SKIPPED docker-compose.yml checks: no '${COMPOSE}' binary on PATH (apt-get install docker-compose)`);
}

/** docker-compose.yml as docker-compose itself reads it (no Docker engine needed), checked for its hardening. */
(available ? describe : describe.skip)('docker-compose.yml', () => {
  const ENV = { API_KEY: 'compose-key', MODELS_DIR: '/srv/models', MODEL_HOST_TOKEN: 'host-token' };

  function configRun(env: Record<string, string>, ...args: string[]): SpawnSyncReturns<string> {
    const withoutToken = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'MODEL_HOST_TOKEN'));
    return spawnSync(
      COMPOSE,
      ['-f', join(ROOT, 'docker-compose.yml'), '--project-directory', ROOT, ...args, 'config'],
      {
        encoding: 'utf8',
        env: { ...withoutToken, ...env },
      },
    );
  }

  function config(...args: string[]): { services: Record<string, Service> } {
    const result = configRun(ENV, ...args);
    expect({ status: result.status, stderr: result.status === 0 ? '' : result.stderr }).toEqual({
      status: 0,
      stderr: '',
    });
    return load(result.stdout) as { services: Record<string, Service> };
  }

  /** Every mount as target -> read-only, whichever form docker-compose prints. */
  function mounts(service: Service): Record<string, boolean> {
    return Object.fromEntries(
      (service.volumes ?? []).map((volume) => {
        if (typeof volume !== 'string') return [volume.target, volume.read_only === true];
        const [, target = '', mode = ''] = volume.split(':');
        return [target, mode.split(',').includes('ro')];
      }),
    );
  }

  it('validates, with the model host and the gateway always, redis and a second pair only under their profiles', () => {
    // docker-compose config prints profiled services too; `profiles` is what keeps one out of a plain `up`.
    const services = config('--profile', 'redis').services;
    expect(Object.keys(services).sort()).toEqual(['gateway', 'gateway-2', 'model-host', 'model-host-2', 'redis']);
    expect(services.redis?.profiles).toEqual(['redis']);
    expect([services['gateway-2']?.profiles, services['model-host-2']?.profiles]).toEqual([
      ['scale-out'],
      ['scale-out'],
    ]);
    expect([services.gateway?.profiles, services['model-host']?.profiles]).toEqual([undefined, undefined]);
    // The second pair: its own model host on the second GPU, the gateway on another port, one queue in Redis.
    expect(services['model-host-2']?.deploy?.resources?.reservations?.devices).toEqual([
      { driver: 'nvidia', device_ids: ['1'], capabilities: ['gpu'] },
    ]);
    expect(services['gateway-2']?.environment).toMatchObject({
      SIDECAR_ADDR: 'model-host-2:50051',
      GATEWAY_ID: 'gateway-2',
    });
  });

  it('runs every service as a non-root user, read-only, without capabilities, restarted', () => {
    for (const [name, service] of Object.entries(config('--profile', 'redis').services)) {
      // uid:gid, uid not 0 (root).
      expect({ name, nonRootUser: /^[1-9]\d*:\d+$/.test(service.user ?? '') }).toEqual({ name, nonRootUser: true });
      expect({ name, readOnly: service.read_only, caps: service.cap_drop }).toEqual({
        name,
        readOnly: true,
        caps: ['ALL'],
      });
      expect({ name, restart: service.restart }).toEqual({ name, restart: 'unless-stopped' });
    }
  });

  it('reserves an NVIDIA GPU for the model host', () => {
    const devices = config().services['model-host']?.deploy?.resources?.reservations?.devices;
    expect(devices).toEqual([expect.objectContaining({ driver: 'nvidia', capabilities: ['gpu'] })]);
  });

  it('mounts the models and the modes folder read-only', () => {
    const { 'model-host': modelHost, gateway } = config().services;
    expect(mounts(modelHost ?? {})).toEqual({ '/models': true });
    expect(mounts(gateway ?? {})).toEqual({ '/config': true, '/models': true });
  });

  it('checks health: /ready on the gateway, the gRPC health service on the model host', () => {
    const { 'model-host': modelHost, gateway } = config().services;
    expect(gateway?.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:4200/ready');
    expect(modelHost?.healthcheck?.test.join(' ')).toContain('HealthStub');
    expect(modelHost?.healthcheck?.test.join(' ')).toContain('SERVING');
  });

  it('names the images ./runner.sh images builds, from the Dockerfiles in docker/', () => {
    const { 'model-host': modelHost, gateway } = config().services;
    expect([modelHost?.image, modelHost?.build?.dockerfile]).toEqual([
      'image-gen-server/model-host',
      'docker/model-host.Dockerfile',
    ]);
    expect([gateway?.image, gateway?.build?.dockerfile]).toEqual([
      'image-gen-server/gateway',
      'docker/gateway.Dockerfile',
    ]);
  });

  it('is read by ./runner.sh images: the service and image lines it builds are the model host and the gateway', () => {
    // runner.sh's own compose_images, run alone (sourcing the script would run its command).
    const runner = readFileSync(join(ROOT, 'runner.sh'), 'utf8');
    const reader = /^compose_images\(\) \{\n[\s\S]*?\n\}$/m.exec(runner)?.[0];
    expect(reader).toBeDefined();
    const read = spawnSync('bash', ['-c', `${reader}\ncompose_images`], { cwd: ROOT, encoding: 'utf8' });
    expect(read.status).toBe(0);
    const lines = read.stdout.trim().split('\n');
    expect(lines).toContain('model-host image-gen-server/model-host');
    expect(lines).toContain('gateway image-gen-server/gateway');
  });

  it("gives both a stop grace past their running job's (30 s)", () => {
    const { 'model-host': modelHost, gateway } = config().services;
    expect([modelHost?.stop_grace_period, gateway?.stop_grace_period]).toEqual(['40s', '40s']);
  });

  it('requires MODEL_HOST_TOKEN, and hands it to both: the gateway reaches the model host over TCP', () => {
    const refused = configRun({ API_KEY: 'compose-key' });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('set MODEL_HOST_TOKEN (openssl rand -hex 32)');
    const { 'model-host': modelHost, gateway } = config().services;
    expect([modelHost?.environment?.MODEL_HOST_TOKEN, gateway?.environment?.MODEL_HOST_TOKEN]).toEqual([
      'host-token',
      'host-token',
    ]);
    expect(gateway?.environment?.SIDECAR_ADDR).toBe('model-host:50051');
  });

  it('passes API_KEY through and polls the bind mounts for changes', () => {
    const { 'model-host': modelHost, gateway } = config().services;
    expect(gateway?.environment).toMatchObject({ API_KEY: 'compose-key', MODES_WATCH_POLL_MS: '2000' });
    expect(modelHost?.environment).toMatchObject({ MODEL_WATCH_POLL: '1' });
  });
});
