// The optional sound for high-priority alarms. This console is a secondary display, so the sound is
// off until an operator turns it on here, and when the workstation cannot play it the console says so
// instead of staying silent as if all were well.
import { useEffect, useRef, useState } from 'preact/hooks';

export type SoundStatus = 'off' | 'testing' | 'on' | 'unavailable';

/** Where the choice is kept between sessions of the window. */
export const SOUND_KEY = 'vigil.alarm-sound';
/** How long to wait for an AudioContext to start; WebKit may leave `resume()` pending for ever when it refuses. */
const RESUME_WAIT_MS = 300;

let status: SoundStatus | null = null;
const listeners = new Set<(s: SoundStatus) => void>();
let context: AudioContext | null = null;

function current(): SoundStatus {
  if (status === null) {
    let wanted = false;
    try { wanted = localStorage.getItem(SOUND_KEY) === 'on'; } catch { /* storage off: the sound starts off */ }
    status = wanted ? 'on' : 'off';
  }
  return status;
}

function publish(next: SoundStatus) {
  status = next;
  try {
    if (next === 'on') localStorage.setItem(SOUND_KEY, 'on');
    else if (next !== 'testing') localStorage.removeItem(SOUND_KEY);
  } catch { /* storage off: the choice lasts this session only */ }
  for (const l of listeners) l(next);
}

/**
 * Plays three short 880 Hz beeps; whether they could play. Everything up to `resume()` runs
 * synchronously, so when this is called from a click the AudioContext is made and started within the
 * user gesture that browsers require before a page makes sound.
 */
async function playTone(): Promise<boolean> {
  const Ctor = globalThis.AudioContext as typeof AudioContext | undefined;
  if (!Ctor) return false;
  try {
    context ??= new Ctor();
    const ctx = context;
    if (ctx.state !== 'running') await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, RESUME_WAIT_MS))]);
    if (ctx.state !== 'running') {
      // A context refused outside a gesture stays refused: the next try makes a new one.
      context = null;
      return false;
    }
    const t = ctx.currentTime;
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0, t);
    for (let i = 0; i < 3; i++) {
      gain.gain.setValueAtTime(0.2, t + i * 0.25);
      gain.gain.setValueAtTime(0, t + i * 0.25 + 0.15);
    }
    gain.connect(ctx.destination);
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(gain);
    osc.start(t);
    osc.stop(t + 0.75);
    return true;
  } catch {
    context = null;
    return false;
  }
}

/** The sound's state, following every change. */
export function useSoundStatus(): SoundStatus {
  const [s, setS] = useState(current);
  useEffect(() => {
    listeners.add(setS);
    setS(current());
    return () => { listeners.delete(setS); };
  }, []);
  return s;
}

/** Turn the sound on, from a click: it plays the test tone, or ends "unavailable". */
export function enableSound() {
  publish('testing');
  void playTone().then((ok) => publish(ok ? 'on' : 'unavailable'));
}

/** Turn the sound off, and let the audio device go. */
export function disableSound() {
  void context?.close();
  context = null;
  publish('off');
}

/**
 * Sounds the tone when the count of unacknowledged high-priority alarms rises (not on the first
 * count seen: those alarms were there before this window opened), if the sound is on.
 */
export function useHighAlarmTone(high: number | null) {
  const last = useRef<number | null>(null);
  useEffect(() => {
    if (high === null) return;
    if (last.current !== null && high > last.current && current() === 'on') {
      void playTone().then((ok) => { if (!ok) publish('unavailable'); });
    }
    last.current = high;
  }, [high]);
}
