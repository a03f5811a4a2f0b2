import { FakeSidecarProcess, FakeSidecarRepository } from '../../testing/fake-sidecar.js';
import { waitFor } from '../../testing/wait-for.js';
import { RegistryService } from '../registry/registry.service.js';
import { ModelHostConnection, type ModelHostState } from './model-host.connection.js';

describe('ModelHostConnection', () => {
  it('goes starting -> serving, lost on its process ending, recovering, then serving again, telling each change', async () => {
    const host = new FakeSidecarRepository();
    const process = new FakeSidecarProcess();
    const registry = new RegistryService();
    const connection = new ModelHostConnection(host, process, registry, 1_000);
    const seen: ModelHostState[] = [];
    connection.onState((state) => seen.push(state));
    let restored = 0;
    connection.attach({ settled: () => Promise.resolve(), restore: () => Promise.resolve(void (restored += 1)) });

    expect(connection.state).toBe('starting');
    registry.markStartedUp();
    expect(connection.state).toBe('serving');

    host.serving = false;
    process.lose('killed');
    expect(connection.state).toBe('lost');
    expect(connection.unavailableReason).toBe('killed');
    expect(connection.accepting).toBe(false);
    await waitFor(() => host.notServingPolls > 0, { what: 'the recovery to wait for the model host' });
    host.serving = true;
    await waitFor(() => connection.state === 'serving', { what: 'the connection to serve again' });
    expect(seen).toEqual(['lost', 'recovering', 'serving']);
    expect(restored).toBe(1);
    expect(connection.accepting).toBe(true);

    connection.close();
    expect(connection.state).toBe('stopping');
    process.lose('after close');
    expect(seen.at(-1)).toBe('stopping');
  });
});
