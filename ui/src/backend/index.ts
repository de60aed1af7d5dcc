// The one door between the views and the pipeline. Views get a `Backend` from `BackendContext` and never
// call Tauri themselves, so every view runs (and is tested) against the in-memory mock as well.
import type {
  Alarm, Board, ConnectionResult, ConnectionTarget, Device, Flow, LiveValue, OutboxEntry, OutboxStatus,
  PairRequest, QuarantineItem, ReleaseOutcome, Settings, VerifiedPatient,
} from './types';
import { MockBackend } from './mock';
import { TauriBackend } from './tauri';

export { BackendError, toBackendError } from './errors';

export type * from './types';

export interface Backend {
  board(): Promise<Board>;
  /** Status pushes from the supervisor; resolves to an unsubscribe function. */
  onStatus(cb: (b: Board) => void): Promise<() => void>;
  liveValues(): Promise<LiveValue[]>;
  /** Each message carries changed (or all) series; the view merges by (device_id, mdc_code). */
  subscribeLive(cb: (v: LiveValue[]) => void): Promise<() => void>;
  /** SVG markup rendered by the pipeline's chart renderer. */
  chart(deviceId: string, mdcCode: number, minutes: number): Promise<string>;
  alarms(activeOnly: boolean): Promise<Alarm[]>;
  ackAlarm(id: number, operator: string, reason: string): Promise<void>;
  silenceAlarm(id: number, operator: string, reason: string, minutes: number): Promise<void>;
  quarantine(): Promise<QuarantineItem[]>;
  releaseQuarantine(id: number, operator: string, reason: string): Promise<ReleaseOutcome>;
  discardQuarantine(id: number, operator: string, reason: string): Promise<void>;
  devices(): Promise<Device[]>;
  profiles(): Promise<string[]>;
  registerDevice(deviceId: string, profileId: string, label: string, operator: string): Promise<void>;
  lookupPatient(system: string, value: string): Promise<VerifiedPatient>;
  pairDevice(request: PairRequest, operator: string): Promise<void>;
  unpairDevice(deviceId: string, operator: string): Promise<void>;
  setConsent(system: string, value: string, flow: Flow, granted: boolean, operator: string): Promise<void>;
  /** Stores the patient's readings held for want of `store` consent; how many were stored. */
  releaseHeld(system: string, value: string, operator: string, reason: string): Promise<number>;
  outbox(status: OutboxStatus | null): Promise<OutboxEntry[]>;
  resend(id: number, operator: string): Promise<void>;
  settings(): Promise<Settings>;
  /** Saving restarts the pipeline. */
  saveSettings(settings: Settings, operator: string): Promise<void>;
  testConnection(target: ConnectionTarget): Promise<ConnectionResult>;
}

declare global {
  interface Window { __TAURI_INTERNALS__?: unknown }
}

/** Tauri inside the app window; the demo mock in a plain browser (`npm run dev`). */
export function getBackend(): Backend {
  if (typeof window !== 'undefined' && window.__TAURI_INTERNALS__) return new TauriBackend();
  return new MockBackend({ autoTick: true });
}
