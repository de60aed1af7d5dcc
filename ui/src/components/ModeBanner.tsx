// The degradation banner on top of every view. It must not be missable, and it must never claim
// "normal" without a status from the pipeline to back it.
import type { Board } from '../backend';
import { SEVERITY, ageText } from './format';
import { useNow } from './hooks';

/** Seconds without any status after which the banner warns that the console may be out of date. */
export const STATUS_STALE_SECS = 30;

interface Props {
  board: Board | null;
  /** When the last status arrived (ms, local clock), null before the first. */
  lastStatusAt: number | null;
  /** The clock, for tests; by default it ticks every second here, so only the banner re-renders. */
  now?: number;
}

export function ModeBanner({ board, lastStatusAt, now: fixedNow }: Props) {
  const tick = useNow(1000);
  const now = fixedNow ?? tick;
  const silentFor = lastStatusAt === null ? null : (now - lastStatusAt) / 1000;
  const modes = [...(board?.modes ?? [])].sort((a, b) => SEVERITY[a.severity].rank - SEVERITY[b.severity].rank);
  return (
    <section class="banner" data-testid="mode-banner" aria-label="System status" aria-live="polite">
      {board === null && <p class="banner-line unknown">◌ Status unknown: waiting for the pipeline.</p>}
      {silentFor !== null && silentFor > STATUS_STALE_SECS && (
        <p class="banner-line unknown" data-testid="status-stale">
          ▲ No status from the pipeline for {ageText(silentFor).replace(' ago', '')}: what this console shows may be out of date.
        </p>
      )}
      {board !== null && modes.length === 0 && <p class="banner-line ok">✓ All systems normal</p>}
      {modes.map((m) => {
        const sev = SEVERITY[m.severity];
        return (
          <article key={m.id} class={`mode ${m.severity}`} data-testid={`mode-${m.id}`} data-severity={m.severity}>
            <h2><span class="sev" aria-hidden="true">{sev.shape}</span> <span class="sev-word">{sev.word}</span>: {m.title}</h2>
            <dl>
              <dt>What is off</dt><dd>{m.what_is_off}</dd>
              <dt>What still works</dt><dd>{m.what_still_works}</dd>
              <dt>What to do</dt><dd>{m.what_to_do}</dd>
              <dt>Whom to call</dt><dd>{m.whom_to_call}</dd>
            </dl>
          </article>
        );
      })}
    </section>
  );
}
