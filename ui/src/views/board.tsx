// Board: the devices first (how many stand in each state), then the health of every component and the
// flow through the pipeline, from the status stream.
import type { Board } from '../backend';
import { DEVICE_STATES, HEALTH, ageText, codeText, secsSince } from '../components/format';
import { useLoad } from '../components/hooks';
import { StateBadge, countStates } from './fleet';

const OUTBOX_ORDER = ['pending', 'held', 'dead', 'delivered'];

const FLEET_POLL_MS = 5000;

export function BoardView({ board, onFleet }: { board: Board | null; onFleet(): void }) {
  if (!board) return <section><h1>Board</h1><p class="muted">Waiting for status from the pipeline…</p></section>;
  // Beat ages are measured against the board's own clock, so a skewed workstation clock cannot hide a stale beat.
  const at = Date.parse(board.at);
  const t = board.ingest;
  const outbox = [...board.outbox].sort((a, b) => rank(a[0]) - rank(b[0]));
  return (
    <section>
      <h1>Board</h1>
      <FleetSummary onOpen={onFleet} />
      <div class="board-grid">
        <div class="panel">
          <h2>Components</h2>
          <table class="dense">
            <thead><tr><th>Component</th><th>State</th><th>Reason</th><th>Last beat</th></tr></thead>
            <tbody>
              {board.components.map((c) => (
                <tr key={c.name} data-testid={`component-${c.name}`} data-state={c.state} class={`health-${c.state}`}>
                  <td class="nowrap">{c.name}</td>
                  <td class="state"><span aria-hidden="true">{HEALTH[c.state].shape}</span> {HEALTH[c.state].word}</td>
                  <td>{c.reason || '—'}</td>
                  <td class="nowrap">{ageText(secsSince(c.last_beat, at))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div class="panel">
          <h2>Ingest</h2>
          <dl class="figures">
            <dt>Queue depth</dt><dd data-testid="board-queue">{board.ingest_queue}</dd>
            <dt>Awaiting storage</dt><dd data-testid="board-unstored">{board.ingest_unstored}</dd>
            <dt>Rates</dt>
            <dd data-testid="board-rates">
              {board.rates.payloads_per_sec.toFixed(1)} payloads/s · {board.rates.readings_per_sec.toFixed(1)} readings/s
            </dd>
          </dl>
          <table class="dense counts" data-testid="board-counts">
            <tbody>
              <tr><th>Payloads received</th><td>{t.payloads}</td></tr>
              <tr><th>Duplicate payloads</th><td>{t.duplicate_payloads}</td></tr>
              <tr><th>Readings stored</th><td>{t.stored}</td></tr>
              <tr><th>Duplicate readings</th><td>{t.duplicate_readings}</td></tr>
              <tr><th>Rejected</th><td>{t.rejected}</td></tr>
              <tr><th>Quarantined</th><td>{t.quarantined}</td></tr>
              <tr><th>Held</th><td>{t.held}</td></tr>
              <tr><th>HL7 control ids reused</th><td>{t.control_id_reused}</td></tr>
            </tbody>
          </table>
        </div>
        <div class="panel">
          <h2>Outbox to the EHR</h2>
          <table class="dense counts" data-testid="board-outbox">
            <tbody>
              {outbox.map(([status, n]) => (
                <tr key={status} data-status={status}><th>{codeText(status)}</th><td>{n}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </section>
  );
}

function rank(status: string): number {
  const i = OUTBOX_ORDER.indexOf(status);
  return i < 0 ? OUTBOX_ORDER.length : i;
}

/** How many devices stand in each state, worst first; it opens the fleet view. */
function FleetSummary({ onOpen }: { onOpen(): void }) {
  const { data } = useLoad((b) => b.fleet(), [], FLEET_POLL_MS);
  const counts = data && countStates(data);
  return (
    <button type="button" class="panel board-fleet" data-testid="board-fleet" onClick={onOpen} title="Open the fleet">
      <h2>Devices</h2>
      {!counts ? <span class="muted">Loading…</span> : DEVICE_STATES.map((s) => (
        <span key={s} class={`fleet-tally${counts[s] === 0 ? ' none' : ''}`} data-testid={`board-fleet-${s}`} data-count={counts[s]}>
          <strong>{counts[s]}</strong> <StateBadge state={s} />
        </span>
      ))}
    </button>
  );
}
