import { useState } from 'preact/hooks';

import { api, ApiError } from './api';
import { formatBytes, formatTime } from './format';
import type { HostMemory, ModesView, ResidentModel, Status } from './types';

const GIB = 1024 ** 3;

interface Props {
  status: Status;
  memory: Record<string, HostMemory>;
  hostStates: Record<string, { state: string; reason: string | null }>;
  modes: ModesView;
}

/** Per model host: a bar of used / total memory split by resident model, the models with their policy, actions. */
export function MemoryPanel({ status, memory, hostStates, modes }: Props) {
  const [error, setError] = useState<string | null>(null);
  const [target, setTarget] = useState('');
  const [busy, setBusy] = useState(false);

  const act = async (path: string, body: unknown) => {
    setError(null);
    setBusy(true);
    try {
      await api('POST', path, body);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    } finally {
      setBusy(false);
    }
  };
  const policy = new Map(status.memory_policy.map((entry) => [entry.mode, entry]));
  const switchTo = target || status.current_mode || modes.default_mode;

  return (
    <section class="panel" aria-labelledby="memory-title">
      <h2 id="memory-title">Memory</h2>
      {status.hosts.map((host) => {
        const live = memory[host.id];
        const total = live?.total_bytes ?? (host.vram?.total_gb ?? 0) * GIB;
        const used = live?.used_bytes ?? (host.vram?.used_gb ?? 0) * GIB;
        const models: ResidentModel[] =
          live?.models ??
          (host.vram?.models ?? []).map((model) => ({
            key: model.key,
            mode: model.name,
            bytes: model.bytes,
            tier: policy.get(model.name)?.resident === 'ram' ? 'ram' : 'device',
          }));
        const stale = new Set((host.vram?.models ?? []).filter((model) => model.stale).map((model) => model.key));
        const onDevice = models.filter((model) => model.tier === 'device');
        const modelBytes = onDevice.reduce((sum, model) => sum + model.bytes, 0);
        const state = hostStates[host.id] ?? { state: host.state, reason: null };
        const share = (bytes: number) => `${total > 0 ? Math.min(100, (bytes / total) * 100) : 0}%`;
        return (
          <article class="host" key={host.id} data-host={host.id}>
            <h3>
              {host.id}{' '}
              <span class={`badge state-${state.state}`} data-testid="host-state">
                {state.state}
              </span>
            </h3>
            {state.reason && state.state !== 'serving' && <p class="hint">{state.reason}</p>}
            <p class="hint">
              {host.vram?.device ?? host.device} · current mode: <strong>{host.current_mode ?? 'none'}</strong>
            </p>
            <div
              class="bar"
              role="img"
              aria-label={`${host.id}: ${formatBytes(used)} of ${formatBytes(total)} used, models ${formatBytes(modelBytes)}`}
              data-used-bytes={used}
              data-total-bytes={total}
              data-models-bytes={modelBytes}
            >
              {onDevice.map((model, i) => (
                <span
                  key={model.key}
                  class={`segment c${i % 6}`}
                  style={{ width: share(model.bytes) }}
                  title={`${model.mode}: ${formatBytes(model.bytes)}`}
                  data-mode={model.mode}
                  data-bytes={model.bytes}
                />
              ))}
              <span class="segment other" style={{ width: share(Math.max(0, used - modelBytes)) }} />
            </div>
            <p class="hint">
              {formatBytes(used)} used of {formatBytes(total)} · models on the device {formatBytes(modelBytes)}
            </p>
            <table class="models" aria-label={`Models on ${host.id}`}>
              <thead>
                <tr>
                  <th>mode</th>
                  <th>tier</th>
                  <th>size</th>
                  <th>pinned</th>
                  <th>expires</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {models.map((model) => {
                  const rule = policy.get(model.mode);
                  return (
                    <tr key={model.key} data-mode={model.mode}>
                      <td>
                        {model.mode}
                        {stale.has(model.key) && <span class="badge stale">stale</span>}
                      </td>
                      <td>{model.tier}</td>
                      <td>{formatBytes(model.bytes)}</td>
                      <td>{rule?.pinned ? 'yes' : 'no'}</td>
                      <td>{rule?.expires_at ? formatTime(rule.expires_at) : '—'}</td>
                      <td>
                        <button
                          type="button"
                          disabled={busy}
                          aria-label={`Unload ${model.mode}`}
                          onClick={() => void act('/api/models/unload', { mode: model.mode })}
                        >
                          Unload
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </article>
        );
      })}
      <form
        class="inline"
        onSubmit={(event) => {
          event.preventDefault();
          void act('/api/modes/switch', { mode: switchTo });
        }}
      >
        <div class="field">
          <label for="field-switch-to">Switch to</label>
          <select id="field-switch-to" value={switchTo} onChange={(event) => setTarget(event.currentTarget.value)}>
            {Object.keys(modes.modes).map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </div>
        <button type="submit" disabled={busy}>
          Switch
        </button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}
