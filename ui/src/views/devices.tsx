// Devices and pairing: the registry, audited unpairing, registration, pairing with a verified patient
// and consent per flow.
import { useState } from 'preact/hooks';
import type { Device } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad } from '../components/hooks';
import { formatDateTime } from '../components/format';
import { ConsentForm, PairForm, RegisterForm } from '../components/PairingForms';

export function DevicesView() {
  const { data: devices, reload } = useLoad((b) => b.devices(), []);
  const { data: profiles } = useLoad((b) => b.profiles(), []);
  return (
    <section>
      <h1>Devices &amp; pairing</h1>
      <DeviceTable devices={devices} onChanged={reload} />
      <div class="forms-grid">
        <PairForm devices={devices ?? []} onPaired={reload} />
        <RegisterForm profiles={profiles ?? []} onRegistered={reload} />
        <ConsentForm />
      </div>
    </section>
  );
}

function DeviceTable({ devices, onChanged }: { devices: Device[] | undefined; onChanged(): Promise<void> }) {
  const backend = useBackend();
  const { busy, run } = useAction();
  const [confirming, setConfirming] = useState<string | null>(null);
  const [result, setResult] = useState('');

  const unpair = async (d: Device) => {
    if (await run(() => backend.unpairDevice(d.device_id))) {
      setResult(`✓ ${d.device_id} unpaired from ${d.patient_label}. Its readings now go to quarantine until it is paired again.`);
      setConfirming(null);
      await onChanged();
    }
  };

  return (
    <div class="panel">
      <h2>Registered devices</h2>
      {result && <p class="result" role="status" data-testid="devices-result">{result}</p>}
      <table class="dense">
        <thead><tr><th>Device</th><th>Label</th><th>Profile</th><th>Patient</th><th>Paired since</th><th><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          {(devices ?? []).map((d) => {
            const paired = d.pairing_id !== null;
            // Rust only unpairs an open pairing: one made for a period ends by itself.
            const open = paired && d.paired_until === null;
            return [
              <tr key={d.device_id} data-testid="device-row" data-device={d.device_id} data-paired={String(paired)}>
                <td>{d.device_id}</td>
                <td>{d.label ?? '—'}</td>
                <td>{d.profile_id ?? '—'}{d.demo && <> <span class="badge validity-demo" title="Its readings are demo or test data">DEMO</span></>}</td>
                <td>{paired ? d.patient_label : <span class="badge unpaired">○ Not paired</span>}</td>
                <td>{formatDateTime(d.paired_since)}{d.paired_until && <div class="sub">until {formatDateTime(d.paired_until)}</div>}</td>
                <td class="cell-actions">
                  {open && <button type="button" data-testid="device-unpair" onClick={() => setConfirming(d.device_id)}>Unpair</button>}
                </td>
              </tr>,
              confirming === d.device_id && (
                <tr key={`${d.device_id}-confirm`} class="form-row">
                  <td colSpan={6}>
                    <div class="inline-form">
                      <span>Unpair <strong>{d.device_id}</strong> from <strong>{d.patient_label}</strong>? Its readings will be quarantined until it is paired again.</span>
                      <button type="button" class="danger" data-testid="device-unpair-confirm" disabled={busy} onClick={() => unpair(d)}>Confirm unpair</button>
                      <button type="button" onClick={() => setConfirming(null)}>Cancel</button>
                    </div>
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </div>
  );
}
