import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';

import { AppModule } from '../src/app.module.js';
import { useHostCheck } from '../src/auth/host-check.js';
import { loadConfig } from '../src/config/app-config.js';
import { ModelFilesProbe } from '../src/modes/model-files.probe.js';
import { ModelHostFactory } from '../src/model-host/model-host.factory.js';
import { FakeModelHostFactory, FakeModelHostProcess, FakeModelHost } from './fake-model-host.js';

export const TEST_MODES_YAML = `
model_root: /models
lora_root: /models/loras
default_mode: sdxl-general
modes:
  sdxl-general:
    model: sdxl/sdxl-base-1.0.safetensors
    default_size: "1024x1024"
    default_steps: 30
    default_guidance: 7.5
  sd15-fast:
    model: sd15/dreamshaper-lcm.safetensors
    loras:
      - lcm-lora-sd15.safetensors
      - path: detail.safetensors
        strength: 0.8
        adapter_name: detail
    scheduler: lcm
    clip_skip: 2
    metadata:
      description: fast
    superres:
      model: upscalers/4x.safetensors
      scale: 4
  plain:
    model: plain.safetensors
`;

/** ModelFilesProbe over a set of paths said to be missing; the test modes' files are not on disk at all. */
export class FakeModelFiles extends ModelFilesProbe {
  readonly missing = new Set<string>();

  override exists(file: string): boolean {
    return !this.missing.has(file);
  }
}

export interface TestApp {
  readonly app: INestApplication;
  readonly modelHost: FakeModelHost;
  readonly files: FakeModelFiles;
  readonly process: FakeModelHostProcess;
  /** Every model host made (the first is `modelHost`): several with SIDECAR_DEVICES. */
  readonly factory: FakeModelHostFactory;
  close(): Promise<void>;
}

/** The whole gateway (AppModule, its pipe and filter) over fakes of the two model host classes. */
export async function createTestApp(
  env: Record<string, string> = {},
  process: FakeModelHostProcess = new FakeModelHostProcess(),
  /** What main.ts does to the app before it listens that a test needs (setupOpenApi). */
  setup?: (app: INestApplication) => void,
): Promise<TestApp> {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-spec-'));
  writeFileSync(join(dir, 'modes.yaml'), TEST_MODES_YAML);
  const modelHost = new FakeModelHost();
  const factory = new FakeModelHostFactory(modelHost, process);
  const files = new FakeModelFiles();
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot(loadConfig({ LOG_LEVEL: 'silent', GATEWAY_ID: 'test', ...env }, dir))],
  })
    .overrideProvider(ModelHostFactory)
    .useValue(factory)
    .overrideProvider(ModelFilesProbe)
    .useValue(files)
    .compile();
  const app = moduleRef.createNestApplication({ logger: false });
  useHostCheck(app);
  setup?.(app);
  await app.init();
  return {
    app,
    modelHost,
    files,
    process,
    factory,
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
