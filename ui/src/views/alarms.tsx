// Alarms: the active list (priority first, then newest) with audited acknowledge and silence, where
// each alarm's pages went, and the history. Priority is shown by shape and word as well as colour
// (IEC 60601-1-8 style markers). Infrastructure alarms can be acknowledged together with one reason;
// alarms about a patient only one at a time.
import { useState } from 'preact/hooks';
import type { Alarm, AlarmKind, PageDelivery } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad, useNow } from '../components/hooks';
import { PRIORITY, ageText, formatDateTime, formatTime, secsSince, unitText, valueText } from '../components/format';
import { ReasonForm } from '../components/ReasonForm';
import { SoundToggle } from '../components/SoundToggle';

type Tab = 'active' | 'history';
type Open = { id: number; form: 'ack' | 'silence' } | null;

export const SILENCE_MINUTES = [2, 5, 15];

/** The silences offered: only where one changes something, and within what the alarm has left. */
const silenceChoices = (a: Alarm) => SILENCE_MINUTES.filter((m) => m <= a.silence_minutes_left);
const POLL_MS = 5000;
const COLUMNS = 10;

/** Active: high before medium before low, newest first within a priority. History: newest first. */
export function sortAlarms(list: Alarm[], tab: Tab): Alarm[] {
  const newest = (a: Alarm, b: Alarm) => Date.parse(b.raised_at) - Date.parse(a.raised_at);
  return [...list].sort(tab === 'active'
    ? (a, b) => PRIORITY[a.priority].rank - PRIORITY[b.priority].rank || newest(a, b)
    : newest);
}

/** Whether the alarm may go into a bulk acknowledgement now. */
const bulkable = (a: Alarm) => a.bulk_ack && a.acked_at === null && a.cleared_at === null;

