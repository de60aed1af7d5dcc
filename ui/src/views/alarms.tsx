// Alarms: the active list (priority first, then newest) with audited acknowledge and silence, and the
// history. Priority is shown by shape and word as well as colour (IEC 60601-1-8 style markers).
import { useState } from 'preact/hooks';
import type { Alarm, AlarmKind } from '../backend';
import { useBackend } from '../context';
import { useAction, useLoad, useNow } from '../components/hooks';
import { PRIORITY, ageText, secsSince, timeText, valueText } from '../components/format';
import { ReasonForm } from '../components/ReasonForm';

type Tab = 'active' | 'history';
type Open = { id: number; form: 'ack' | 'silence' } | null;

export const SILENCE_MINUTES = [2, 5, 15];

/** The silences offered: only where one changes something, and within what the alarm has left. */
const silenceChoices = (a: Alarm) => SILENCE_MINUTES.filter((m) => m <= a.silence_minutes_left);
const POLL_MS = 5000;

/** Active: high before medium before low, newest first within a priority. History: newest first. */
export function sortAlarms(list: Alarm[], tab: Tab): Alarm[] {
  const newest = (a: Alarm, b: Alarm) => Date.parse(b.raised_at) - Date.parse(a.raised_at);
  return [...list].sort(tab === 'active'
    ? (a, b) => PRIORITY[a.priority].rank - PRIORITY[b.priority].rank || newest(a, b)
    : newest);
}

export function AlarmsView() {
  const backend = useBackend();
  const [tab, setTab] = useState<Tab>('active');
  const [kind, setKind] = useState<AlarmKind | 'all'>('all');
  const [open, setOpen] = useState<Open>(null);
  const [minutes, setMinutes] = useState(SILENCE_MINUTES[0]!);
  const { busy, run } = useAction();
  const now = useNow(1000);
  const { data, reload } = useLoad((b) => b.alarms(tab === 'active'), [tab], POLL_MS);

  const list = sortAlarms(data ?? [], tab).filter((a) => kind === 'all' || a.kind === kind);
  const act = async (call: () => Promise<void>) => {
    if (await run(call)) { setOpen(null); await reload(); }
  };

  return (
    <section>
      <h1>Alarms</h1>
      <div class="toolbar">
        <div class="tabs" role="tablist" aria-label="Alarm lists">
          <button type="button" role="tab" data-testid="alarms-active" aria-selected={tab === 'active'}
            onClick={() => { setTab('active'); setOpen(null); }}>Active</button>
          <button type="button" role="tab" data-testid="alarms-history" aria-selected={tab === 'history'}
            onClick={() => { setTab('history'); setOpen(null); }}>History</button>
        </div>
        <label>
          Kind{' '}
          <select data-testid="alarms-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as AlarmKind | 'all')}>
            <option value="all">All kinds</option>
            <option value="physiological">Physiological</option>
            <option value="technical">Technical</option>
          </select>
        </label>
        <span class="muted">{data === undefined ? 'Loading…' : `${list.length} shown`}</span>
      </div>
      <table class="dense alarms">
        <thead>
          <tr><th>Priority</th><th>Kind</th><th>Alarm</th><th>Patient</th><th>Device</th><th class="num">Value</th>
            <th>Raised</th><th>State</th><th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && list.length === 0 && (
            <tr><td colSpan={9} class="muted">{tab === 'active' ? 'No active alarms.' : 'No alarms in the history.'}</td></tr>
          )}
          {list.map((a) => {
            const p = PRIORITY[a.priority];
            const silenced = a.silenced_until !== null && Date.parse(a.silenced_until) > now;
            const actionable = tab === 'active' && a.cleared_at === null;
            return [
              <tr key={a.id} data-testid="alarm-row" data-id={a.id} data-priority={a.priority} data-kind={a.kind}
                data-acked={String(a.acked_at !== null)} class={`prio-${a.priority}${a.acked_at ? ' acked' : ''}`}>
                <td><span class={`prio prio-${a.priority}`}><span aria-hidden="true">{p.shape}</span> {p.word}</span></td>
                <td>{a.kind === 'physiological' ? 'Physiological' : 'Technical'}</td>
                <td>{a.description}<div class="sub">{a.rule_id} · {a.rule_version}</div></td>
                <td>{a.patient_label ?? <span class="muted">no patient</span>}</td>
                <td>{a.device_id}</td>
                <td class="num">{a.value === null ? '—' : `${valueText(a.value)}${a.unit ? ` ${a.unit}` : ''}`}</td>
                <td>{timeText(a.raised_at, now)}<div class="sub">{ageText(secsSince(a.raised_at, now))}</div></td>
                <td class="alarm-state">
                  {a.cleared_at && <div>Cleared {timeText(a.cleared_at, now)}</div>}
                  {a.acked_at
                    ? <div data-testid="alarm-acked">✓ Acked by {a.acked_by} at {timeText(a.acked_at, now)}: {a.ack_reason}</div>
                    : a.cleared_at === null && <div class="unacked">! Unacknowledged</div>}
                  {silenced && (
                    <div data-testid="alarm-silenced">
                      ◑ Silenced until {timeText(a.silenced_until, now)} by {a.silenced_by}: {a.silence_reason}
                    </div>
                  )}
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
                  <td colSpan={9}>
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
