// The trend of one series as SVG from the pipeline's chart renderer, refreshed while it is shown.
import { useEffect, useState } from 'preact/hooks';
import { useBackend, useSession } from '../context';

export const CHART_WINDOWS = [15, 60, 240];
export const CHART_REFRESH_MS = 5000;

interface Props { device: string; mdc: number; title: string; onClose(): void }

export function TrendChart({ device, mdc, title, onClose }: Props) {
  const backend = useBackend();
  const { reportError } = useSession();
  const [minutes, setMinutes] = useState(CHART_WINDOWS[0]!);
  const [svg, setSvg] = useState<string | null>(null);

  useEffect(() => {
    let gone = false;
    const load = () => backend.chart(device, mdc, minutes).then((s) => { if (!gone) setSvg(s); }, (e) => { if (!gone) reportError(e); });
    void load();
    const t = setInterval(load, CHART_REFRESH_MS);
    return () => { gone = true; clearInterval(t); };
  }, [backend, reportError, device, mdc, minutes]);

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
      <div class="chart" data-testid="chart" data-minutes={minutes} dangerouslySetInnerHTML={{ __html: svg ?? '' }} />
    </aside>
  );
}
