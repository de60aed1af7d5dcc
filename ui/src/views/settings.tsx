// Settings: where the EHR and the broker are. Saving restarts the pipeline, so it asks first.
// Secrets (tokens, keys) are not here: they come from the environment or the OS keyring.
import { useEffect, useState } from 'preact/hooks';
import type { ConnectionResult, ConnectionTarget, EhrKind, Settings } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad } from '../components/hooks';

/** What is missing for the draft to be saved, as sentences for the operator. */
export function problems(s: Settings): string[] {
  const out: string[] = [];
  if (s.ehr.kind === 'fhir' && !s.ehr.base_url) out.push('A FHIR EHR needs its base URL.');
  if (s.ehr.kind === 'hl7v2' && !s.ehr.mllp_addr) out.push('An HL7 v2 EHR needs its MLLP address (host:port).');
  if (s.broker.mode === 'external' && !s.broker.url) out.push('An external broker needs its URL.');
  return out;
}

const orNull = (v: string) => (v === '' ? null : v);

export function SettingsView() {
  const backend = useBackend();
  const { data: saved, reload } = useLoad((b) => b.settings(), []);
  const [draft, setDraft] = useState<Settings | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [saveResult, setSaveResult] = useState('');
  const [test, setTest] = useState<{ target: ConnectionTarget; r: ConnectionResult } | null>(null);
  const { busy, run } = useAction();

  useEffect(() => { if (saved) setDraft(saved); }, [saved]);
  if (!draft || !saved) return <section><h1>Settings</h1><p class="muted">Loading…</p></section>;

  const dirty = JSON.stringify(draft) !== JSON.stringify(saved);
  const invalid = problems(draft);
  const ehr = (patch: Partial<Settings['ehr']>) => setDraft({ ...draft, ehr: { ...draft.ehr, ...patch } });
  const broker = (patch: Partial<Settings['broker']>) => setDraft({ ...draft, broker: { ...draft.broker, ...patch } });

  const save = async () => {
    if (await run(() => backend.saveSettings(draft, reason.trim()))) {
      setConfirming(false);
      setReason('');
      setSaveResult('✓ Saved. The pipeline restarted with the new settings.');
      await reload();
    }
  };
  const testConnection = (target: ConnectionTarget) =>
    run(async () => setTest({ target, r: await backend.testConnection(target) }));

  return (
    <section>
      <h1>Settings</h1>
      <form class="settings" onSubmit={(e) => { e.preventDefault(); if (dirty && !invalid.length) setConfirming(true); }}>
        <fieldset class="panel">
          <legend>EHR</legend>
          <label>
            Kind
            <select data-testid="settings-ehr-kind" value={draft.ehr.kind} onChange={(e) => ehr({ kind: e.currentTarget.value as EhrKind })}>
              <option value="sandbox">Sandbox (local store, no EHR)</option>
              <option value="fhir">FHIR R4 REST</option>
              <option value="hl7v2">HL7 v2 ORU^R01 over MLLP</option>
            </select>
          </label>
          {draft.ehr.kind !== 'sandbox' && (
            <label>
              Environment <span class="hint">(only a test EHR takes demo data; it is marked as test data there)</span>
              <select data-testid="settings-ehr-environment" value={draft.ehr.environment}
                onChange={(e) => ehr({ environment: e.currentTarget.value as Settings['ehr']['environment'] })}>
                <option value="production">Production (real patient records)</option>
                <option value="test">Test EHR</option>
              </select>
            </label>
          )}
          {draft.ehr.kind === 'fhir' && <>
            <label>Base URL
              <input data-testid="settings-ehr-url" type="url" value={draft.ehr.base_url ?? ''} placeholder="https://ehr.example.org/fhir"
                onInput={(e) => ehr({ base_url: orNull(e.currentTarget.value) })} />
            </label>
            <label>
              Authentication <span class="hint">(credentials come from the environment or the OS keyring)</span>
              <select data-testid="settings-ehr-auth" value={draft.ehr.auth}
                onChange={(e) => ehr({ auth: e.currentTarget.value as Settings['ehr']['auth'] })}>
                <option value="none">None</option>
                <option value="bearer">Bearer token</option>
                <option value="smart">SMART Backend Services</option>
              </select>
            </label>
          </>}
          {draft.ehr.kind === 'hl7v2' && (
            <label>MLLP address
              <input data-testid="settings-mllp-addr" value={draft.ehr.mllp_addr ?? ''} placeholder="ehr-gateway.example.org:2575"
                onInput={(e) => ehr({ mllp_addr: orNull(e.currentTarget.value) })} />
            </label>
          )}
          <button type="button" data-testid="settings-test-ehr" disabled={busy} onClick={() => testConnection('ehr')}>Test EHR connection</button>
        </fieldset>
        <fieldset class="panel">
          <legend>Device broker (MQTT)</legend>
          <label>
            Mode
            <select data-testid="settings-broker-mode" value={draft.broker.mode}
              onChange={(e) => broker({ mode: e.currentTarget.value as Settings['broker']['mode'] })}>
              <option value="embedded">Embedded (Vigil's own ingest endpoint)</option>
              <option value="external">External broker (Mosquitto, EMQX…)</option>
            </select>
          </label>
          {draft.broker.mode === 'external' ? (
            <label>Broker URL
              <input data-testid="settings-broker-url" value={draft.broker.url ?? ''} placeholder="mqtts://broker.example.org:8883"
                onInput={(e) => broker({ url: orNull(e.currentTarget.value) })} />
            </label>
          ) : (
            <label>Listen address
              <input data-testid="settings-broker-listen" value={draft.broker.listen ?? ''} placeholder="127.0.0.1:1883"
                onInput={(e) => broker({ listen: orNull(e.currentTarget.value) })} />
            </label>
          )}
          <button type="button" data-testid="settings-test-broker" disabled={busy} onClick={() => testConnection('broker')}>Test broker connection</button>
        </fieldset>
        <fieldset class="panel">
          <legend>Read only</legend>
          <dl class="figures">
            <dt>Store</dt><dd data-testid="settings-store-url">{draft.store_url}</dd>
            <dt>Rules version</dt><dd data-testid="settings-rules-version">{draft.rules_version ?? 'none loaded'}</dd>
            <dt>Demo mode</dt><dd>{draft.demo ? 'yes (made-up patients)' : 'no'}</dd>
          </dl>
        </fieldset>
        {test && (
          <p class={`result ${test.r.ok ? 'ok' : 'fail'}`} data-testid="settings-test-result" data-ok={String(test.r.ok)} role="status">
            {test.r.ok ? '✓' : '✗'} {test.target === 'ehr' ? 'EHR' : 'Broker'}: {test.r.message}
          </p>
        )}
        {dirty && <p class="hint">Connection tests use the saved settings; save first to test your changes.</p>}
        {invalid.map((p) => <p key={p} class="invalid">✖ {p}</p>)}
        {confirming ? (
          <div class="inline-form confirm">
            <span>Saving <strong>restarts the pipeline</strong>: ingest pauses for a few seconds and devices resend what was not acknowledged.</span>
            <label>
              Reason <span class="hint">(required, recorded in the audit log)</span>
              <input data-testid="settings-reason" value={reason} required onInput={(e) => setReason(e.currentTarget.value)} />
            </label>
            <button type="button" class="primary" data-testid="settings-save-confirm" disabled={busy || reason.trim() === ''}
              onClick={save}>Save and restart</button>
            <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
          </div>
        ) : (
          <div class="row">
            <button type="submit" class="primary" data-testid="settings-save" disabled={!dirty || invalid.length > 0}>Save…</button>
            {dirty && <button type="button" onClick={() => setDraft(saved)}>Discard changes</button>}
          </div>
        )}
        {saveResult && <p class="result ok" role="status" data-testid="settings-save-result">{saveResult}</p>}
      </form>
    </section>
  );
}
