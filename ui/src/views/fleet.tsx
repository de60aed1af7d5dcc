// Fleet: every device registered or heard, and how each stands: online, stale, offline, never seen,
// or unknown (heard, not registered). Dense enough for a ward at a glance (30 rows in a 1440x900
// window) and light enough for 500 devices: the list is filtered and sorted once per refresh, and each
// row only formats what it shows. A device's pairing history opens beside the table; an unknown sender
// is registered, then paired, from here.
import { useMemo, useState } from 'preact/hooks';
import type { DeviceState, FleetDevice, Validity } from '../backend';
import { useLoad } from '../components/hooks';
import { DEVICE_STATE, DEVICE_STATES, ageText, countText, formatDateTime, formatTime } from '../components/format';
import { RegisterThenPair } from '../components/PairingForms';

export const FLEET_REFRESH_MS = 2000;

type SortKey = 'state' | 'device' | 'label' | 'profile' | 'patient' | 'heard' | 'rate' | 'validity' | 'battery'
  | 'firmware' | 'clock' | 'quarantined';
interface Sort { key: SortKey; descending: boolean }
type Drawer = { id: string; show: 'history' | 'register' } | null;

/** Worst first, as for device states: what a device last said of its values. */
const VALIDITY_RANK: Record<Validity | 'none', number> = { invalid: 0, questionable: 1, valid: 2, demo: 3, none: 4 };

/** What each column sorts by; devices not heard or not reporting a figure sort as "least". */
const COLUMNS: { key: SortKey; label: string; title?: string; num?: boolean; by(d: FleetDevice): number | string }[] = [
  { key: 'state', label: 'State', by: (d) => DEVICE_STATE[d.state].rank },
  { key: 'device', label: 'Device', by: (d) => d.device_id },
  { key: 'label', label: 'Label', by: (d) => d.label ?? '' },
  { key: 'profile', label: 'Profile', by: (d) => d.profile_id ?? '' },
  { key: 'patient', label: 'Patient', by: (d) => d.patient_label ?? '' },
  { key: 'heard', label: 'Last heard', by: (d) => d.silent_secs ?? Infinity },
  { key: 'rate', label: 'Rate', num: true, by: (d) => d.messages_per_min },
  { key: 'validity', label: 'Validity', by: (d) => VALIDITY_RANK[d.latest_validity ?? 'none'] },
  { key: 'battery', label: 'Battery', num: true, by: (d) => d.battery_pct ?? -1 },
  { key: 'firmware', label: 'Firmware', by: (d) => d.firmware ?? '' },
  { key: 'clock', label: 'Clock', title: "Clock offset: the device's clock minus this workstation's", num: true, by: (d) => (d.clock_offset_secs === null ? -1 : Math.abs(d.clock_offset_secs)) },
  { key: 'quarantined', label: 'Quarantined', title: 'Its readings waiting in quarantine', num: true, by: (d) => d.quarantined },
];

/** A clock further off than this is worth a look (the rules' clock check works in the same order). */
const CLOCK_WARN_SECS = 5;
const BATTERY_LOW_PCT = 20;

