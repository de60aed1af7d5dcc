// Registration, pairing and consent forms. A pairing can only be confirmed for a patient the EHR (or
// the sandbox registry) has just verified: changing the identifier voids the verification. A back-dated
// pairing asks for its reason, and taking a device from another patient asks to confirm whom it replaces.
import { useState } from 'preact/hooks';
import type { Device, Flow, VerifiedPatient } from '../backend';
import { BACKDATING_TOLERANCE_SECS } from '../backend/mock';
import { useBackend, useSession } from '../context';
import { useAction, useLoad } from './hooks';

export const DEFAULT_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5.99999.2';
const FLOWS: Flow[] = ['store', 'ehr-write'];

/** An instant as a datetime-local value in local time, to the second ("2026-12-03T09:05:12"). */
export function rfc3339ToLocal(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A datetime-local value ("2026-11-24T14:30", local time) as RFC 3339 UTC; empty means null. */
export function localToRfc3339(local: string): string | null {
  if (!local) return null;
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

/**
 * The patient a pairing is for: the identifier typed, and the patient the EHR (or the sandbox
 * registry) verified for it. Changing the identifier voids the verification.
 */
export function usePatientLookup(run: ReturnType<typeof useAction>['run']) {
  const backend = useBackend();
  const [system, setSystem] = useState(DEFAULT_SYSTEM);
  const [value, setValue] = useState('');
  const [verified, setVerified] = useState<VerifiedPatient | null>(null);
  const voiding = (set: (v: string) => void) => (v: string) => { set(v); setVerified(null); };
  const lookup = async () => {
    setVerified(null);
    await run(async () => setVerified(await backend.lookupPatient(system.trim(), value.trim())));
  };
  return { system, value, verified, lookup, setSystem: voiding(setSystem), setValue: voiding(setValue) };
}

/** The identifier fields and the button that looks the patient up (the form's submit). */
export function PatientIdentifier({ patient, testid, busy }: {
  patient: ReturnType<typeof usePatientLookup>; testid: string; busy: boolean;
}) {
  return (
    <>
      <label>Identifier system
        <input data-testid={`${testid}-system`} value={patient.system} onInput={(e) => patient.setSystem(e.currentTarget.value)} />
      </label>
      <label>Identifier value (e.g. MRN)
        <input data-testid={`${testid}-value`} value={patient.value} onInput={(e) => patient.setValue(e.currentTarget.value)} />
      </label>
      <button type="submit" data-testid={`${testid}-lookup`} disabled={busy || !patient.system.trim() || !patient.value.trim()}>
        Look up
      </button>
    </>
  );
}

export function PairForm({ devices, onPaired }: { devices: Device[]; onPaired(): Promise<void> }) {
  const backend = useBackend();
  const { busy, run } = useAction();
  const [device, setDevice] = useState('');
  const patient = usePatientLookup(run);
  const { verified } = patient;
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
    setResult('');
    await patient.lookup();
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
      patient.setValue('');
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
      <PatientIdentifier patient={patient} testid="pair" busy={busy} />
      {verified && (
        <div class="verified" data-testid="pair-verified">
          <PatientFacts patient={verified} />
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

interface RegisterProps {
  profiles: string[];
  /** Prefill for a device heard but not registered: its id, and the profile its topic suggests. */
  initial?: { id: string; profile: string | null };
  onRegistered(deviceId: string): Promise<void>;
}

export function RegisterForm({ profiles, initial, onRegistered }: RegisterProps) {
  const backend = useBackend();
  const { busy, run } = useAction();
  const [id, setId] = useState(initial?.id ?? '');
  const [profile, setProfile] = useState(initial?.profile ?? '');
  const [label, setLabel] = useState('');
  const [result, setResult] = useState('');
  // A suggested profile that is not loaded is no choice: the select would show one value and send another.
  const chosen = profiles.includes(profile) ? profile : profiles[0] || '';
  const ok = id.trim() !== '' && chosen !== '';

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!ok) return;
    const deviceId = id.trim();
    if (await run(() => backend.registerDevice(deviceId, chosen, label.trim()))) {
      setResult(`✓ ${deviceId} registered with profile ${chosen}. Pair it before its readings count.`);
      setId('');
      setLabel('');
      await onRegistered(deviceId);
    }
  };

  return (
    <form class="panel form" onSubmit={submit} aria-labelledby="register-title">
      <h2 id="register-title">Register a device</h2>
      <label>Device id (serial) <input data-testid="register-id" value={id} onInput={(e) => setId(e.currentTarget.value)} /></label>
      <label>
        Profile
        <select data-testid="register-profile" value={chosen} onChange={(e) => setProfile(e.currentTarget.value)}>
          {profiles.map((p) => <option key={p} value={p}>{p}</option>)}
        </select>
      </label>
      <label>Label <span class="hint">(optional, e.g. "Bed 4 monitor")</span>
        <input data-testid="register-label" value={label} onInput={(e) => setLabel(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" data-testid="register-submit" disabled={!ok || busy}>Register</button>
      {result && <p class="result" role="status" data-testid="register-result">{result}</p>}
    </form>
  );
}

/** Who the verified patient is: what the operator checks before confirming. */
export function PatientFacts({ patient }: { patient: VerifiedPatient }) {
  return (
    <>
      <h3>✓ Verified patient</h3>
      <dl>
        <dt>Name</dt><dd>{patient.display}</dd>
        <dt>Identifier</dt><dd>{patient.value} <span class="muted">({patient.system})</span></dd>
        <dt>Birth date</dt><dd>{patient.birth_date ?? 'not given'}</dd>
        <dt>Verified by</dt><dd>{patient.verified_by}</dd>
        {patient.fhir_id && <><dt>FHIR id</dt><dd>{patient.fhir_id}</dd></>}
      </dl>
    </>
  );
}

/**
 * Onboarding a device heard but not registered: Register, prefilled with its id and the profile its
 * topic suggests, then the usual verified-patient pairing of that device alone. Two confirmed steps:
 * nothing is paired by one click.
 */
export function RegisterThenPair({ deviceId, profile, onChanged }: {
  deviceId: string; profile: string | null; onChanged(): Promise<void>;
}) {
  const backend = useBackend();
  const { reportError } = useSession();
  const { data: profiles } = useLoad((b) => b.profiles(), []);
  const [registered, setRegistered] = useState<Device[] | null>(null);

  const next = async (id: string) => {
    try {
      setRegistered((await backend.devices()).filter((d) => d.device_id === id));
      await onChanged();
    } catch (e) {
      reportError(e);
    }
  };

  if (registered === null) {
    return <RegisterForm profiles={profiles ?? []} initial={{ id: deviceId, profile }} onRegistered={next} />;
  }
  return (
    <>
      <p class="result ok" role="status" data-testid="onboard-registered">
        ✓ {registered[0]?.device_id ?? deviceId} is registered. Now pair it: look its patient up, check who it is, confirm.
      </p>
      <PairForm devices={registered} onPaired={onChanged} />
    </>
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
