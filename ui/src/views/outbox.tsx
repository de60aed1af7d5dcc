// Outbox: clinical events on their way to the EHR, by status. Dead and held entries can be resent
// once their cause is fixed (the EHR's own refusal text is shown as the reason).
import { useState } from 'preact/hooks';
import type { Board, OutboxStatus } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad } from '../components/hooks';
import { formatDateTime } from '../components/format';

export const OUTBOX_TABS: { status: OutboxStatus; label: string; hint: string }[] = [
  { status: 'pending', label: 'Pending', hint: 'Waiting for delivery or being retried.' },
  { status: 'held', label: 'Held', hint: 'Not sent because a check failed (e.g. no ehr-write consent). Fix the cause, then resend.' },
  { status: 'dead', label: 'Dead', hint: 'Refused by the EHR for good. Read its reason, fix the cause, then resend.' },
  { status: 'delivered', label: 'Delivered', hint: 'Confirmed by the EHR.' },
];
const POLL_MS = 5000;

export function OutboxView({ board }: { board: Board | null }) {
  const backend = useBackend();
  const [status, setStatus] = useState<OutboxStatus>('pending');
  const { data, reload } = useLoad((b) => b.outbox(status), [status], POLL_MS);
  const { busy, run } = useAction();
  const [result, setResult] = useState('');
  const counts = new Map(board?.outbox ?? []);
  const tab = OUTBOX_TABS.find((t) => t.status === status)!;

  const resend = async (id: number) => {
    if (await run(() => backend.resend(id))) {
      setResult(`✓ Entry #${id} queued for delivery again.`);
      await reload();
    }
  };

  return (
    <section>
      <h1>Outbox</h1>
      <div class="tabs" role="tablist" aria-label="Outbox status">
        {OUTBOX_TABS.map((t) => (
          <button key={t.status} type="button" role="tab" data-testid={`outbox-tab-${t.status}`} aria-selected={t.status === status}
            onClick={() => { setStatus(t.status); setResult(''); }}>
            {t.label}{counts.has(t.status) && <span class="count"> {counts.get(t.status)}</span>}
          </button>
        ))}
      </div>
      <p class="muted intro">{tab.hint}</p>
      {result && <p class="result" role="status" data-testid="outbox-result">{result}</p>}
      <table class="dense">
        <thead>
          <tr><th class="num">#</th><th>Summary</th><th>Patient</th><th class="num">Attempts</th><th>Reason</th>
            <th>EHR reference</th><th>Created</th><th>Delivered</th><th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && data.length === 0 && <tr><td colSpan={9} class="muted">No {status} entries.</td></tr>}
          {(data ?? []).map((e) => (
            <tr key={e.id} data-testid="outbox-row" data-id={e.id} data-status={e.status} class={`status-${e.status}`}>
              <td class="num">{e.id}</td>
              <td>{e.summary}</td>
              <td>{e.patient_label ?? `#${e.patient_id}`}</td>
              <td class="num">{e.attempts}</td>
              <td class="reason">{e.reason ?? '—'}</td>
              <td>{e.ehr_ref ?? '—'}</td>
              <td>{formatDateTime(e.created_at)}</td>
              <td>{formatDateTime(e.delivered_at)}</td>
              <td class="cell-actions">
                {(e.status === 'dead' || e.status === 'held') && (
                  <button type="button" data-testid="outbox-resend" disabled={busy} onClick={() => resend(e.id)}>Resend</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
