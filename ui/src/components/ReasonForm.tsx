// The inline confirmation used by every audited action: a required reason, then an explicit button.
// Inline rather than window.confirm, which WebDriver cannot see reliably in WebKit.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

interface Props {
  /** Test-id prefix: `<prefix>-reason` and `<prefix>-confirm`. */
  prefix: string;
  /** Text of the confirm button, e.g. "Acknowledge". */
  action: string;
  busy: boolean;
  onConfirm(reason: string): void;
  onCancel(): void;
  /** Extra fields shown before the button (e.g. silence minutes). */
  children?: ComponentChildren;
}

export function ReasonForm({ prefix, action, busy, onConfirm, onCancel, children }: Props) {
  const [reason, setReason] = useState('');
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const ok = reason.trim() !== '';
  return (
    <form class="inline-form" onSubmit={(e) => { e.preventDefault(); if (ok && !busy) onConfirm(reason.trim()); }}>
      <label>
        Reason <span class="hint">(required, recorded in the audit log)</span>
        <input ref={input} data-testid={`${prefix}-reason`} value={reason} required
          onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      {children}
      <button type="submit" class="primary" data-testid={`${prefix}-confirm`} disabled={!ok || busy}>{action}</button>
      <button type="button" onClick={onCancel}>Cancel</button>
    </form>
  );
}
