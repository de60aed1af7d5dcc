// Live streams: latest value per (device, metric), grouped by patient then device, with a trend chart
// for the selected series or, per patient, the bed view (every parameter on one time axis). Values
// arrive on the live channel; ages keep counting locally between messages.
import { useEffect, useState } from 'preact/hooks';
import type { LiveValue } from '../backend';
import { useBackend, useSession } from '../context';
import { useNow } from '../components/hooks';
import { ageText, formatDateTime, unitText, valueText } from '../components/format';
import { TrendChart, type ChartSource } from '../components/TrendChart';

interface Row { v: LiveValue; receivedAt: number }
interface Shown { source: ChartSource; title: string }

const seriesKey = (v: { device_id: string; mdc_code: number }) => `${v.device_id}|${v.mdc_code}`;
const UNPAIRED = 'Unpaired';

export function LiveView() {
  const backend = useBackend();
  const { reportError } = useSession();
  const [rows, setRows] = useState<Map<string, Row>>(new Map());
  const [shown, setShown] = useState<Shown | null>(null);
  const now = useNow(1000);

  useEffect(() => {
    let gone = false;
    let unsubscribe: (() => void) | undefined;
    // Merge by series; an older observation (e.g. the initial query answering late) never replaces a newer one.
    const merge = (values: LiveValue[]) => {
      if (gone) return;
      const receivedAt = Date.now();
      setRows((prev) => {
        const next = new Map(prev);
        for (const v of values) {
          const old = next.get(seriesKey(v));
          if (!old || Date.parse(v.observed_at) >= Date.parse(old.v.observed_at)) next.set(seriesKey(v), { v, receivedAt });
        }
        return next;
      });
    };
    backend.liveValues().then(merge, reportError);
    backend.subscribeLive(merge).then((u) => { if (gone) u(); else unsubscribe = u; }, reportError);
    return () => { gone = true; unsubscribe?.(); };
  }, [backend, reportError]);

  const groups = group([...rows.values()]);
  const select = (v: LiveValue) => setShown({
    source: { kind: 'series', device: v.device_id, mdc: v.mdc_code }, title: `${v.metric}, ${v.device_label ?? v.device_id}`,
  });
  const selected = shown?.source.kind === 'series' ? shown.source : null;

  return (
    <section>
      <h1>Live streams</h1>
      <div class="live-layout">
        <table class="dense live">
          <thead><tr><th>Metric</th><th class="num">Value</th><th>Unit</th><th>Age</th><th>State</th></tr></thead>
          {groups.length === 0 && <tbody><tr><td colSpan={5} class="muted">No live values yet.</td></tr></tbody>}
          {groups.map(([patient, patientId, devices]) => (
            <tbody key={patient}>
              <tr class="group">
                <th colSpan={5} scope="rowgroup">
                  {patient}
                  {patientId !== null && (
                    <button type="button" class="bed-view" data-testid={`bed-view-${patientId}`}
                      aria-pressed={shown?.source.kind === 'bed' && shown.source.patientId === patientId}
                      onClick={() => setShown({ source: { kind: 'bed', patientId }, title: `Bed view: ${patient}` })}>
                      Bed view
                    </button>
                  )}
                </th>
              </tr>
              {devices.map(([device, list]) => [
                <tr key={device} class="subgroup"><th colSpan={5}>{list[0]!.v.device_label ?? device} <span class="muted">{device}</span></th></tr>,
                ...list.map(({ v, receivedAt }) => {
                  const isSel = selected?.device === v.device_id && selected.mdc === v.mdc_code;
                  const age = v.age_secs + (now - receivedAt) / 1000;
                  return (
                    <tr key={seriesKey(v)} data-testid="live-row" data-device={v.device_id} data-mdc={v.mdc_code}
                      data-stale={String(v.stale)} class={`selectable${v.stale ? ' stale' : ''}${isSel ? ' selected' : ''}`}
                      tabIndex={0} aria-selected={isSel} onClick={() => select(v)}
                      onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(v); } }}>
                      <td>{v.metric}</td>
                      <td class="num value" data-testid="live-value" data-validity={v.validity}>
                        {v.validity === 'invalid'
                          ? <span title={`The device flagged ${valueText(v.value, v.decimals)} as invalid`}>—</span>
                          : valueText(v.value, v.decimals)}
                      </td>
                      <td title={`UCUM ${v.unit}`}>{unitText(v.unit)}</td>
                      <td data-testid="live-age" title={`Measured ${formatDateTime(v.observed_at)}`}>{ageText(age)}</td>
                      <td>
                        {v.stale ? <span class="badge stale-badge">◌ STALE</span> : <span class="muted">current</span>}
                        {' '}<ValidityBadge validity={v.validity} />
                      </td>
                    </tr>
                  );
                }),
              ])}
            </tbody>
          ))}
        </table>
        {shown && <TrendChart key={JSON.stringify(shown.source)} {...shown} onClose={() => setShown(null)} />}
      </div>
    </section>
  );
}

/**
 * [patient label, patient id, [device id, rows in clinical order][]][], patients by label with
 * "Unpaired" (no patient id) last.
 */
function group(rows: Row[]): [string, number | null, [string, Row[]][]][] {
  const byPatient = new Map<string, Map<string, Row[]>>();
  for (const r of rows) {
    const p = r.v.patient_label ?? (r.v.patient_id === null ? UNPAIRED : `Patient ${r.v.patient_id}`);
    const devices = byPatient.get(p) ?? new Map<string, Row[]>();
    byPatient.set(p, devices);
    devices.set(r.v.device_id, [...(devices.get(r.v.device_id) ?? []), r]);
  }
  const order = (a: string, b: string) => (a === UNPAIRED ? 1 : b === UNPAIRED ? -1 : a.localeCompare(b));
  return [...byPatient.entries()].sort(([a], [b]) => order(a, b)).map(([p, devices]) => [p,
    [...devices.values()][0]![0]!.v.patient_id,
    [...devices.entries()].sort(([a], [b]) => a.localeCompare(b))
      .map(([d, list]) => [d, list.sort((x, y) => x.v.order - y.v.order)] as [string, Row[]])]);
}

/** What the device said of a value, when it is not simply valid: in words, not only colour. */
function ValidityBadge({ validity }: { validity: LiveValue['validity'] }) {
  switch (validity) {
    case 'invalid': return <span class="badge validity-invalid" data-testid="validity-badge">INVALID (probe off?)</span>;
    case 'questionable': return <span class="badge validity-questionable" data-testid="validity-badge">? QUESTIONABLE</span>;
    case 'demo': return <span class="badge validity-demo" data-testid="validity-badge">DEMO</span>;
    default: return null;
  }
}