/** Filter by text (id, label, patient, profile) and state, then sort; the device id breaks ties. */
function fleetRows(devices: FleetDevice[], text: string, state: DeviceState | 'all', sort: Sort): FleetDevice[] {
  const q = text.trim().toLowerCase();
  const by = COLUMNS.find((c) => c.key === sort.key)!.by;
  const sign = sort.descending ? -1 : 1;
  return devices
    .filter((d) => (state === 'all' || d.state === state) && (q === '' || [d.device_id, d.label, d.patient_label, d.profile_id]
      .some((f) => f?.toLowerCase().includes(q))))
    .sort((a, b) => {
      const x = by(a), y = by(b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return sign * c || a.device_id.localeCompare(b.device_id);
    });
}

export function FleetView() {
  const { data, reload } = useLoad((b) => b.fleet(), [], FLEET_REFRESH_MS);
  const [text, setText] = useState('');
  const [state, setState] = useState<DeviceState | 'all'>('all');
  const [sort, setSort] = useState<Sort>({ key: 'state', descending: false });
  const [drawer, setDrawer] = useState<Drawer>(null);
  const rows = useMemo(() => fleetRows(data ?? [], text, state, sort), [data, text, state, sort]);
  const counts = useMemo(() => countStates(data ?? []), [data]);
  const sortBy = (key: SortKey) => setSort((s) => ({ key, descending: s.key === key && !s.descending }));
  // The drawer follows the device through refreshes (its state, its pairing after registering).
  const shown = drawer && data?.find((d) => d.device_id === drawer.id);

  return (
    <section class="fleet">
      <div class="fleet-head">
        <h1>Fleet</h1>
        <input type="search" data-testid="fleet-filter" placeholder="Filter: device, label, patient, profile" aria-label="Filter devices"
          value={text} onInput={(e) => setText(e.currentTarget.value)} />
        <select data-testid="fleet-state-filter" aria-label="Only devices in this state" value={state}
          onChange={(e) => setState(e.currentTarget.value as DeviceState | 'all')}>
          <option value="all">All states</option>
          {DEVICE_STATES.map((s) => <option key={s} value={s}>{DEVICE_STATE[s].word} ({counts[s]})</option>)}
        </select>
        <span class="muted" data-testid="fleet-count">
          {data === undefined ? 'Loading…' : `${rows.length} of ${data.length} devices`}
        </span>
      </div>
      <table class="dense fleet-table" data-testid="fleet-table">
        <thead>
          <tr>
            {COLUMNS.map((c) => (
              <th key={c.key} class={c.num ? 'num' : undefined} title={c.title}
                aria-sort={sort.key === c.key ? (sort.descending ? 'descending' : 'ascending') : undefined}>
                <button type="button" class="sort" data-testid={`fleet-sort-${c.key}`} onClick={() => sortBy(c.key)}>
                  {c.label}{sort.key === c.key && <span aria-hidden="true">{sort.descending ? ' ▾' : ' ▴'}</span>}
                </button>
              </th>
            ))}
            <th><span class="sr-only">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {data !== undefined && rows.length === 0 && (
            <tr><td colSpan={COLUMNS.length + 1} class="muted">No device matches.</td></tr>
          )}
          {rows.map((d) => (
            <FleetRow key={d.device_id} d={d} open={drawer?.id === d.device_id}
              onHistory={() => setDrawer({ id: d.device_id, show: 'history' })}
              onRegister={() => setDrawer({ id: d.device_id, show: 'register' })} />
          ))}
        </tbody>
      </table>
      {drawer && shown && (
        <aside class="drawer" aria-label={`Device ${shown.device_id}`}>
          <div class="panel-head">
            <h2>{shown.device_id}</h2>
            <button type="button" data-testid="fleet-drawer-close" onClick={() => setDrawer(null)}>Close</button>
          </div>
          {drawer.show === 'history'
            ? <History device={shown} />
            : <RegisterThenPair key={shown.device_id} deviceId={shown.device_id} profile={shown.profile_id} onChanged={reload} />}
        </aside>
      )}
    </section>
  );
}

/** How many devices stand in each state. */
export function countStates(devices: FleetDevice[]): Record<DeviceState, number> {
  const n: Record<DeviceState, number> = { unknown: 0, offline: 0, stale: 0, never_seen: 0, online: 0 };
  for (const d of devices) n[d.state] += 1;
  return n;
}

/** A device state by shape, word and colour. */
export function StateBadge({ state, testId }: { state: DeviceState; testId?: string }) {
  const s = DEVICE_STATE[state];
  return <span class={`dstate dstate-${state}`} data-testid={testId}><span aria-hidden="true">{s.shape}</span> {s.word}</span>;
}

interface RowProps { d: FleetDevice; open: boolean; onHistory(): void; onRegister(): void }

function FleetRow({ d, open, onHistory, onRegister }: RowProps) {
  const id = d.device_id;
  const bounds = `expected every ${d.expected_interval_secs} s; stale after ${d.stale_after_secs} s, offline after ${d.offline_after_secs} s of silence`;
  const offset = d.clock_offset_secs;
  return (
    <tr data-testid={`fleet-row-${id}`} data-state={d.state} class={`selectable dstate-row-${d.state}${open ? ' selected' : ''}`}
      onClick={onHistory}>
      <td title={bounds}><StateBadge state={d.state} testId={`fleet-state-${id}`} /></td>
      <td class="ident">{id}</td>
      <td class="clip" title={d.label ?? undefined}>{d.label ?? '—'}</td>
      <td class="clip">
        {d.registered ? d.profile_id ?? '—' : <span title="The profile its topic suggests">{d.profile_id ?? '—'}?</span>}
      </td>
      {/* An unknown sender's next step towards a patient: registering it. */}
      <td class="clip wide" title={d.patient_label ?? undefined} onClick={d.registered ? undefined : (e) => e.stopPropagation()}>
        {d.registered
          ? d.patient_label ?? <span class="muted">not paired</span>
          : <button type="button" class="small primary" data-testid={`fleet-register-${id}`} onClick={onRegister}>Register…</button>}
      </td>
      <td class="nowrap" data-testid={`fleet-last-heard-${id}`} title={formatDateTime(d.last_heard)}>
        {d.last_heard === null
          ? <span class="muted">never</span>
          : <>{formatTime(d.last_heard)} <span class="muted ago">{ageText(d.silent_secs ?? 0)}</span></>}
      </td>
      <td class="num">{d.last_heard === null ? '—' : `${rateText(d.messages_per_min)} /min`}</td>
      <td><ValidityText validity={d.latest_validity} /></td>
      <td class={`num${d.battery_pct !== null && d.battery_pct < BATTERY_LOW_PCT ? ' battery-low' : ''}`}>
        {d.battery_pct === null ? '—' : `${d.battery_pct < BATTERY_LOW_PCT ? '▼ ' : ''}${Math.round(d.battery_pct)} %`}
      </td>
      <td class="nowrap">{d.firmware ?? '—'}</td>
      <td class={`num${offset !== null && Math.abs(offset) >= CLOCK_WARN_SECS ? ' clock-off' : ''}`}
        title="The device's clock minus this workstation's">
        {offset === null ? '—' : `${offset > 0 ? '+' : offset < 0 ? '−' : ''}${Math.abs(offset).toFixed(1)} s`}
      </td>
      <td class="num">{d.quarantined === 0 ? <span class="muted">0</span> : countText(d.quarantined)}</td>
      <td class="cell-actions" onClick={(e) => e.stopPropagation()}>
        <button type="button" class="small" data-testid={`fleet-history-${id}`} onClick={onHistory}>History</button>
      </td>
    </tr>
  );
}

const rateText = (perMin: number) => (perMin < 10 ? perMin.toFixed(1) : String(Math.round(perMin)));

function ValidityText({ validity }: { validity: Validity | null }) {
  switch (validity) {
    case null: return <span class="muted">—</span>;
    case 'invalid': return <span class="badge validity-invalid">INVALID</span>;
    case 'questionable': return <span class="badge validity-questionable">? QUESTIONABLE</span>;
    case 'demo': return <span class="badge validity-demo">DEMO</span>;
    default: return <span>valid</span>;
  }
}

/** The device's facts and its pairings, newest first: who paired it with whom, and when. */
function History({ device: d }: { device: FleetDevice }) {
  const { data } = useLoad((b) => b.pairingHistory(d.device_id), [d.device_id]);
  return (
    <div data-testid="fleet-history">
      <dl class="facts">
        <dt>State</dt><dd><StateBadge state={d.state} /></dd>
        <dt>Label</dt><dd>{d.label ?? '—'}</dd>
        <dt>Profile</dt><dd>{d.profile_id ?? '—'}{!d.registered && ' (suggested by its topic; not registered)'}</dd>
        <dt>Heard on</dt><dd class="ident">{d.origin ?? '—'}</dd>
        <dt>Last heard</dt><dd>{formatDateTime(d.last_heard)}</dd>
        <dt>Timing</dt>
        <dd>every {d.expected_interval_secs} s; stale after {d.stale_after_secs} s, offline after {d.offline_after_secs} s</dd>
        <dt>Payloads</dt><dd>{countText(d.messages)} since start</dd>
        <dt>Patient</dt><dd>{d.patient_label ?? '—'}{d.paired_since && ` since ${formatDateTime(d.paired_since)}`}</dd>
      </dl>
      <h3>Pairing history</h3>
      <table class="dense">
        <thead><tr><th>Patient</th><th>From</th><th>Until</th><th>By</th></tr></thead>
        <tbody>
          {data !== undefined && data.length === 0 && <tr><td colSpan={4} class="muted">Never paired.</td></tr>}
          {(data ?? []).map((p) => (
            <tr key={p.id} data-testid="pairing-row" data-open={String(p.valid_to === null)}>
              <td>{p.patient_label ?? `#${p.patient_id}`}</td>
              <td>{formatDateTime(p.valid_from)}</td>
              <td>{p.valid_to === null ? 'open' : formatDateTime(p.valid_to)}</td>
              <td>{p.created_by}<div class="sub">{formatDateTime(p.created_at)}</div></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
