import { useState } from 'preact/hooks';

import { api, ApiError } from './api';

/** Asks for the key once; the server answers with an HttpOnly cookie, so the page never keeps the key. */
export function Login({ onLoggedIn }: { onLoggedIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('POST', '/api/session', { key });
      setKey('');
      onLoggedIn();
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="panel" onSubmit={(event) => void submit(event)}>
        <h1>modelhost</h1>
        <p>This server asks for an API key (API_KEY or ADMIN_API_KEY).</p>
        <div class="field">
          <label for="field-api-key">API key</label>
          <input
            id="field-api-key"
            type="password"
            name="key"
            autocomplete="current-password"
            required
            value={key}
            onInput={(event) => setKey(event.currentTarget.value)}
          />
        </div>
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
