// Unacknowledged alarms by priority, with shape and word as well as colour, then how many of them
// are technical and how many about a patient, and the acknowledged apart: in the top bar on every
// view, and large on the lock screen.
import type { AlarmCounts, Priority } from '../backend';
import { PRIORITY } from './format';

const ORDER: Priority[] = ['high', 'medium', 'low'];

/** Test ids are `<prefix>-high`, `<prefix>-medium` and `<prefix>-low`, each on the bare number. */
export function AlarmTally({ counts, prefix }: { counts: AlarmCounts | null; prefix: string }) {
  return (
    <span class="tally">
      {ORDER.map((p) => (
        <span key={p} class={`tally-item prio-${p}${counts?.[p] ? '' : ' none'}`}>
          <span aria-hidden="true">{PRIORITY[p].shape}</span>{' '}
          <span class="tally-n" data-testid={`${prefix}-${p}`}>{counts ? counts[p] : '?'}</span>{' '}
          <span class="tally-word">{PRIORITY[p].word}</span>
        </span>
      ))}
      {counts && (
        <span class="tally-split">
          <span data-testid={`${prefix}-technical`}>{counts.technical}</span> technical
          {' · '}
          <span data-testid={`${prefix}-physiological`}>{counts.high + counts.medium + counts.low - counts.technical}</span> patient
          {' · '}
          <span data-testid={`${prefix}-acknowledged`}>{counts.acknowledged}</span> acknowledged
        </span>
      )}
    </span>
  );
}
