import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { load } from 'js-yaml';

import { ROOT } from './support/demo-models';

interface Service {
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  profiles?: string[];
  restart?: string;
  environment?: Record<string, string>;
  volumes?: (string | { source?: string; target: string; read_only?: boolean })[];
  healthcheck?: { test: string[] };
  deploy?: { resources?: { reservations?: { devices?: { driver: string; capabilities: string[] }[] } } };
}

const COMPOSE = 'docker-compose';
const available = spawnSync(COMPOSE, ['version'], { encoding: 'utf8' }).status === 0;
if (!available) {
  // Debian's docker-compose package; ./runner.sh test installs it where apt-get may.
  console.warn(`SKIPPED docker-compose.yml checks: no '${COMPOSE}' binary on PATH (apt-get install docker-compose)`);
}

/** docker-compose.yml as docker-compose itself reads it (no Docker engine needed), checked for its hardening. */
(available ? describe : describe.skip)('docker-compose.yml', () => {
  function config(...args: string[]): { services: Record<string, Service> } {
    const result = spawnSync(
      COMPOSE,
      ['-f', join(ROOT, 'docker-compose.yml'), '--project-directory', ROOT, ...args, 'config'],
      { encoding: 'utf8', env: { ...process.env, API_KEY: 'compose-key', MODELS_DIR: '/srv/models' } },
    );
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

  it('validates, with the model host and the gateway always and redis only under its profile', () => {
    // docker-compose config prints profiled services too; `profiles` is what keeps one out of a plain `up`.
    const services = config('--profile', 'redis').services;
    expect(Object.keys(services).sort()).toEqual(['gateway', 'redis', 'sidecar']);
    expect(services.redis?.profiles).toEqual(['redis']);
    expect([services.gateway?.profiles, services.sidecar?.profiles]).toEqual([undefined, undefined]);
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
    const devices = config().services.sidecar?.deploy?.resources?.reservations?.devices;
    expect(devices).toEqual([expect.objectContaining({ driver: 'nvidia', capabilities: ['gpu'] })]);
  });

  it('mounts the models and the modes folder read-only', () => {
    const { sidecar: modelHost, gateway } = config().services;
    expect(mounts(modelHost ?? {})).toEqual({ '/models': true });
    expect(mounts(gateway ?? {})).toEqual({ '/config': true, '/models': true });
  });

  it('checks health: /ready on the gateway, the gRPC health service on the model host', () => {
    const { sidecar: modelHost, gateway } = config().services;
    expect(gateway?.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:4200/ready');
    expect(modelHost?.healthcheck?.test.join(' ')).toContain('HealthStub');
    expect(modelHost?.healthcheck?.test.join(' ')).toContain('SERVING');
  });

  it('passes API_KEY through and polls the bind mounts for changes', () => {
    const { sidecar: modelHost, gateway } = config().services;
    expect(gateway?.environment).toMatchObject({ API_KEY: 'compose-key', MODES_WATCH_POLL_MS: '2000' });
    expect(modelHost?.environment).toMatchObject({ MODEL_WATCH_POLL: '1' });
  });
});
