// The top bar: which site and session this is, the unacknowledged alarms (on every view), and the
// account with its Lock and Sign out buttons.
import type { Board, SessionView } from '../backend';
import { AlarmTally } from './AlarmTally';

interface Props {
  session: SessionView | null;
  board: Board | null;
  onAlarms(): void;
  onLock(): void;
  onSignOut(): void;
}

export function TopBar({ session, board, onAlarms, onLock, onSignOut }: Props) {
  const signedIn = session !== null && session.account !== null && !session.locked;
  return (
    <header class="topbar">
      <span class="brand">Vigil <span class="brand-sub">clinical engineering console</span></span>
      {session?.demo && (
        <span class="topbar-badge demo" data-testid="demo-badge" title="Demo site: made-up patients and data">DEMO</span>
      )}
      {session?.break_glass && (
        <span class="topbar-badge break-glass" data-testid="break-glass-badge"
          title="Emergency administrator session: everything done in it is reviewed">BREAK-GLASS</span>
      )}
      <span class="topbar-fill" />
      {/* The lock screen shows the counts itself, large. */}
      {board !== null && !session?.locked && (
        <button type="button" class="topbar-alarms" data-testid="topbar-alarms" title="Open the alarms" onClick={onAlarms}>
          <span class="topbar-alarms-label">Unacknowledged</span>
          <AlarmTally counts={board.alarms} prefix="alarm-count" />
        </button>
      )}
      {signedIn && (
        <span class="account">
          <span data-testid="account-current">
            <strong>{session.account}</strong> <span class="roles">({session.roles.join(', ') || 'no role'})</span>
          </span>
          <button type="button" data-testid="lock-button" onClick={onLock}>Lock</button>
          <button type="button" data-testid="sign-out" onClick={onSignOut}>Sign out</button>
        </span>
      )}
    </header>
  );
}
