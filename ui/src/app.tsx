// The console shell: top bar, degradation banner, then sign-in, lock screen or navigation and the
// current view, and the error toasts. It owns the status stream, because the banner and the alarm
// counts on every screen depend on it, and the session, which decides which screen shows.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { toBackendError, type Backend, type Board, type SessionView } from './backend';
import { BackendContext, SessionContext, type Session } from './context';
import { useIdle } from './components/hooks';
import { LockScreen } from './components/LockScreen';
import { ModeBanner } from './components/ModeBanner';
import { FirstAdmin, SignIn } from './components/SignIn';
import { Toasts, type Toast } from './components/Toasts';
import { TopBar } from './components/TopBar';
import { useHighAlarmTone } from './components/sound';
import { BoardView } from './views/board';
import { FleetView } from './views/fleet';
import { LiveView } from './views/live';
import { AlarmsView } from './views/alarms';
import { QuarantineView } from './views/quarantine';
import { DevicesView } from './views/devices';
import { OutboxView } from './views/outbox';
import { SettingsView } from './views/settings';

export type ViewId = 'fleet' | 'board' | 'live' | 'alarms' | 'quarantine' | 'devices' | 'outbox' | 'settings';

// The fleet comes first: which devices are silent is a clinical engineer's first question.
const NAV: { id: ViewId; label: string }[] = [
  { id: 'fleet', label: 'Fleet' },
  { id: 'board', label: 'Board' },
  { id: 'live', label: 'Live streams' },
  { id: 'alarms', label: 'Alarms' },
  { id: 'quarantine', label: 'Quarantine' },
  { id: 'devices', label: 'Devices & pairing' },
  { id: 'outbox', label: 'Outbox' },
  { id: 'settings', label: 'Settings' },
];

/** If no status event came for this long, ask for the board directly (events may be lost on reload). */
const STATUS_POLL_AFTER_MS = 10_000;

function useStatus(backend: Backend, reportError: (e: unknown) => void) {
  const [board, setBoard] = useState<Board | null>(null);
  const [startFailure, setStartFailure] = useState<string | null>(null);
  const [lastAt, setLastAt] = useState<number | null>(null);
  const last = useRef<number | null>(null);
  useEffect(() => {
    let gone = false;
    let unlisten: (() => void) | undefined;
    const accept = (b: Board) => {
      if (gone) return;
      last.current = Date.now();
      setBoard(b);
      setLastAt(last.current);
    };
    const fail = (e: unknown) => {
      if (gone) return;
      const err = toBackendError(e);
      if (err.code === 'start_failed') setStartFailure(err.message);
      else reportError(e);
    };
    backend.board().then(accept, fail);
    backend.onStatus(accept).then((u) => { if (gone) u(); else unlisten = u; }, fail);
    const poll = setInterval(() => {
      if (last.current === null || Date.now() - last.current > STATUS_POLL_AFTER_MS) backend.board().then(accept, fail);
    }, STATUS_POLL_AFTER_MS / 2);
    return () => { gone = true; unlisten?.(); clearInterval(poll); };
  }, [backend, reportError]);
  return { board, lastAt, startFailure };
}

/** The whole window when the pipeline did not start: what happened, what still works, what to do. */
function StartFailure({ message }: { message: string }) {
  return (
    <section class="start-failure" role="alert" data-testid="start-failure">
      <h1>Vigil did not start</h1>
      <p class="start-failure-message">{message}</p>
      <p>
        Until it starts, this workstation receives no device data and pages nobody. Bedside monitors and their
        alarms are unaffected: watch patients there.
      </p>
    </section>
  );
}

export function App({ backend, initialView = 'fleet' }: { backend: Backend; initialView?: ViewId }) {
  const [session, setSession] = useState<SessionView | null>(null);
  const [view, setView] = useState<ViewId>(initialView);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextToast = useRef(1);

  const toast = useCallback((e: unknown) => {
    const err = toBackendError(e);
    const text = `${err.code}: ${err.message}`;
    // The same error from a poll is counted, not stacked; at most five distinct toasts stay.
    setToasts((ts) => ts.some((t) => t.text === text)
      ? ts.map((t) => (t.text === text ? { ...t, count: t.count + 1 } : t))
      : [...ts, { id: nextToast.current++, text, count: 1 }].slice(-5));
  }, []);

  /** A new session. Locking or signing out also drops the toasts: they may name a patient. */
  const applySession = useCallback((s: SessionView) => {
    setSession(s);
    if (s.locked || s.account === null) setToasts([]);
  }, []);

  // A call refused for want of a session means it ended or was locked: re-read it and show that screen.
  const reportError = useCallback((e: unknown) => {
    if (toBackendError(e).code === 'unauthenticated') backend.session().then(applySession, toast);
    else toast(e);
  }, [backend, applySession, toast]);

  useEffect(() => { backend.session().then(applySession, reportError); }, [backend, applySession, reportError]);

  const sessionCall = (call: () => Promise<SessionView>) => { call().then(applySession, reportError); };
  const signedIn = session !== null && session.account !== null && !session.locked;
  useIdle(signedIn ? session.lock_after_secs : 0, () => sessionCall(() => backend.lock()));

  const { board, lastAt, startFailure } = useStatus(backend, reportError);
  useHighAlarmTone(board?.alarms.high ?? null);
  const context = useMemo<Session>(
    () => ({ account: session?.account ?? null, roles: session?.roles ?? [], reportError }), [session, reportError]);

  return (
    <BackendContext.Provider value={backend}>
      <SessionContext.Provider value={context}>
        <div class="shell">
          <TopBar session={session} board={board} onAlarms={() => setView('alarms')}
            onLock={() => sessionCall(() => backend.lock())} onSignOut={() => sessionCall(() => backend.signOut())} />
          {startFailure !== null ? <StartFailure message={startFailure} /> : <ModeBanner board={board} lastStatusAt={lastAt} />}
          {startFailure !== null || session === null ? null
            : session.needs_first_admin ? <FirstAdmin onSession={applySession} />
            : session.account === null ? <SignIn demo={session.demo} onSession={applySession} />
            : session.locked ? <LockScreen session={session} board={board} onSession={applySession} />
            : (
              <div class="body">
                <nav class="nav" aria-label="Views">
                  <ul>
                    {NAV.map((n) => (
                      <li key={n.id}>
                        <button type="button" data-testid={`nav-${n.id}`} aria-current={view === n.id ? 'page' : undefined}
                          onClick={() => setView(n.id)}>{n.label}</button>
                      </li>
                    ))}
                  </ul>
                </nav>
                <main class="main">
                  {view === 'fleet' && <FleetView />}
                  {view === 'board' && <BoardView board={board} onFleet={() => setView('fleet')} />}
                  {view === 'live' && <LiveView />}
                  {view === 'alarms' && <AlarmsView />}
                  {view === 'quarantine' && <QuarantineView />}
                  {view === 'devices' && <DevicesView />}
                  {view === 'outbox' && <OutboxView board={board} />}
                  {view === 'settings' && <SettingsView />}
                </main>
              </div>
            )}
          <Toasts toasts={toasts} onDismiss={(id) => setToasts((ts) => ts.filter((t) => t.id !== id))} />
        </div>
      </SessionContext.Provider>
    </BackendContext.Provider>
  );
}
