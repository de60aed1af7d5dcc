// Who is at the console. Asked once per session and kept in memory only: the next start asks again,
// so a shared workstation never acts in the previous user's name.
import { useEffect, useRef, useState } from 'preact/hooks';

interface Props { initial: string; onStart(name: string): void; onCancel?: () => void }

export function OperatorPrompt({ initial, onStart, onCancel }: Props) {
  const [name, setName] = useState(initial);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const ok = name.trim() !== '';
  return (
    <div class="operator-prompt" role="dialog" aria-modal="true" aria-labelledby="operator-title">
      <form onSubmit={(e) => { e.preventDefault(); if (ok) onStart(name.trim()); }}>
        <h1 id="operator-title">Who is operating this console?</h1>
        <p>Your name is recorded in the audit log with every acknowledgement, pairing, release and setting you change.</p>
        <label>
          Your name
          <input ref={input} data-testid="operator-name" value={name} autocomplete="off"
            onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button type="submit" class="primary" data-testid="operator-start" disabled={!ok}>Start</button>
          {onCancel && <button type="button" onClick={onCancel}>Cancel</button>}
        </div>
      </form>
    </div>
  );
}
