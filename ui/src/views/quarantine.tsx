// Quarantine: readings Vigil would not attribute to a patient, kept for forensic review, grouped by
// device and reason so that an unpaired monitor's thousands of readings are one row. The usual fix is
// one action: pair the device with its (verified) patient from when it started sending, and release
// the readings that pairing covers, each re-identified. Held and rejected payloads have tabs of their own.
import { useState } from 'preact/hooks';
import type { GroupReleaseOutcome, QuarantineGroup, VerifiedPatient } from '../backend';
import { BACKDATING_TOLERANCE_SECS } from '../backend/mock';
import { useBackend } from '../context';
import { useAction, useLoad } from '../components/hooks';
import { codeText, countText, formatDateTime } from '../components/format';
import { PatientFacts, PatientIdentifier, RegisterForm, localToRfc3339, rfc3339ToLocal, usePatientLookup } from '../components/PairingForms';
import { ReasonForm } from '../components/ReasonForm';
import { HeldList, RejectedList } from './held-rejected';
import { QuarantineRows, type RowsFilter } from './quarantine-rows';

type Tab = 'quarantine' | 'held' | 'rejected';
const TABS: { id: Tab; label: string }[] = [
  { id: 'quarantine', label: 'Quarantine' },
  { id: 'held', label: 'Held (no consent)' },
  { id: 'rejected', label: 'Rejected' },
];
const POLL_MS = 10_000;
/** The reasons a pairing cures; the others (an implausible value, a patient mismatch...) it does not. */
const PAIRING_CURES = new Set(['no_active_pairing', 'unknown_device']);

export function QuarantineView() {
  const [tab, setTab] = useState<Tab>('quarantine');
  return (
    <section>
      <h1>Quarantine</h1>
      <div class="tabs" role="tablist" aria-label="Payloads that need attention">
        {TABS.map((t) => (
          <button key={t.id} type="button" role="tab" data-testid={`qtab-${t.id}`} aria-selected={tab === t.id}
            onClick={() => setTab(t.id)}>{t.label}</button>
        ))}
      </div>
      {tab === 'quarantine' && <Groups />}
      {tab === 'held' && <HeldList />}
      {tab === 'rejected' && <RejectedList />}
    </section>
  );
}

const groupId = (g: { device_id: string; reason: string }) => `${g.device_id}-${g.reason}`;

interface Outcome { text: string; detail: string; ok: boolean }

