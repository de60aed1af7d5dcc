// Pairing and consent forms. A pairing can only be confirmed for a patient the EHR (or the sandbox
// registry) has just verified: changing the identifier voids the verification. A back-dated pairing
// asks for its reason, and taking a device from another patient asks to confirm whom it replaces.
import { useState } from 'preact/hooks';
import type { Device, Flow, VerifiedPatient } from '../backend';
import { BACKDATING_TOLERANCE_SECS } from '../backend/mock';
import { useBackend } from '../context';
import { useAction } from './hooks';

export const DEFAULT_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5.99999.2';
const FLOWS: Flow[] = ['store', 'ehr-write'];

/** A datetime-local value ("2026-11-24T14:30", local time) as RFC 3339 UTC; empty means null. */
export function localToRfc3339(local: string): string | null {
  if (!local) return null;
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

export function PairForm({ devices, onPaired }: { devices: Device[]; onPaired(): Promise<void> }) {
  const backend = useBackend();
  const { busy, run } = useAction();
  const [device, setDevice] = useState('');
  const [system, setSystem] = useState(DEFAULT_SYSTEM);
  const [value, setValue] = useState('');
  const [verified, setVerified] = useState<VerifiedPatient | null>(null);
  const [from, setFrom] = useState('');
  const [until, setUntil] = useState('');
  const [reason, setReason] = useState('');
  const [replace, setReplace] = useState(false);
  const [result, setResult] = useState('');

  // Default to the first device without a pairing: that is the one that usually needs one.
  const chosen = device || (devices.find((d) => d.pairing_id === null) ?? devices[0])?.device_id || '';
  const badPeriod = from !== '' && until !== '' && until <= from;
  const start = localToRfc3339(from);
  const backDated = start !== null && Date.parse(start) < Date.now() - BACKDATING_TOLERANCE_SECS * 1000;
  const needsReason = backDated && !reason.trim();
  // Only an open pairing can end where the new one starts; its patient is the one a replacement names.
  const current = devices.find((d) => d.device_id === chosen && d.pairing_id !== null && d.paired_until === null);
  const replacing = replace && current ? current : null;

  const lookup = async (e: Event) => {
    e.preventDefault();
    setVerified(null);
    setResult('');
    await run(async () => setVerified(await backend.lookupPatient(system.trim(), value.trim())));
  };

  const confirm = async () => {
    if (!verified || badPeriod || needsReason) return;
    const p = verified;
    const request = {
      device_id: chosen, system: p.system, value: p.value, from: start, until: localToRfc3339(until),
      reason: backDated ? reason.trim() : null, replacing: replacing?.patient_id ?? null,
    };
    if (await run(() => backend.pairDevice(request))) {
      const instead = replacing ? `, replacing ${replacing.patient_label}` : '';
      setResult(`✓ ${chosen} paired with ${p.display} (${p.value})${instead}.`);
      setVerified(null);
      setValue('');
      setFrom('');
      setUntil('');
      setReason('');
      setReplace(false);
      await onPaired();
    }
  };

  return (
    <form class="panel form" onSubmit={lookup} aria-labelledby="pair-title">
      <h2 id="pair-title">Pair a device with a patient</h2>
      <label>
        Device
        <select data-testid="pair-device" value={chosen} onChange={(e) => { setDevice(e.currentTarget.value); setReplace(false); }}>
          {devices.map((d) => (
            <option key={d.device_id} value={d.device_id}>
              {d.device_id}{d.label ? ` (${d.label})` : ''}{d.pairing_id === null ? ', not paired' : `, paired: ${d.patient_label}`}
            </option>
          ))}
        </select>
      </label>
      <label>Identifier system
        <input data-testid="pair-system" value={system} onInput={(e) => { setSystem(e.currentTarget.value); setVerified(null); }} />
      </label>
      <label>Identifier value (e.g. MRN)
        <input data-testid="pair-value" value={value} onInput={(e) => { setValue(e.currentTarget.value); setVerified(null); }} />
      </label>
      <button type="submit" data-testid="pair-lookup" disabled={busy || !system.trim() || !value.trim()}>Look up</button>
      {verified && (
        <div class="verified" data-testid="pair-verified">
          <h3>✓ Verified patient</h3>
          <dl>
            <dt>Name</dt><dd>{verified.display}</dd>
            <dt>Identifier</dt><dd>{verified.value} <span class="muted">({verified.system})</span></dd>
            <dt>Birth date</dt><dd>{verified.birth_date ?? 'not given'}</dd>
            <dt>Verified by</dt><dd>{verified.verified_by}</dd>
            {verified.fhir_id && <><dt>FHIR id</dt><dd>{verified.fhir_id}</dd></>}
          </dl>
          <div class="row">
            <label>From <span class="hint">(optional; default now)</span>
              <input type="datetime-local" data-testid="pair-from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
            </label>
            <label>Until <span class="hint">(optional; open-ended)</span>
              <input type="datetime-local" data-testid="pair-until" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
            </label>
          </div>
          {badPeriod && <p class="invalid">✖ "Until" must be after "From".</p>}
          {backDated && (
            <label>Reason for back-dating <span class="hint">(required: kept in the audit log)</span>
              <input data-testid="pair-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
            </label>
          )}
          {current && (
            <label class="check">
              <input type="checkbox" data-testid="pair-replace" checked={replace} onChange={(e) => setReplace(e.currentTarget.checked)} />
              {' '}{chosen} is paired with <strong>{current.patient_label}</strong>: end that pairing where this one
              starts, and pair {chosen} with <strong>{verified.display}</strong> instead
            </label>
          )}
          <button type="button" class="primary" data-testid="pair-confirm" disabled={busy || badPeriod || needsReason || !chosen} onClick={confirm}>
            {replacing
              ? `Confirm replacement: ${chosen} from ${replacing.patient_label} to ${verified.display}`
              : `Confirm pairing: ${chosen} with ${verified.display}`}
          </button>
        </div>
      )}
      {result && <p class="result" role="status" data-testid="pair-result">{result}</p>}
    </form>
  );
}

export function ConsentForm() {
  const backend = useBackend();
  const { busy, run } = useAction();
  const [system, setSystem] = useState(DEFAULT_SYSTEM);
  const [value, setValue] = useState('');
  const [flow, setFlow] = useState<Flow>('store');
  const [reason, setReason] = useState('');
  const [result, setResult] = useState('');
  const ok = system.trim() !== '' && value.trim() !== '' && !busy;

  const set = async (granted: boolean) => {
    const v = value.trim();
    if (await run(() => backend.setConsent(system.trim(), v, flow, granted))) {
      setResult(`✓ Consent for "${flow}" ${granted ? 'granted' : 'withdrawn'} for ${v}.`);
    }
  };

  const releaseHeld = async () => {
    const v = value.trim();
    let moved = 0;
    if (await run(async () => { moved = await backend.releaseHeld(system.trim(), v, reason.trim()); })) {
      setResult(`✓ ${moved} held readings of ${v} stored.`);
    }
  };

  return (
    <form class="panel form" onSubmit={(e) => e.preventDefault()} aria-labelledby="consent-title">
      <h2 id="consent-title">Consent</h2>
      <p class="muted">
        Unknown consent counts as no: data for that flow is held, not dropped. Alarms never depend on
        consent: a paired patient's readings are always evaluated.
      </p>
      <label>Identifier system
        <input data-testid="consent-system" value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
      </label>
      <label>Identifier value
        <input data-testid="consent-value" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <label>
        Flow
        <select data-testid="consent-flow" value={flow} onChange={(e) => setFlow(e.currentTarget.value as Flow)}>
          {FLOWS.map((f) => <option key={f} value={f}>{f}</option>)}
        </select>
      </label>
      <div class="row">
        <button type="button" class="primary" data-testid="consent-grant" disabled={!ok} onClick={() => set(true)}>Grant</button>
        <button type="button" class="danger" data-testid="consent-withdraw" disabled={!ok} onClick={() => set(false)}>Withdraw</button>
      </div>
      <label>Reason, to store held readings once store consent is recorded
        <input data-testid="held-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      <button type="button" data-testid="held-release" disabled={!ok || reason.trim() === ''} onClick={releaseHeld}>
        Store held readings
      </button>
      {result && <p class="result" role="status" data-testid="consent-result">{result}</p>}
    </form>
  );
}
