// The payloads that did not become telemetry for other reasons than quarantine: readings held for want
// of consent, and payloads rejected at ingest. Both with the raw payload, which is what an engineer
// onboarding a device needs to see ("why isn't my device showing up?").
import type { HeldView } from '../backend';
import { useExpanded, useLoad } from '../components/hooks';
import { codeText, formatDateTime, unitText, valueText } from '../components/format';

const POLL_MS = 10_000;

/** A held reading has no store key: it is one reading of one device at one instant. */
const heldKey = (h: HeldView) => `${h.device_id}|${h.mdc_code}|${h.observed_at}|${h.flow}`;

function PayloadButton({ open, testId, onClick }: { open: boolean; testId: string; onClick(): void }) {
  return <button type="button" aria-expanded={open} data-testid={testId} onClick={onClick}>{open ? 'Hide payload' : 'Show payload'}</button>;
}

export function HeldList() {
  const { data } = useLoad((b) => b.held(), [], POLL_MS);
  const [expanded, toggle] = useExpanded<string>();
  return (
    <>
      <p class="muted intro">
        Readings of identified patients, kept back because a consent is missing (unknown consent counts as no).
        They are not lost: record the consent under Devices &amp; pairing, then store the held readings there.
      </p>
      <table class="dense" data-testid="held-table">
        <thead>
          <tr><th>Observed</th><th>Patient</th><th>Device</th><th class="num">Value</th><th>Flow</th><th>Why</th>
            <th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && data.length === 0 && <tr><td colSpan={7} class="muted">Nothing held.</td></tr>}
          {(data ?? []).map((h) => {
            const k = heldKey(h);
            return [
              <tr key={k} data-testid="held-row" data-device={h.device_id} data-patient={h.patient_id}>
                <td class="nowrap">{formatDateTime(h.observed_at)}</td>
                <td>{h.patient_label ?? `#${h.patient_id}`}</td>
                <td class="ident">{h.device_id}</td>
                <td class="num">{valueText(h.value)} <span title={`UCUM ${h.unit}`}>{unitText(h.unit)}</span><div class="sub" title={`MDC ${h.mdc_code}`}>{h.metric}</div></td>
                <td>{h.flow}</td>
                <td class="detail">{h.reason}</td>
                <td class="cell-actions"><PayloadButton open={expanded.has(k)} testId="held-payload-toggle" onClick={() => toggle(k)} /></td>
              </tr>,
              expanded.has(k) && (
                <tr key={`${k}-payload`} class="payload-row"><td colSpan={7}><pre data-testid="held-payload">{h.payload}</pre></td></tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </>
  );
}

export function RejectedList() {
  const { data } = useLoad((b) => b.rejected(), [], POLL_MS);
  const [expanded, toggle] = useExpanded<number>();
  return (
    <>
      <p class="muted intro">
        Payloads refused at ingest: no profile for their topic, not JSON, a field missing, a unit or time Vigil cannot
        read. Nothing of them was stored as a reading. The reason says what to fix, usually in the device's profile.
      </p>
      <table class="dense" data-testid="rejected-table">
        <thead>
          <tr><th>Received</th><th>Origin</th><th>Reason</th><th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && data.length === 0 && <tr><td colSpan={4} class="muted">Nothing rejected.</td></tr>}
          {(data ?? []).map((r) => [
            <tr key={r.id} data-testid="rejected-row" data-id={r.id} data-reason={r.reason}>
              <td class="nowrap">{formatDateTime(r.received_at)}</td>
              <td><span class="ident">{r.origin}</span><div class="sub">{r.source}</div></td>
              <td><strong>{codeText(r.reason)}</strong><div class="detail">{r.detail}</div></td>
              <td class="cell-actions">
                <PayloadButton open={expanded.has(r.id)} testId="rejected-payload-toggle" onClick={() => toggle(r.id)} />
              </td>
            </tr>,
            expanded.has(r.id) && (
              <tr key={`${r.id}-payload`} class="payload-row"><td colSpan={4}><pre data-testid="rejected-payload">{r.payload}</pre></td></tr>
            ),
          ])}
        </tbody>
      </table>
    </>
  );
}
