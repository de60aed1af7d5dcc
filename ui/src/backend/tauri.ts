// The Backend over Tauri IPC. Argument keys are camelCase: Tauri 2 maps them to the Rust snake_case
// parameters. Every rejection is turned into a BackendError so views see one error shape.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { toBackendError } from './errors';
import type { Backend } from './index';
import type {
  Alarm, Board, ConnectionResult, ConnectionTarget, Device, Flow, LiveValue, OutboxEntry, OutboxStatus,
  PairRequest, QuarantineItem, ReleaseOutcome, Settings, VerifiedPatient,
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
  alarms(activeOnly: boolean) { return call<Alarm[]>('alarms', { activeOnly }); }
  ackAlarm(id: number, operator: string, reason: string) { return call<void>('ack_alarm', { id, operator, reason }); }
  silenceAlarm(id: number, operator: string, reason: string, minutes: number) {
    return call<void>('silence_alarm', { id, operator, reason, minutes });
  }
  quarantine() { return call<QuarantineItem[]>('quarantine'); }
  releaseQuarantine(id: number, operator: string, reason: string) {
    return call<ReleaseOutcome>('release_quarantine', { id, operator, reason });
  }
  discardQuarantine(id: number, operator: string, reason: string) {
    return call<void>('discard_quarantine', { id, operator, reason });
  }
  devices() { return call<Device[]>('devices'); }
  profiles() { return call<string[]>('profiles'); }
  registerDevice(deviceId: string, profileId: string, label: string, operator: string) {
    return call<void>('register_device', { deviceId, profileId, label, operator });
  }
  lookupPatient(system: string, value: string) { return call<VerifiedPatient>('lookup_patient', { system, value }); }
  pairDevice(request: PairRequest, operator: string) { return call<void>('pair_device', { request, operator }); }
  unpairDevice(deviceId: string, operator: string) { return call<void>('unpair_device', { deviceId, operator }); }
  setConsent(system: string, value: string, flow: Flow, granted: boolean, operator: string) {
    return call<void>('set_consent', { system, value, flow, granted, operator });
  }
  releaseHeld(system: string, value: string, operator: string, reason: string) {
    return call<number>('release_held', { system, value, operator, reason });
  }
  outbox(status: OutboxStatus | null) { return call<OutboxEntry[]>('outbox', { status }); }
  resend(id: number, operator: string) { return call<void>('resend', { id, operator }); }
  settings() { return call<Settings>('settings'); }
  saveSettings(settings: Settings, operator: string) { return call<void>('save_settings', { settings, operator }); }
  testConnection(target: ConnectionTarget) { return call<ConnectionResult>('test_connection', { target }); }
}
