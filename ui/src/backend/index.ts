// The one door between the views and the pipeline. Views get a `Backend` from `BackendContext` and never
// call Tauri themselves, so every view runs (and is tested) against the in-memory mock as well.
import type {
  Alarm, Board, ConnectionResult, ConnectionTarget, Device, FleetDevice, Flow, GroupReleaseOutcome, HeldView, LiveValue,
  OutboxEntry, OutboxStatus, PairingView, PairRequest, QuarantineFilter, QuarantineGroup, QuarantineItem, QuarantinePage,
  RejectedEntry, ReleaseOutcome, SessionView, Settings, VerifiedPatient,
} from './types';
import { MockBackend } from './mock';
import { TauriBackend } from './tauri';

export { BackendError, toBackendError } from './errors';

export type * from './types';

// The signed-in session lives in the backend: no call names who makes it, the backend knows and checks
// the account's roles (`forbidden`) and that it is signed in and not locked (`unauthenticated`).
export interface Backend {
  session(): Promise<SessionView>;
  signIn(name: string, password: string): Promise<SessionView>;
  /** Only while no account exists (`needs_first_admin`); signs the new administrator in. */
  createFirstAdmin(name: string, password: string): Promise<SessionView>;
  lock(): Promise<SessionView>;
  /** Unlocks the locked account with its password. */
  unlock(password: string): Promise<SessionView>;
  signOut(): Promise<SessionView>;
  board(): Promise<Board>;
  /** Status pushes from the supervisor; resolves to an unsubscribe function. */
  onStatus(cb: (b: Board) => void): Promise<() => void>;
  liveValues(): Promise<LiveValue[]>;
  /** Each message carries changed (or all) series; the view merges by (device_id, mdc_code). */
  subscribeLive(cb: (v: LiveValue[]) => void): Promise<() => void>;
  /** SVG markup rendered by the pipeline's chart renderer. */
  chart(deviceId: string, mdcCode: number, minutes: number): Promise<string>;
  /** SVG markup: every parameter of the patient stacked on one time axis. */
  bedChart(patientId: number, minutes: number): Promise<string>;
  alarms(activeOnly: boolean): Promise<Alarm[]>;
  ackAlarm(id: number, reason: string): Promise<void>;
  /** Acknowledges infrastructure alarms (`bulk_ack`) with one reason; refused if any id is not one. How many. */
  ackAlarms(ids: number[], reason: string): Promise<number>;
  silenceAlarm(id: number, reason: string, minutes: number): Promise<void>;
  quarantine(): Promise<QuarantineItem[]>;
  releaseQuarantine(id: number, reason: string): Promise<ReleaseOutcome>;
  discardQuarantine(id: number, reason: string): Promise<void>;
  /** Quarantined readings grouped by (device, reason), largest first. */
  quarantineGroups(): Promise<QuarantineGroup[]>;
  /** One page of quarantined readings, newest first, with how many match in all. */
  quarantinePage(filter: QuarantineFilter): Promise<QuarantinePage>;
  /**
   * Pairs the device with the patient from `request.from` (until `request.until`, or open), then
   * releases every quarantined reading of the device observed inside that pairing, each re-identified.
   * `request.reason` is the back-dating reason; `reason` the release reason (both audited).
   */
  pairAndRelease(request: PairRequest, reason: string): Promise<GroupReleaseOutcome>;
  /** Discards every quarantined reading of the device for that reason code; how many. */
  discardGroup(deviceId: string, reasonCode: string, why: string): Promise<number>;
  /** Readings held for want of consent, with the raw payload. */
  held(): Promise<HeldView[]>;
  /** Payloads rejected at ingest, with the reason and the raw payload. */
  rejected(): Promise<RejectedEntry[]>;
  /** Every registered device and every unknown sender, with how each stands. */
  fleet(): Promise<FleetDevice[]>;
  /** The device's pairings, newest first. */
  pairingHistory(deviceId: string): Promise<PairingView[]>;
  devices(): Promise<Device[]>;
  profiles(): Promise<string[]>;
  registerDevice(deviceId: string, profileId: string, label: string): Promise<void>;
  lookupPatient(system: string, value: string): Promise<VerifiedPatient>;
  pairDevice(request: PairRequest): Promise<void>;
  unpairDevice(deviceId: string): Promise<void>;
  setConsent(system: string, value: string, flow: Flow, granted: boolean): Promise<void>;
  /** Stores the patient's readings held for want of `store` consent; how many were stored. */
  releaseHeld(system: string, value: string, reason: string): Promise<number>;
  outbox(status: OutboxStatus | null): Promise<OutboxEntry[]>;
  resend(id: number): Promise<void>;
  settings(): Promise<Settings>;
  /** Saving restarts the pipeline; the reason goes to the audit log. */
  saveSettings(settings: Settings, reason: string): Promise<void>;
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
