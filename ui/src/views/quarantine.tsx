// Quarantine: readings Vigil would not attribute to a patient, kept for forensic review. Release
// re-validates a reading against the pairing as it is now; discard removes it. Both are audited.
import { useState } from 'preact/hooks';
import type { QuarantineItem, ReleaseOutcome } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad } from '../components/hooks';
import { codeText, timeText, unitText, valueText } from '../components/format';
import { ReasonForm } from '../components/ReasonForm';

type Open = { id: number; action: 'release' | 'discard' } | null;
interface Result { id: number; text: string; outcome: ReleaseOutcome['outcome'] | 'discarded' }

const POLL_MS = 10_000;

export function QuarantineView() {
  const backend = useBackend();
  const { data, reload } = useLoad((b) => b.quarantine(), [], POLL_MS);
  const [expanded, setExpanded] = useState<Set<number>>(new Set());
  const [open, setOpen] = useState<Open>(null);
  const [result, setResult] = useState<Result | null>(null);
  const { busy, run } = useAction();

  const toggle = (id: number) => setExpanded((s) => {
    const n = new Set(s);
    if (n.has(id)) n.delete(id); else n.add(id);
    return n;
  });

  const confirm = async (q: QuarantineItem, action: 'release' | 'discard', reason: string) => {
    const ok = await run(async () => {
      if (action === 'release') {
        const out = await backend.releaseQuarantine(q.id, reason);
        setResult({ id: q.id, outcome: out.outcome, text: `Reading #${q.id} released: ${out.outcome}. ${out.detail}` });
      } else {
        await backend.discardQuarantine(q.id, reason);
        setResult({ id: q.id, outcome: 'discarded', text: `Reading #${q.id} discarded.` });
      }
    });
    if (ok) { setOpen(null); await reload(); }
  };

  return (
    <section>
      <h1>Quarantine</h1>
      <p class="muted intro">
        Readings that could not be attributed to a patient. They are never charted or sent to the EHR.
        Fix the cause first (usually the pairing, under Devices &amp; pairing), then release to re-validate.
      </p>
      {result && (
        <p class={`result outcome-${result.outcome}`} data-testid="quarantine-result" role="status">
          {result.outcome === 'stored' ? '✓ ' : result.outcome === 'discarded' ? '✖ ' : '● '}{result.text}
        </p>
      )}
      <table class="dense">
        <thead>
          <tr><th>Observed</th><th>Device</th><th class="num">Value</th><th>Reason</th><th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && data.length === 0 && <tr><td colSpan={5} class="muted">Nothing in quarantine.</td></tr>}
          {(data ?? []).map((q) => [
            <tr key={q.id} data-testid="quarantine-row" data-id={q.id} data-device={q.device_id} data-reason={q.reason}>
              <td>{timeText(q.observed_at)}</td>
              <td>{q.device_id}</td>
              <td class="num">{valueText(q.value)} <span title={`UCUM ${q.unit}`}>{unitText(q.unit)}</span><div class="sub">MDC {q.mdc_code}</div></td>
              <td><strong>{codeText(q.reason)}</strong><div class="detail">{q.detail}</div></td>
              <td class="cell-actions">
                <button type="button" aria-expanded={expanded.has(q.id)} data-testid="quarantine-payload-toggle"
                  onClick={() => toggle(q.id)}>{expanded.has(q.id) ? 'Hide payload' : 'Show payload'}</button>
                <button type="button" data-testid="quarantine-release" onClick={() => setOpen({ id: q.id, action: 'release' })}>Release</button>
                <button type="button" class="danger" data-testid="quarantine-discard" onClick={() => setOpen({ id: q.id, action: 'discard' })}>Discard</button>
              </td>
            </tr>,
            expanded.has(q.id) && (
              <tr key={`${q.id}-payload`} class="payload-row">
                <td colSpan={5}><pre data-testid="quarantine-payload">{q.payload}</pre></td>
              </tr>
            ),
            open?.id === q.id && (
              <tr key={`${q.id}-form`} class="form-row">
                <td colSpan={5}>
                  <ReasonForm prefix="quarantine" busy={busy} onCancel={() => setOpen(null)}
                    action={open.action === 'release' ? 'Release and re-validate' : 'Discard reading'}
                    onConfirm={(reason) => confirm(q, open.action, reason)} />
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
    </section>
  );
}
