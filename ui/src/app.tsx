// The console shell: operator prompt, header, degradation banner, navigation, the current view and
// the error toasts. It owns the status stream, because the banner on every view depends on it.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { toBackendError, type Backend, type Board } from './backend';
import { BackendContext, SessionContext, type Session } from './context';
import { ModeBanner } from './components/ModeBanner';
import { OperatorPrompt } from './components/OperatorPrompt';
import { Toasts, type Toast } from './components/Toasts';
import { BoardView } from './views/board';
import { LiveView } from './views/live';
import { AlarmsView } from './views/alarms';
import { QuarantineView } from './views/quarantine';
import { DevicesView } from './views/devices';
import { OutboxView } from './views/outbox';
import { SettingsView } from './views/settings';

export type ViewId = 'board' | 'live' | 'alarms' | 'quarantine' | 'devices' | 'outbox' | 'settings';

const NAV: { id: ViewId; label: string }[] = [
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

export function App({ backend, initialView = 'board' }: { backend: Backend; initialView?: ViewId }) {
  const [operator, setOperator] = useState<string | null>(null);
  const [askOperator, setAskOperator] = useState(true);
  const [view, setView] = useState<ViewId>(initialView);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextToast = useRef(1);

  const reportError = useCallback((e: unknown) => {
    const err = toBackendError(e);
    const text = `${err.code}: ${err.message}`;
    // The same error from a poll is counted, not stacked; at most five distinct toasts stay.
    setToasts((ts) => ts.some((t) => t.text === text)
      ? ts.map((t) => (t.text === text ? { ...t, count: t.count + 1 } : t))
      : [...ts, { id: nextToast.current++, text, count: 1 }].slice(-5));
  }, []);

  const { board, lastAt, startFailure } = useStatus(backend, reportError);
  const session = useMemo<Session>(() => ({ operator: operator ?? '', reportError }), [operator, reportError]);

  return (
    <BackendContext.Provider value={backend}>
      <SessionContext.Provider value={session}>
        <div class="shell">
          <header class="topbar">
            <span class="brand">Vigil <span class="brand-sub">clinical engineering console</span></span>
            {operator !== null && (
              <span class="operator">
                <span data-testid="operator-current">Operator: <strong>{operator}</strong></span>
                <button type="button" class="link" onClick={() => setAskOperator(true)}>change</button>
              </span>
            )}
          </header>
          {startFailure !== null ? <StartFailure message={startFailure} /> : <ModeBanner board={board} lastStatusAt={lastAt} />}
          {startFailure !== null ? null : askOperator || operator === null ? (
            <OperatorPrompt initial={operator ?? ''}
              onStart={(name) => { setOperator(name); setAskOperator(false); }}
              onCancel={operator === null ? undefined : () => setAskOperator(false)} />
          ) : (
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
                {view === 'board' && <BoardView board={board} />}
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
