// Loading and acting on backend data, with errors routed to the toast area instead of each view.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { Backend } from '../backend';
import { useBackend, useSession } from '../context';

/**
 * Fetch `load(backend)` now, whenever `deps` change and every `pollMs` if given. A response that
 * arrives after a newer request was made is dropped, so a slow answer never overwrites a newer one.
 */
export function useLoad<T>(load: (b: Backend) => Promise<T>, deps: unknown[], pollMs?: number) {
  const backend = useBackend();
  const { reportError } = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const seq = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const v = await loadRef.current(backend);
      if (mine === seq.current) setData(v);
    } catch (e) {
      if (mine === seq.current) reportError(e);
    }
  }, [backend, reportError]);

  useEffect(() => {
    // New deps (e.g. another tab) start empty: never show the old tab's rows under the new heading.
    setData(undefined);
    void reload();
    if (!pollMs) return () => { seq.current++; };
    const t = setInterval(() => void reload(), pollMs);
    // Bumping seq on cleanup drops answers to requests made for the old deps or after unmount.
    return () => { clearInterval(t); seq.current++; };
  }, [reload, pollMs, ...deps]);

  return { data, reload };
}

/**
 * Run a mutating call; a failure becomes a toast. Resolves to whether it succeeded, so the caller can
 * close its form only on success. `busy` disables buttons while a call is in flight.
 */
export function useAction() {
  const { reportError } = useSession();
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    try {
      await fn();
      return true;
    } catch (e) {
      reportError(e);
      return false;
    } finally {
      setBusy(false);
    }
  }, [reportError]);
  return { busy, run };
}

/** A set of keys shown expanded (e.g. rows showing their raw payload), and its toggle. */
export function useExpanded<K>(): [Set<K>, (key: K) => void] {
  const [expanded, setExpanded] = useState<Set<K>>(new Set());
  const toggle = useCallback((key: K) => setExpanded((s) => {
    const n = new Set(s);
    if (n.has(key)) n.delete(key); else n.add(key);
    return n;
  }), []);
  return [expanded, toggle];
}

/** The current time in ms, refreshed every `ms`: for ages that must keep counting between updates. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** The input that counts as someone at the console. */
const ACTIVITY = ['keydown', 'mousedown', 'mousemove', 'pointerdown', 'wheel', 'touchstart'] as const;

/**
 * Call `onIdle` after `secs` without keyboard, mouse, pointer or wheel input anywhere in the window;
 * 0 never calls it. Listening in the capture phase sees input a view stops from propagating.
 */
export function useIdle(secs: number, onIdle: () => void) {
  const idle = useRef(onIdle);
  idle.current = onIdle;
  useEffect(() => {
    if (secs <= 0) return undefined;
    let timer = setTimeout(() => idle.current(), secs * 1000);
    const restart = () => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.current(), secs * 1000);
    };
    for (const e of ACTIVITY) window.addEventListener(e, restart, { capture: true, passive: true });
    return () => {
      clearTimeout(timer);
      for (const e of ACTIVITY) window.removeEventListener(e, restart, { capture: true });
    };
  }, [secs]);
}
