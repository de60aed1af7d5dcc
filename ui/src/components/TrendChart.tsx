// A trend as SVG from the pipeline's chart renderer, refreshed while it is shown: one series, or every
// parameter of one patient stacked on one time axis (the bed view).
import { useEffect, useState } from 'preact/hooks';
import type { Backend } from '../backend';
import { useBackend, useSession } from '../context';

export const CHART_WINDOWS = [15, 60, 240];
export const CHART_REFRESH_MS = 5000;

export type ChartSource = { kind: 'series'; device: string; mdc: number } | { kind: 'bed'; patientId: number };

const sourceKey = (s: ChartSource) => (s.kind === 'series' ? `series|${s.device}|${s.mdc}` : `bed|${s.patientId}`);

function load(backend: Backend, s: ChartSource, minutes: number): Promise<string> {
  return s.kind === 'series' ? backend.chart(s.device, s.mdc, minutes) : backend.bedChart(s.patientId, minutes);
}

interface Props { source: ChartSource; title: string; onClose(): void }

export function TrendChart({ source, title, onClose }: Props) {
  const backend = useBackend();
  const { reportError } = useSession();
  const [minutes, setMinutes] = useState(CHART_WINDOWS[0]!);
  const [svg, setSvg] = useState<string | null>(null);
  const key = sourceKey(source);

  useEffect(() => {
    let gone = false;
    const refresh = () => load(backend, source, minutes).then((s) => { if (!gone) setSvg(s); }, (e) => { if (!gone) reportError(e); });
    void refresh();
    const t = setInterval(refresh, CHART_REFRESH_MS);
    return () => { gone = true; clearInterval(t); };
    // `source` is a fresh object each render: its key says when it really changed.
  }, [backend, reportError, key, minutes]);

  return (
    <aside class="panel chart-panel" aria-label={`Trend: ${title}`}>
      <div class="panel-head">
        <h2>{title}</h2>
        <div class="segmented" role="group" aria-label="Time window">
          {CHART_WINDOWS.map((m) => (
            <button key={m} type="button" data-testid={`chart-window-${m}`} aria-pressed={m === minutes}
              onClick={() => setMinutes(m)}>{m < 60 ? `${m} min` : `${m / 60} h`}</button>
          ))}
        </div>
        <button type="button" onClick={onClose}>Close</button>
      </div>
      {svg === null && <p class="muted">Loading chart…</p>}
      {/* Inserted as markup: it is rendered by Vigil's own chart code in the Rust core. */}
      <div class={`chart${source.kind === 'bed' ? ' bed' : ''}`} data-testid={source.kind === 'bed' ? 'bed-chart' : 'chart'}
        data-minutes={minutes} dangerouslySetInnerHTML={{ __html: svg ?? '' }} />
    </aside>
  );
}