function Groups() {
  const backend = useBackend();
  const { data: groups, reload } = useLoad((b) => b.quarantineGroups(), [], POLL_MS);
  const [open, setOpen] = useState<{ id: string; form: 'pair' | 'discard' } | null>(null);
  const [rowsOf, setRowsOf] = useState<RowsFilter>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  // Bumped after a group action so the readings below are read again.
  const [version, setVersion] = useState(0);
  const { busy, run } = useAction();

  const done = async (o: Outcome) => {
    setOutcome(o);
    setOpen(null);
    setVersion((v) => v + 1);
    await reload();
  };
  const discard = async (g: QuarantineGroup, why: string) => {
    let n = 0;
    if (await run(async () => { n = await backend.discardGroup(g.device_id, g.reason, why); })) {
      await done({ ok: true, text: `✖ ${countText(n)} readings of ${g.device_id} (${codeText(g.reason)}) discarded.`, detail: '' });
    }
  };
  const released = (g: QuarantineGroup) => async (o: GroupReleaseOutcome, p: VerifiedPatient, from: string) => done({
    ok: o.still_quarantined === 0,
    text: `✓ ${g.device_id} paired with ${p.display} (${p.value}) from ${formatDateTime(from)}: ${countText(o.stored)} stored, `
      + `${countText(o.held)} held (no consent), ${countText(o.duplicate)} duplicate, ${countText(o.still_quarantined)} still quarantined.`,
    detail: o.detail,
  });

  return (
    <>
      <p class="muted intro">
        Readings that could not be attributed to a patient, grouped by device and reason. They are never charted or
        sent to the EHR. Fix the cause (usually the pairing), then release them: they are re-validated one by one.
      </p>
      {outcome && (
        <div class={`result ${outcome.ok ? 'ok' : 'fail'}`} data-testid="qgroup-outcome" role="status">
          {outcome.text}{outcome.detail && <div class="sub">{outcome.detail}</div>}
        </div>
      )}
      <table class="dense qgroups" data-testid="qgroup-table">
        <thead>
          <tr><th>Device</th><th>Reason</th><th class="num">Readings</th><th>Observed</th><th>Registered</th>
            <th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {groups !== undefined && groups.length === 0 && <tr><td colSpan={6} class="muted">Nothing in quarantine.</td></tr>}
          {(groups ?? []).map((g) => {
            const id = groupId(g);
            return [
              <tr key={id} data-testid={`qgroup-${id}`} data-device={g.device_id} data-reason={g.reason}
                class={rowsOf && groupId(rowsOf) === id ? 'selected' : undefined}>
                <td class="ident">{g.device_id}<div class="sub">{g.origin}</div></td>
                <td><strong>{codeText(g.reason)}</strong><div class="detail">{g.detail}</div></td>
                <td class="num" data-testid={`qgroup-count-${id}`}>{countText(g.count)}</td>
                <td class="nowrap">
                  {formatDateTime(g.first_observed)}<div class="sub">to {formatDateTime(g.last_observed)}</div>
                </td>
                <td class="nowrap">{g.registered ? <>✓ {g.profile_id}</> : <span class="badge unpaired">? not registered</span>}</td>
                <td class="cell-actions">
                  <button type="button" data-testid={`qgroup-rows-${id}`}
                    onClick={() => setRowsOf({ device_id: g.device_id, reason: g.reason })}>Rows</button>
                  {PAIRING_CURES.has(g.reason) && (
                    <button type="button" class="primary" data-testid={`qgroup-pair-${id}`}
                      onClick={() => { setOpen({ id, form: 'pair' }); setOutcome(null); }}>Pair and release…</button>
                  )}
                  <button type="button" class="danger" data-testid={`qgroup-discard-${id}`}
                    onClick={() => { setOpen({ id, form: 'discard' }); setOutcome(null); }}>Discard…</button>
                </td>
              </tr>,
              open?.id === id && (
                <tr key={`${id}-form`} class="form-row">
                  <td colSpan={6}>
                    {open.form === 'pair'
                      ? <PairAndRelease group={g} onReleased={released(g)} onCancel={() => setOpen(null)} />
                      : (
                        <ReasonForm prefix="qgroup-discard" action={`Discard ${countText(g.count)} readings`} busy={busy}
                          onCancel={() => setOpen(null)} onConfirm={(why) => discard(g, why)} />
                      )}
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
      <QuarantineRows key={rowsOf ? groupId(rowsOf) : 'all'} filter={rowsOf} version={version} onChanged={reload}
        onShowAll={() => setRowsOf(null)} />
    </>
  );
}

interface PairProps {
  group: QuarantineGroup;
  onReleased(o: GroupReleaseOutcome, patient: VerifiedPatient, from: string): Promise<void>;
  onCancel(): void;
}

/**
 * Pair the group's device with a verified patient from a time (by default its first quarantined
 * reading), then release what that pairing covers: one confirmed action. An unregistered device is
 * registered first, prefilled.
 */
function PairAndRelease({ group, onReleased, onCancel }: PairProps) {
  const backend = useBackend();
  const { busy, run } = useAction();
  const { data: profiles } = useLoad((b) => b.profiles(), []);
  const [registered, setRegistered] = useState(group.registered);
  const patient = usePatientLookup(run);
  const { verified } = patient;
  const [from, setFrom] = useState(() => rfc3339ToLocal(group.first_observed));
  const [backdating, setBackdating] = useState('');
  const [reason, setReason] = useState('');

  // At the first reading's second, "from" is that reading's own instant: the field holds whole seconds
  // only, and the lost milliseconds would leave the reading outside the pairing.
  const chosen = localToRfc3339(from);
  const start = chosen !== null && Date.parse(chosen) === Math.floor(Date.parse(group.first_observed) / 1000) * 1000
    ? group.first_observed : chosen;
  const backDated = start !== null && Date.parse(start) < Date.now() - BACKDATING_TOLERANCE_SECS * 1000;
  const ready = verified !== null && start !== null && (!backDated || backdating.trim() !== '') && reason.trim() !== '';

  if (!registered) {
    return (
      <div class="qgroup-register" data-testid="qgroup-register">
        <p><strong>{group.device_id} is not registered.</strong> Register it first; then pair it and release its readings here.</p>
        <RegisterForm profiles={profiles ?? []} initial={{ id: group.device_id, profile: group.profile_id }}
          onRegistered={async (id) => { if (id === group.device_id) setRegistered(true); }} />
        <button type="button" onClick={onCancel}>Cancel</button>
      </div>
    );
  }

  const lookup = async (e: Event) => {
    e.preventDefault();
    await patient.lookup();
  };
  const submit = async () => {
    if (!ready) return;
    const request = { device_id: group.device_id, system: verified.system, value: verified.value, from: start, until: null,
      reason: backDated ? backdating.trim() : null, replacing: null };
    let out: GroupReleaseOutcome | null = null;
    if (await run(async () => { out = await backend.pairAndRelease(request, reason.trim()); })) {
      await onReleased(out!, verified, start);
    }
  };

  return (
    <form class="form pair-release" onSubmit={lookup} aria-label={`Pair ${group.device_id} and release its readings`}>
      <p>
        Pair <strong>{group.device_id}</strong> with its patient from the time it started sending, then release every
        quarantined reading that pairing covers ({countText(group.count)} here, from {formatDateTime(group.first_observed)}).
      </p>
      <div class="row">
        <PatientIdentifier patient={patient} testid="qgroup-pair" busy={busy} />
        <button type="button" onClick={onCancel}>Cancel</button>
      </div>
      {verified && (
        <div class="verified" data-testid="qgroup-pair-verified">
          <PatientFacts patient={verified} />
          <div class="row">
            <label>Paired from <span class="hint">(prefilled: its first quarantined reading)</span>
              <input type="datetime-local" step={1} data-testid="qgroup-pair-from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
            </label>
            {backDated && (
              <label>Reason for back-dating <span class="hint">(required, audited)</span>
                <input data-testid="qgroup-pair-backdate" value={backdating} onInput={(e) => setBackdating(e.currentTarget.value)} />
              </label>
            )}
            <label>Reason for releasing <span class="hint">(required, audited)</span>
              <input data-testid="qgroup-pair-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
            </label>
          </div>
          <button type="button" class="primary" data-testid="qgroup-pair-submit" disabled={busy || !ready} onClick={submit}>
            Pair {group.device_id} with {verified.display}{start ? ` from ${formatDateTime(start)}` : ''} and release its readings
          </button>
        </div>
      )}
    </form>
  );
}
