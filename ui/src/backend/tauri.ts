// The Backend over Tauri IPC. Argument keys are camelCase: Tauri 2 maps them to the Rust snake_case
// parameters. Every rejection is turned into a BackendError so views see one error shape.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { toBackendError } from './errors';
import type { Backend } from './index';
import type {
  Alarm, Board, ConnectionResult, ConnectionTarget, Device, FleetDevice, Flow, GroupReleaseOutcome, HeldView, LiveValue,
  OutboxEntry, OutboxStatus, PairingView, PairRequest, QuarantineFilter, QuarantineGroup, QuarantineItem, QuarantinePage,
  RejectedEntry, ReleaseOutcome, SessionView, Settings, VerifiedPatient,
} from './types';

/** `invoke` whose rejections are BackendErrors (Rust sends `{code, message}`; a bare string is "internal"). */
export async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toBackendError(e);
  }
}

export class TauriBackend implements Backend {
  /**
   * The last unsubscribe_live in flight. `unsubscribe_live` names no subscription, so a new
   * subscribe waits for it: otherwise a late unsubscribe could end the subscription made after it.
   */
  private unsubscribing: Promise<unknown> = Promise.resolve();

  session() { return call<SessionView>('session'); }
  signIn(name: string, password: string) { return call<SessionView>('sign_in', { name, password }); }
  createFirstAdmin(name: string, password: string) { return call<SessionView>('create_first_admin', { name, password }); }
  lock() { return call<SessionView>('lock'); }
  unlock(password: string) { return call<SessionView>('unlock', { password }); }
  signOut() { return call<SessionView>('sign_out'); }

  board() { return call<Board>('board'); }

  async onStatus(cb: (b: Board) => void) {
    try {
      return await listen<Board>('status', (e) => cb(e.payload));
    } catch (e) {
      throw toBackendError(e);
    }
  }

  liveValues() { return call<LiveValue[]>('live_values'); }

  async subscribeLive(cb: (v: LiveValue[]) => void) {
    let active = true;
    const ch = new Channel<LiveValue[]>();
    // Messages may still arrive between the unsubscribe call and its completion: drop them.
    ch.onmessage = (v) => { if (active) cb(v); };
    await this.unsubscribing;
    await call<void>('subscribe_live', { onValues: ch });
    return () => {
      if (!active) return;
      active = false;
      this.unsubscribing = call<void>('unsubscribe_live').catch(() => undefined);
    };
  }

  chart(deviceId: string, mdcCode: number, minutes: number) {
    return call<string>('chart', { deviceId, mdcCode, minutes });
  }
  bedChart(patientId: number, minutes: number) { return call<string>('bed_chart', { patientId, minutes }); }
  alarms(activeOnly: boolean) { return call<Alarm[]>('alarms', { activeOnly }); }
  ackAlarm(id: number, reason: string) { return call<void>('ack_alarm', { id, reason }); }
  ackAlarms(ids: number[], reason: string) { return call<number>('ack_alarms', { ids, reason }); }
  silenceAlarm(id: number, reason: string, minutes: number) {
    return call<void>('silence_alarm', { id, reason, minutes });
  }
  quarantine() { return call<QuarantineItem[]>('quarantine'); }
  releaseQuarantine(id: number, reason: string) { return call<ReleaseOutcome>('release_quarantine', { id, reason }); }
  discardQuarantine(id: number, reason: string) { return call<void>('discard_quarantine', { id, reason }); }
  quarantineGroups() { return call<QuarantineGroup[]>('quarantine_groups'); }
  quarantinePage(filter: QuarantineFilter) { return call<QuarantinePage>('quarantine_page', { filter }); }
  pairAndRelease(request: PairRequest, reason: string) {
    return call<GroupReleaseOutcome>('pair_and_release', { request, reason });
  }
  discardGroup(deviceId: string, reasonCode: string, why: string) {
    return call<number>('discard_group', { deviceId, reasonCode, why });
  }
  held() { return call<HeldView[]>('held'); }
  rejected() { return call<RejectedEntry[]>('rejected'); }
  fleet() { return call<FleetDevice[]>('fleet'); }
  pairingHistory(deviceId: string) { return call<PairingView[]>('pairing_history', { deviceId }); }
  devices() { return call<Device[]>('devices'); }
  profiles() { return call<string[]>('profiles'); }
  registerDevice(deviceId: string, profileId: string, label: string) {
    return call<void>('register_device', { deviceId, profileId, label });
  }
  lookupPatient(system: string, value: string) { return call<VerifiedPatient>('lookup_patient', { system, value }); }
  pairDevice(request: PairRequest) { return call<void>('pair_device', { request }); }
  unpairDevice(deviceId: string) { return call<void>('unpair_device', { deviceId }); }
  setConsent(system: string, value: string, flow: Flow, granted: boolean) {
    return call<void>('set_consent', { system, value, flow, granted });
  }
  releaseHeld(system: string, value: string, reason: string) {
    return call<number>('release_held', { system, value, reason });
  }
  outbox(status: OutboxStatus | null) { return call<OutboxEntry[]>('outbox', { status }); }
  resend(id: number) { return call<void>('resend', { id }); }
  settings() { return call<Settings>('settings'); }
  saveSettings(settings: Settings, reason: string) { return call<void>('save_settings', { settings, reason }); }
  testConnection(target: ConnectionTarget) { return call<ConnectionResult>('test_connection', { target }); }
}
