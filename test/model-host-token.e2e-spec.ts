import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import { demoDir, ROOT, SIDECAR_PYTHON } from './support/demo-models';
import { E2E_ENV, Gateway, pngSize, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

const TOKEN = 'e2e-model-host-token-0123456789';

type Unary = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: Record<string, unknown>) => void,
) => void;

/**
 * A model host on TCP with MODEL_HOST_TOKEN: anyone who reaches the port gets UNAUTHENTICATED for a LoadModel
 * without the token, health still answers (probes hold no secret), and a gateway given the same token works.
 */
describe('MODEL_HOST_TOKEN on a model host on TCP', () => {
  let host: ChildProcess;
  let hostOutput = '';
  let address: string;
  let gateway: Gateway | undefined;
  let stub: grpc.Client & Record<string, Unary>;
  let health: grpc.Client & Record<string, Unary>;

  const call = (client: Record<string, Unary>, rpc: string, request: object, metadata = new grpc.Metadata()) =>
    new Promise<{ error: grpc.ServiceError | null; reply?: Record<string, unknown> }>((resolve) => {
      client[rpc]?.(request, metadata, { deadline: Date.now() + 30_000 }, (error, reply) => resolve({ error, reply }));
    });

  beforeAll(async () => {
    host = spawn(
      SIDECAR_PYTHON,
      ['-m', 'modelhost', 'serve', '--listen', '127.0.0.1:0', '--exit-with-parent', '--device', 'cpu'],
      { cwd: ROOT, env: { ...process.env, ...E2E_ENV, MODEL_HOST_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    host.stdout?.on('data', (chunk: Buffer) => (hostOutput += chunk.toString()));
    host.stderr?.on('data', (chunk: Buffer) => (hostOutput += chunk.toString()));
    // Port 0: the model host binds a free port and names it (no window for another process to take it).
    address = await waitFor(() => /serving on (127\.0\.0\.1:[1-9]\d*)/.exec(hostOutput)?.[1], {
      what: 'the model host to serve',
      timeoutMs: 180_000,
      context: () => hostOutput,
    });
    const definition = protoLoader.loadSync(['modelhost/v1/modelhost.proto', 'grpc/health/v1/health.proto'], {
      keepCase: true,
      enums: String,
      includeDirs: [join(ROOT, 'proto')],
    });
    const proto = grpc.loadPackageDefinition(definition) as unknown as {
      modelhost: { v1: { ModelHost: grpc.ServiceClientConstructor } };
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const credentials = grpc.credentials.createInsecure();
    stub = new proto.modelhost.v1.ModelHost(address, credentials) as typeof stub;
    health = new proto.grpc.health.v1.Health(address, credentials) as typeof health;
  }, 200_000);

  afterAll(async () => {
    stub?.close();
    health?.close();
    if (gateway) expect(await gateway.stop()).toBe(0);
    if (host && host.exitCode === null) {
      const exited = new Promise((resolve) => host.once('exit', resolve));
      host.kill('SIGTERM');
      await exited;
    }
  });

  it('answers UNAUTHENTICATED to a LoadModel without the token, or with a wrong one; health answers', async () => {
    const load = {
      key: 'intruder',
      model_path: join(demoDir(), 'tiny-sd15.safetensors'),
      config_dir: join(demoDir(), 'tiny-sd15.config'),
    };
    const bare = await call(stub, 'LoadModel', load);
    expect(bare.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(bare.error?.details).toContain('MODEL_HOST_TOKEN');
    const wrong = new grpc.Metadata();
    wrong.set('authorization', `Bearer ${TOKEN}x`);
    expect((await call(stub, 'LoadModel', load, wrong)).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await call(health, 'Check', { service: 'modelhost.v1.ModelHost' })).reply).toEqual({ status: 'SERVING' });
    const memory = await call(stub, 'GetMemory', {});
    expect(memory.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(hostOutput).not.toContain('loading ');
  });

  it('serves the gateway that holds the token', async () => {
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      SIDECAR_ADDR: address,
      MODEL_HOST_TOKEN: TOKEN,
    });
    const response = await fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse', num_inference_steps: 1, size: '64x64' }),
    });
    expect(response.status).toBe(200);
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });
});
