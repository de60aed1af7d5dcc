// The locked console. The account stays signed in; unlocking is needed only to act. What must stay
// visible does: the degradation banner (the shell keeps it above) and the unacknowledged alarms by
// priority, live. No patient data: the views are not rendered while locked.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Board, SessionView } from '../backend';
import { useBackend } from '../context';
import { AlarmTally } from './AlarmTally';
import { useSessionForm } from './SignIn';

interface Props { session: SessionView; board: Board | null; onSession(s: SessionView): void }

export function LockScreen({ session, board, onSession }: Props) {
  const backend = useBackend();
  const [password, setPassword] = useState('');
  const { error, busy, submit } = useSessionForm(onSession);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const unlock = () => {
    if (password !== '' && !busy) void submit(() => backend.unlock(password));
    setPassword('');
  };
  return (
    <section class="lock-screen" data-testid="lock-screen" aria-labelledby="lock-title">
      <h1 id="lock-title">Console locked</h1>
      <div class="lock-alarms">
        <h2>Unacknowledged alarms</h2>
        <AlarmTally counts={board?.alarms ?? null} prefix="locked-alarm" />
      </div>
      <p>
        Locked for <strong>{session.account}</strong>. Status and alarm counts stay live here; unlock only to act.
      </p>
      <form class="session-form" onSubmit={(e) => { e.preventDefault(); unlock(); }}>
        <label>
          Password of {session.account}
          <input ref={input} type="password" data-testid="unlock-password" value={password} autocomplete="current-password"
            onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {session.demo && <p class="hint">Demo site: the password is <strong>demo</strong>.</p>}
        {error && <p class="invalid" role="alert" data-testid="unlock-error">✖ {error}</p>}
        <div class="actions">
          <button type="submit" class="primary" data-testid="unlock-submit" disabled={password === '' || busy}>Unlock</button>
          <button type="button" class="link" data-testid="unlock-switch" disabled={busy}
            onClick={() => void submit(() => backend.signOut())}>Sign in as someone else</button>
        </div>
      </form>
    </section>
  );
}