export function AlarmsView() {
  const backend = useBackend();
  const [tab, setTab] = useState<Tab>('active');
  const [kind, setKind] = useState<AlarmKind | 'all'>('all');
  const [open, setOpen] = useState<Open>(null);
  const [minutes, setMinutes] = useState(SILENCE_MINUTES[0]!);
  const [picked, setPicked] = useState<Set<number>>(new Set());
  const [bulkOpen, setBulkOpen] = useState(false);
  const [bulkResult, setBulkResult] = useState('');
  const { busy, run } = useAction();
  const now = useNow(1000);
  const { data, reload } = useLoad((b) => b.alarms(tab === 'active'), [tab], POLL_MS);

  const list = sortAlarms(data ?? [], tab).filter((a) => kind === 'all' || a.kind === kind);
  // Only what is still eligible and shown counts as chosen: an alarm acknowledged elsewhere drops out.
  const eligible = tab === 'active' ? list.filter(bulkable) : [];
  const chosen = eligible.filter((a) => picked.has(a.id)).map((a) => a.id);
  const act = async (call: () => Promise<void>) => {
    if (await run(call)) { setOpen(null); await reload(); }
  };
  const pick = (id: number, on: boolean) => setPicked((s) => {
    const n = new Set(s);
    if (on) n.add(id); else n.delete(id);
    return n;
  });
  const switchTab = (t: Tab) => { setTab(t); setOpen(null); setBulkOpen(false); setPicked(new Set()); };
  const ackChosen = async (reason: string) => {
    let n = 0;
    if (await run(async () => { n = await backend.ackAlarms(chosen, reason); })) {
      setBulkResult(`✓ ${n} infrastructure alarm${n === 1 ? '' : 's'} acknowledged.`);
      setBulkOpen(false);
      setPicked(new Set());
      await reload();
    }
  };

  return (
    <section>
      <h1>Alarms</h1>
      <p class="secondary-note" data-testid="secondary-display-note">
        This console is a secondary display in a distributed alarm system (IEC 60601-1-8), not the primary
        alarm system: alarms reach staff through the configured alert sinks and the bedside monitors. Do not
        rely on this screen, or its sound, alone.
      </p>
      <div class="toolbar">
        <div class="tabs" role="tablist" aria-label="Alarm lists">
          <button type="button" role="tab" data-testid="alarms-active" aria-selected={tab === 'active'}
            onClick={() => switchTab('active')}>Active</button>
          <button type="button" role="tab" data-testid="alarms-history" aria-selected={tab === 'history'}
            onClick={() => switchTab('history')}>History</button>
        </div>
        <label>
          Kind{' '}
          <select data-testid="alarms-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as AlarmKind | 'all')}>
            <option value="all">All kinds</option>
            <option value="physiological">Physiological</option>
            <option value="technical">Technical</option>
          </select>
        </label>
        {tab === 'active' && (
          <button type="button" data-testid="alarm-bulk-ack" disabled={chosen.length === 0}
            title="Infrastructure alarms only; alarms about a patient are acknowledged one at a time"
            onClick={() => { setBulkOpen(true); setBulkResult(''); }}>
            Acknowledge selected ({chosen.length})
          </button>
        )}
        <span class="muted">{data === undefined ? 'Loading…' : `${list.length} shown`}</span>
        <span class="toolbar-fill" />
        <SoundToggle />
      </div>
      {bulkOpen && chosen.length > 0 && (
        <div class="panel" data-testid="alarm-bulk-form">
          <p>
            Acknowledge {chosen.length} infrastructure alarm{chosen.length === 1 ? '' : 's'} (
            {chosen.map((id) => `#${id}`).join(', ')}) with one reason:
          </p>
          <ReasonForm prefix="bulk-ack" action={`Acknowledge ${chosen.length}`} busy={busy}
            onCancel={() => setBulkOpen(false)} onConfirm={ackChosen} />
        </div>
      )}
      {bulkResult && <p class="result ok" role="status" data-testid="alarm-bulk-result">{bulkResult}</p>}
      <table class="dense alarms">
        <thead>
          <tr>
            <th>
              {eligible.length > 0 && (
                <input type="checkbox" data-testid="alarm-select-all" aria-label="Select every infrastructure alarm"
                  checked={chosen.length === eligible.length}
                  onChange={(e) => setPicked(new Set(e.currentTarget.checked ? eligible.map((a) => a.id) : []))} />
              )}
            </th>
            <th>Priority</th><th>Kind</th><th>Alarm</th><th>Patient</th><th>Device</th><th class="num">Value</th>
            <th>Raised</th><th>State and pages</th><th><span class="sr-only">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {data !== undefined && list.length === 0 && (
            <tr><td colSpan={COLUMNS} class="muted">{tab === 'active' ? 'No active alarms.' : 'No alarms in the history.'}</td></tr>
          )}
          {list.map((a) => {
            const p = PRIORITY[a.priority];
            const silenced = a.silenced_until !== null && Date.parse(a.silenced_until) > now;
            const actionable = tab === 'active' && a.cleared_at === null;
            return [
              <tr key={a.id} data-testid="alarm-row" data-id={a.id} data-priority={a.priority} data-kind={a.kind}
                data-acked={String(a.acked_at !== null)} class={`prio-${a.priority}${a.acked_at ? ' acked' : ''}`}>
                <td>
                  {tab === 'active' && bulkable(a) && (
                    <input type="checkbox" data-testid={`alarm-select-${a.id}`} aria-label={`Select alarm ${a.id} to acknowledge`}
                      checked={picked.has(a.id)} onChange={(e) => pick(a.id, e.currentTarget.checked)} />
                  )}
                </td>
                <td><span class={`prio prio-${a.priority}`}><span aria-hidden="true">{p.shape}</span> {p.word}</span></td>
                <td>{a.kind === 'physiological' ? 'Physiological' : 'Technical'}</td>
                <td class="desc">{a.description}<div class="sub">{a.rule_id} · {a.rule_version}</div></td>
                <td class="who">{a.patient_label ?? <span class="muted">no patient</span>}</td>
                <td class="nowrap ident">{a.device_id}</td>
                <td class="num">{a.value === null ? '—' : `${valueText(a.value)}${a.unit ? ` ${unitText(a.unit)}` : ''}`}</td>
                <td class="nowrap" title={formatDateTime(a.raised_at)}>
                  {formatTime(a.raised_at)}<div class="sub">{ageText(secsSince(a.raised_at, now))}</div>
                </td>
                <td class="alarm-state">
                  {a.cleared_at && <div>Cleared {formatTime(a.cleared_at)}</div>}
                  {a.acked_at
                    ? <div data-testid="alarm-acked">✓ Acked by {a.acked_by} at {formatTime(a.acked_at)}: {a.ack_reason}</div>
                    : a.cleared_at === null && <div class="unacked">! Unacknowledged</div>}
                  {silenced && (
                    <div data-testid="alarm-silenced">
                      ◑ Silenced until {formatTime(a.silenced_until)} by {a.silenced_by}: {a.silence_reason}
                    </div>
                  )}
                  <Pages alarm={a} />
                </td>
                <td class="cell-actions">
                  {actionable && !a.acked_at && (
                    <button type="button" data-testid="alarm-ack" onClick={() => setOpen({ id: a.id, form: 'ack' })}>Acknowledge</button>
                  )}
                  {actionable && !silenced && silenceChoices(a).length > 0 && (
                    <button type="button" data-testid="alarm-silence" onClick={() => {
                      if (!silenceChoices(a).includes(minutes)) setMinutes(silenceChoices(a)[0]!);
                      setOpen({ id: a.id, form: 'silence' });
                    }}>Silence</button>
                  )}
                  {actionable && !a.acked_at && silenceChoices(a).length === 0 && (
                    <div class="sub" data-testid="alarm-silences-spent">
                      Its silences are used up ({a.silence_count}, {a.silenced_minutes} min): it escalates until acknowledged.
                    </div>
                  )}
                </td>
              </tr>,
              open?.id === a.id && (
                <tr key={`${a.id}-form`} class="form-row">
                  <td colSpan={COLUMNS}>
                    {open.form === 'ack' ? (
                      <ReasonForm prefix="ack" action="Acknowledge" busy={busy} onCancel={() => setOpen(null)}
                        onConfirm={(reason) => act(() => backend.ackAlarm(a.id, reason))} />
                    ) : (
                      <ReasonForm prefix="silence" action="Silence" busy={busy} onCancel={() => setOpen(null)}
                        onConfirm={(reason) => act(() => backend.silenceAlarm(a.id, reason, minutes))}>
                        <label>
                          For{' '}
                          <select data-testid="silence-minutes" value={minutes} onChange={(e) => setMinutes(Number(e.currentTarget.value))}>
                            {silenceChoices(a).map((m) => <option key={m} value={m}>{m} min</option>)}
                          </select>
                        </label>
                      </ReasonForm>
                    )}
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </section>
  );
}

/** One page at one sink, in words: where, whether it was taken and when. */
function pageText(p: PageDelivery): string {
  const what = `${p.escalated ? 'escalation to ' : ''}${p.sink}`;
  switch (p.state) {
    case 'delivered': return `${what} ✓ ${formatTime(p.settled_at ?? p.sent_at)}`;
    case 'failed': return `${what} ✖ failed: ${p.detail ?? 'no answer'} (${formatTime(p.settled_at ?? p.sent_at)})`;
    default: return `${what} … sending since ${formatTime(p.sent_at)}`;
  }
}

/** Where the alarm's pages went and whether each was taken, and when it escalated. */
function Pages({ alarm }: { alarm: Alarm }) {
  return (
    <div class="pages" data-testid={`alarm-pages-${alarm.id}`}>
      {alarm.pages.length === 0 && <span class="muted">no page on record</span>}
      {alarm.pages.map((p) => (
        <div key={`${p.step}|${p.sink}`} class={`page page-${p.state}`} data-state={p.state}>{pageText(p)}</div>
      ))}
      {alarm.escalated_at && <div class="escalated">↑ escalated {formatTime(alarm.escalated_at)}</div>}
    </div>
  );
}
