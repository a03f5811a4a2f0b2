import { useState } from 'preact/hooks';

import { api, ApiError } from './api';
import { formatBytes } from './format';
import type { ModelFile, ModesView, Rejection } from './types';

interface Props {
  modes: ModesView;
  rejection: Rejection | null;
  files: ModelFile[] | null;
}

/** The modes as the server runs them, the last refused edit (until a good file arrives), reload, the model files. */
export function ConfigPanel({ modes, rejection, files }: Props) {
  const [error, setError] = useState<string | null>(null);
  const reload = async () => {
    setError(null);
    try {
      await api('POST', '/api/modes/reload');
    } catch (caught) {
      // A refused file also arrives as config.rejected, shown above; this says why the button's own call failed.
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };
  return (
    <section class="panel" aria-labelledby="config-title">
      <h2 id="config-title">Config</h2>
      {rejection && (
        <div role="alert" class="rejected">
          <strong>The last edit of {rejection.source} was refused; the modes below still run.</strong>
          <ul>
            {rejection.problems.map((problem, i) => (
              <li key={i}>
                <code>{problem.path ?? '(file)'}</code>: {problem.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <button type="button" onClick={() => void reload()}>
        Reload modes.yaml
      </button>
      {error && <p class="error">{error}</p>}
      <h3>Modes</h3>
      <ul class="modes">
        {Object.entries(modes.modes).map(([name, mode]) => (
          <li key={name} data-mode={name}>
            <details>
              <summary>
                {name}
                {name === modes.default_mode && <span class="badge">default</span>}
              </summary>
              <pre>{JSON.stringify(mode, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ul>
      <h3>Model files</h3>
      {files === null ? (
        <p class="hint">The model host has not listed its files yet.</p>
      ) : (
        <div class="scroll">
          <table class="files" aria-label="Model files">
            <thead>
              <tr>
                <th>path</th>
                <th>kind</th>
                <th>family</th>
                <th>size</th>
                <th>used by</th>
              </tr>
            </thead>
            <tbody>
              {files.map((file) => (
                <tr key={`${file.root}/${file.path}`}>
                  <td title={file.reason}>{file.path}</td>
                  <td>{file.kind}</td>
                  <td>{file.architecture}</td>
                  <td>{formatBytes(file.bytes)}</td>
                  <td>{file.used_by.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
