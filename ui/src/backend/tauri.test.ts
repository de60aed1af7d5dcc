import { beforeEach, describe, expect, it, vi } from 'vitest';

// Stand-ins for Tauri's IPC: `invoke` is scripted per test; Channel only keeps its handler.
const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (...args: unknown[]) => invoke(...args),
  Channel: class<T> { onmessage: (v: T) => void = () => undefined; },
}));
const listen = vi.fn();
vi.mock('@tauri-apps/api/event', () => ({ listen: (...args: unknown[]) => listen(...args) }));

const { TauriBackend } = await import('./tauri');
const { BackendError } = await import('./errors');
const { demoData } = await import('./demo-data');
const settings = demoData(new Date()).settings;

describe('tauri backend', () => {
  beforeEach(() => { invoke.mockReset(); listen.mockReset(); });

  it('wraps a {code, message} rejection into a BackendError', async () => {
    invoke.mockRejectedValue({ code: 'patient_not_found', message: 'No patient MRN-1 at the EHR.' });
    const err = await new TauriBackend().lookupPatient('sys', 'MRN-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).toMatchObject({ code: 'patient_not_found', message: 'No patient MRN-1 at the EHR.' });
  });

  it('wraps a plain string rejection as code "internal"', async () => {
    invoke.mockRejectedValue('command board not found');
    await expect(new TauriBackend().board()).rejects.toMatchObject({ code: 'internal', message: 'command board not found' });
  });

  it('wraps a {code, message} rejection whose code Rust does not have as "internal", keeping the code', async () => {
    invoke.mockRejectedValue({ code: 'already_acked', message: 'Alarm 4 was acknowledged.' });
    await expect(new TauriBackend().ackAlarm(4, 'why'))
      .rejects.toMatchObject({ code: 'internal', message: 'already_acked: Alarm 4 was acknowledged.' });
  });

  it('passes camelCase argument keys to the commands', async () => {
    invoke.mockResolvedValue(undefined);
    const b = new TauriBackend();
    await b.ackAlarm(4, 'why');
    await b.chart('OX-1', 150456, 60);
    const request = { device_id: 'OX-1', system: 'sys', value: 'MRN-1', from: null, until: '2026-11-25T08:00:00.000Z',
      reason: null, replacing: 7 };
    await b.pairDevice(request);
    await b.outbox(null);
    await b.saveSettings(settings, 'new EHR address');
    expect(invoke.mock.calls).toEqual([
      ['ack_alarm', { id: 4, reason: 'why' }],
      ['chart', { deviceId: 'OX-1', mdcCode: 150456, minutes: 60 }],
      ['pair_device', { request }],
      ['outbox', { status: null }],
      ['save_settings', { settings, reason: 'new EHR address' }],
    ]);
  });

  it('calls the fleet, quarantine, held, rejected, bulk-acknowledge and bed-chart commands with their argument keys', async () => {
    invoke.mockResolvedValue(undefined);
    const b = new TauriBackend();
    const filter = { device_id: 'MX-1', reason: 'no_active_pairing', older_than: { observed_at: '2026-12-03T09:00:00Z', id: 7 }, limit: 100 };
    const request = { device_id: 'MX-1', system: 'sys', value: 'MRN-1', from: '2026-12-03T09:00:00Z', until: null,
      reason: 'sent before it was paired', replacing: null };
    await b.fleet();
    await b.pairingHistory('MX-1');
    await b.quarantineGroups();
    await b.quarantinePage(filter);
    await b.pairAndRelease(request, 'pairing fixed');
    await b.discardGroup('MX-1', 'unknown_device', 'bench test');
    await b.held();
    await b.rejected();
    await b.ackAlarms([4, 5], 'network fixed');
    await b.bedChart(7, 60);
    expect(invoke.mock.calls).toEqual([
      ['fleet', undefined],
      ['pairing_history', { deviceId: 'MX-1' }],
      ['quarantine_groups', undefined],
      ['quarantine_page', { filter }],
      ['pair_and_release', { request, reason: 'pairing fixed' }],
      ['discard_group', { deviceId: 'MX-1', reasonCode: 'unknown_device', why: 'bench test' }],
      ['held', undefined],
      ['rejected', undefined],
      ['ack_alarms', { ids: [4, 5], reason: 'network fixed' }],
      ['bed_chart', { patientId: 7, minutes: 60 }],
    ]);
  });

  it('calls the session commands, which name no account but the one signing in', async () => {
    invoke.mockResolvedValue(undefined);
    const b = new TauriBackend();
    await b.session();
    await b.signIn('ada', 'pw');
    await b.createFirstAdmin('ada', 'a long password');
    await b.lock();
    await b.unlock('pw');
    await b.signOut();
    expect(invoke.mock.calls).toEqual([
      ['session', undefined],
      ['sign_in', { name: 'ada', password: 'pw' }],
      ['create_first_admin', { name: 'ada', password: 'a long password' }],
      ['lock', undefined],
      ['unlock', { password: 'pw' }],
      ['sign_out', undefined],
    ]);
  });

  it('keeps the new error codes', async () => {
    invoke.mockRejectedValue({ code: 'forbidden', message: 'this needs the clinician role' });
    await expect(new TauriBackend().ackAlarm(4, 'why')).rejects.toMatchObject({ code: 'forbidden' });
    invoke.mockRejectedValue({ code: 'sign_in_failed', message: 'wrong name or password' });
    await expect(new TauriBackend().signIn('a', 'b')).rejects.toMatchObject({ code: 'sign_in_failed' });
    invoke.mockRejectedValue({ code: 'unauthenticated', message: 'locked' });
    await expect(new TauriBackend().lock()).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('streams live values over a channel until unsubscribed', async () => {
    invoke.mockResolvedValue(undefined);
    const got: unknown[] = [];
    const unsubscribe = await new TauriBackend().subscribeLive((v) => got.push(v));
    const [cmd, args] = invoke.mock.calls[0] as [string, { onValues: { onmessage(v: unknown): void } }];
    expect(cmd).toBe('subscribe_live');
    args.onValues.onmessage([{ device_id: 'OX-1' }]);
    unsubscribe();
    args.onValues.onmessage([{ device_id: 'late' }]);
    expect(got).toEqual([[{ device_id: 'OX-1' }]]);
    expect(invoke).toHaveBeenLastCalledWith('unsubscribe_live', undefined);
  });

  it('listens to the status event and hands over its payload', async () => {
    const unlisten = vi.fn();
    listen.mockImplementation(async (_name: string, handler: (e: { payload: unknown }) => void) => {
      handler({ payload: { at: 'now' } });
      return unlisten;
    });
    const got: unknown[] = [];
    const stop = await new TauriBackend().onStatus((b) => got.push(b));
    expect(listen.mock.calls[0]![0]).toBe('status');
    expect(got).toEqual([{ at: 'now' }]);
    stop();
    expect(unlisten).toHaveBeenCalled();
  });

  it('waits for a pending unsubscribe before subscribing again', async () => {
    let finishUnsubscribe = () => {};
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'unsubscribe_live') await new Promise<void>((r) => { finishUnsubscribe = r; });
    });
    const b = new TauriBackend();
    (await b.subscribeLive(() => undefined))();
    const again = b.subscribeLive(() => undefined);
    await Promise.resolve();
    expect(invoke.mock.calls.map((c) => c[0])).toEqual(['subscribe_live', 'unsubscribe_live']);
    finishUnsubscribe();
    await again;
    expect(invoke.mock.calls.map((c) => c[0])).toEqual(['subscribe_live', 'unsubscribe_live', 'subscribe_live']);
  });
});
