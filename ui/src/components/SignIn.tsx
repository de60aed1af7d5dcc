// Who is at the console: signing in with an account, and creating the first administrator on a site
// that has no account yet. The backend keeps the session; these forms only hand it the credentials.
import { useEffect, useRef, useState } from 'preact/hooks';
import { toBackendError, type SessionView } from '../backend';
import { useBackend, useSession } from '../context';

/** The shortest password the backend accepts for a new account. */
export const MIN_PASSWORD_CHARS = 12;

/**
 * A session call made from a form. Its failure (wrong password, too many attempts, …) is shown in the
 * form, where the user is looking; a lost session instead re-reads it, so the right screen shows.
 */
export function useSessionForm(onSession: (s: SessionView) => void) {
  const { reportError } = useSession();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (call: () => Promise<SessionView>) => {
    setBusy(true);
    setError('');
    try {
      onSession(await call());
    } catch (e) {
      const err = toBackendError(e);
      if (err.code === 'unauthenticated') reportError(err);
      else setError(err.message);
      setBusy(false);
    }
  };
  return { error, setError, busy, submit };
}

/** Focus the first field when the form appears: people type straight away. */
function useAutofocus() {
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return input;
}

export function SignIn({ demo, onSession }: { demo: boolean; onSession(s: SessionView): void }) {
  const backend = useBackend();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const { error, busy, submit } = useSessionForm(onSession);
  const input = useAutofocus();
  const ok = name.trim() !== '' && password !== '';
  return (
    <div class="session-screen">
      <form class="session-form" aria-labelledby="signin-title"
        onSubmit={(e) => { e.preventDefault(); if (ok && !busy) void submit(() => backend.signIn(name.trim(), password)); }}>
        <h1 id="signin-title">Sign in to Vigil</h1>
        <p>Everything you acknowledge, pair, release or change is recorded in the audit log under your account.</p>
        <label>
          Account name
          <input ref={input} data-testid="signin-name" value={name} autocomplete="username"
            onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input type="password" data-testid="signin-password" value={password} autocomplete="current-password"
            onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {demo && <p class="hint">Demo site: sign in as <strong>demo</strong>, the password is <strong>demo</strong>.</p>}
        {error && <p class="invalid" role="alert" data-testid="signin-error">✖ {error}</p>}
        <div class="actions">
          <button type="submit" class="primary" data-testid="signin-submit" disabled={!ok || busy}>Sign in</button>
        </div>
      </form>
    </div>
  );
}

/** What is wrong with the first administrator's details, or null. */
export function firstAdminProblem(name: string, password: string, again: string): string | null {
  if (!name.trim()) return 'Give the administrator an account name.';
  if (password.length < MIN_PASSWORD_CHARS) return `The password needs at least ${MIN_PASSWORD_CHARS} characters.`;
  if (password !== again) return 'The two passwords are not the same.';
  return null;
}

export function FirstAdmin({ onSession }: { onSession(s: SessionView): void }) {
  const backend = useBackend();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const { error, setError, busy, submit } = useSessionForm(onSession);
  const input = useAutofocus();
  const create = () => {
    const problem = firstAdminProblem(name, password, again);
    if (problem) setError(problem);
    else void submit(() => backend.createFirstAdmin(name.trim(), password));
  };
  return (
    <div class="session-screen">
      <form class="session-form" aria-labelledby="first-admin-title" onSubmit={(e) => { e.preventDefault(); if (!busy) create(); }}>
        <h1 id="first-admin-title">Create the first administrator</h1>
        <p>
          This site has no account yet. The administrator creates the accounts of everyone else and gives each
          the roles it needs.
        </p>
        <label>
          Account name
          <input ref={input} data-testid="first-admin-name" value={name} autocomplete="username"
            onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Password <span class="hint">(at least {MIN_PASSWORD_CHARS} characters)</span>
          <input type="password" data-testid="first-admin-password" value={password} autocomplete="new-password"
            onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <label>
          Password again
          <input type="password" data-testid="first-admin-password2" value={again} autocomplete="new-password"
            onInput={(e) => setAgain(e.currentTarget.value)} />
        </label>
        {error && <p class="invalid" role="alert" data-testid="first-admin-error">✖ {error}</p>}
        <div class="actions">
          <button type="submit" class="primary" data-testid="first-admin-submit" disabled={busy}>Create and sign in</button>
        </div>
      </form>
    </div>
  );
}
