import { execFileSync } from 'node:child_process';

import type { AppConfig } from '../config/app-config.js';

/** One model host the gateway uses: started by it on a device, or started elsewhere and reached at an address. */
export interface HostSpec {
  /** `<gateway id>/<label>`: unique across the gateways that share a queue; job records and metrics name it. */
  readonly id: string;
  /** `cpu`, `cuda:0` …, or undefined: a host the gateway starts that chooses its own device (CUDA when present). */
  readonly device: string | undefined;
  /** Set for a host started elsewhere (SIDECAR_ADDR / SIDECAR_ADDRS): the gateway neither starts nor restarts it. */
  readonly addr: string | undefined;
}

/**
 * The hosts the configuration names, in order (the first is the default host: the inventory of model files is read
 * from it). `cudaDevices`: how many CUDA devices this machine shows, for `auto`.
 */
export function hostSpecs(config: AppConfig, cudaDevices: number): HostSpec[] {
  const devices: (string | undefined)[] =
    config.modelHostDevices === 'auto'
      ? cudaDevices > 0
        ? Array.from({ length: cudaDevices }, (_, i) => `cuda:${i}`)
        : [undefined]
      : [...config.modelHostDevices];
  const labels = devices.map((device) => device ?? 'local');
  const specs: HostSpec[] = devices.map((device, i) => {
    const label = labels[i] ?? 'local';
    // Two hosts on one device (`cpu,cpu`) get the index too: ids stay unique.
    const unique = labels.filter((other) => other === label).length === 1 ? label : `${label}#${i}`;
    return { id: `${config.gatewayId}/${unique}`, device, addr: undefined };
  });
  for (const addr of config.modelHostAddrs) {
    specs.push({ id: `${config.gatewayId}/${addr.replace(/^unix:/, '')}`, device: undefined, addr });
  }
  return specs;
}

/**
 * The CUDA devices a model host started here would see: CUDA_VISIBLE_DEVICES when set (`-1` or empty: none), else
 * what `nvidia-smi -L` lists. No driver, no GPU: 0.
 */
export function visibleCudaDevices(env: NodeJS.ProcessEnv = process.env): number {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    const ids = visible.split(',').map((id) => id.trim());
    const cut = ids.findIndex((id) => id === '' || id.startsWith('-'));
    return cut === -1 ? ids.length : cut;
  }
  try {
    const out = execFileSync('nvidia-smi', ['-L'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.split('\n').filter((line) => line.startsWith('GPU ')).length;
  } catch {
    return 0;
  }
}
