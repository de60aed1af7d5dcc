// Unacknowledged alarms by priority, with shape and word as well as colour: in the top bar on every
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
    </span>
  );
}
