// The quarantined readings themselves, a page at a time (all of them, or one group's), each with its
// raw payload and the single-reading release and discard. Release re-validates a reading against the
// pairing as it is now; discard removes it. Both are audited.
import { useEffect, useState } from 'preact/hooks';
import type { QuarantineCursor, QuarantineItem, ReleaseOutcome } from '../backend';
import { useBackend } from '../context';
import { useAction, useExpanded, useLoad } from '../components/hooks';
import { codeText, countText, formatDateTime, unitText, valueText } from '../components/format';
import { ReasonForm } from '../components/ReasonForm';

const PAGE_SIZE = 100;

/** One group's readings, or every reading when null. */
export type RowsFilter = { device_id: string; reason: string } | null;

type Open = { id: number; action: 'release' | 'discard' } | null;
interface Result { text: string; outcome: ReleaseOutcome['outcome'] | 'discarded' }

interface Props {
  filter: RowsFilter;
  /** Bumped by the groups' actions, which change what the pages hold. */
  version: number;
  onChanged(): Promise<void>;
  onShowAll(): void;
}

export function QuarantineRows({ filter, version, onChanged, onShowAll }: Props) {
  const backend = useBackend();
  // The last row of each page passed: pages start after a row, not at a count, so rows arriving or
  // released meanwhile neither repeat nor skip a row.
  const [passed, setPassed] = useState<QuarantineCursor[]>([]);
  const { data, reload } = useLoad((b) => b.quarantinePage({
    device_id: filter?.device_id ?? null, reason: filter?.reason ?? null, older_than: passed.at(-1) ?? null, limit: PAGE_SIZE,
  }), [passed, version]);
  const [expanded, toggle] = useExpanded<number>();
  const [open, setOpen] = useState<Open>(null);
  const [result, setResult] = useState<Result | null>(null);
  const { busy, run } = useAction();

  // Rows released or discarded can leave this page empty: go back a page.
  useEffect(() => {
    if (data && data.entries.length === 0 && passed.length > 0) setPassed(passed.slice(0, -1));
  }, [data, passed]);

  const confirm = async (q: QuarantineItem, action: 'release' | 'discard', reason: string) => {
    const ok = await run(async () => {
      if (action === 'release') {
        const out = await backend.releaseQuarantine(q.id, reason);
        setResult({ outcome: out.outcome, text: `Reading #${q.id} released: ${out.outcome}. ${out.detail}` });
      } else {
        await backend.discardQuarantine(q.id, reason);
        setResult({ outcome: 'discarded', text: `Reading #${q.id} discarded.` });
      }
    });
    if (ok) {
      setOpen(null);
      await Promise.all([reload(), onChanged()]);
    }
  };

  const rows = data?.entries ?? [];
  const last = rows.at(-1);
  const first = (data?.newer ?? 0) + 1;
  return (
    <div class="panel" aria-labelledby="qrows-title">
      <div class="panel-head">
        <h2 id="qrows-title">
          {filter ? <>Readings of {filter.device_id} · {codeText(filter.reason)}</> : 'All quarantined readings'}
        </h2>
        {filter && <button type="button" data-testid="qpage-all" onClick={onShowAll}>Show all</button>}
        <span class="muted" data-testid="qpage-range">
          {data === undefined ? 'Loading…' : data.total === 0 ? 'no rows'
            : `rows ${countText(first)}–${countText(first + rows.length - 1)} of ${countText(data.total)}`}
        </span>
        <button type="button" data-testid="qpage-prev" disabled={passed.length === 0} onClick={() => setPassed(passed.slice(0, -1))}>
          ‹ Newer
        </button>
        <button type="button" data-testid="qpage-next" disabled={!data || !last || first + rows.length > data.total}
          onClick={() => last && setPassed([...passed, { observed_at: last.observed_at, id: last.id }])}>Older ›</button>
      </div>
      {result && (
        <p class={`result outcome-${result.outcome}`} data-testid="quarantine-result" role="status">
          {result.outcome === 'stored' ? '✓ ' : result.outcome === 'discarded' ? '✖ ' : '● '}{result.text}
        </p>
      )}
      <table class="dense">
        <thead>
          <tr><th>Observed</th><th>Device</th><th class="num">Value</th><th>Reason</th><th><span class="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {data !== undefined && rows.length === 0 && <tr><td colSpan={5} class="muted">Nothing in quarantine.</td></tr>}
          {rows.map((q) => [
            <tr key={q.id} data-testid="quarantine-row" data-id={q.id} data-device={q.device_id} data-reason={q.reason}>
              <td class="nowrap">{formatDateTime(q.observed_at)}</td>
              <td class="ident">{q.device_id}</td>
              <td class="num">{valueText(q.value)} <span title={`UCUM ${q.unit}`}>{unitText(q.unit)}</span><div class="sub" title={`MDC ${q.mdc_code}`}>{q.metric}</div></td>
              <td><strong>{codeText(q.reason)}</strong><div class="detail">{q.detail}</div></td>
              <td class="cell-actions">
                <button type="button" aria-expanded={expanded.has(q.id)} data-testid="quarantine-payload-toggle"
                  onClick={() => toggle(q.id)}>{expanded.has(q.id) ? 'Hide payload' : 'Show payload'}</button>
                <button type="button" data-testid="quarantine-release" onClick={() => setOpen({ id: q.id, action: 'release' })}>Release</button>
                <button type="button" class="danger" data-testid="quarantine-discard" onClick={() => setOpen({ id: q.id, action: 'discard' })}>Discard</button>
              </td>
            </tr>,
            expanded.has(q.id) && (
              <tr key={`${q.id}-payload`} class="payload-row">
                <td colSpan={5}><pre data-testid="quarantine-payload">{q.payload}</pre></td>
              </tr>
            ),
            open?.id === q.id && (
              <tr key={`${q.id}-form`} class="form-row">
                <td colSpan={5}>
                  <ReasonForm prefix="quarantine" busy={busy} onCancel={() => setOpen(null)}
                    action={open.action === 'release' ? 'Release and re-validate' : 'Discard reading'}
                    onConfirm={(reason) => confirm(q, open.action, reason)} />
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
    </div>
  );
}
