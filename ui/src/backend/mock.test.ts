// The mock must refuse what Rust's facade refuses, with the same codes: views are tested against it.
import { describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT, MIN_PASSWORD_CHARS, MockBackend, type MockAccount } from './mock';
import type { PairRequest } from './types';
import { MRN_SYSTEM } from './demo-data';
import { SILENCE_MINUTES } from '../views/alarms';
import { MIN_PASSWORD_CHARS as UI_MIN_PASSWORD_CHARS } from '../components/SignIn';

const ACCOUNTS: MockAccount[] = [
  { name: 'vera', password: 'viewer-password', roles: ['viewer'] },
  { name: 'cleo', password: 'clinician-password', roles: ['clinician'] },
  { name: 'bo', password: 'biomed-password', roles: ['biomed'] },
  { name: 'ada', password: 'admin-password', roles: ['admin'] },
];

const secondsAgo = (n: number) => new Date(Date.now() - n * 1000).toISOString();
const hoursAgo = (h: number) => secondsAgo(h * 3600);

/** A pairing request for a demo patient, from now and open-ended unless given. */
function pairing(device_id: string, value: string, from: string | null = null, until: string | null = null): PairRequest {
  return { device_id, system: MRN_SYSTEM, value, from, until, reason: null, replacing: null };
}

/** The code a call fails with, or "ok". */
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string }) => e.code);

/** The mock of a site with ACCOUNTS, signed in as `name`. */
function as(name: string) {
  return new MockBackend({ accounts: ACCOUNTS, signedIn: name });
}

describe('mock backend', () => {
  it('silences for 1 to 60 minutes only, like Rust', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.silenceAlarm(41, 'Repositioning', 0))).toBe('invalid_input');
    expect(await codeOf(b.silenceAlarm(41, 'Repositioning', 61))).toBe('invalid_input');
    expect(await codeOf(b.silenceAlarm(41, 'Repositioning', 60))).toBe('ok');
    // Every choice the alarms view offers is one Rust accepts.
    for (const m of SILENCE_MINUTES) expect(await codeOf(b.silenceAlarm(42, 'Repositioning', m))).toBe('ok');
  });

  it('refuses to acknowledge an alarm twice', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(41, 'Seen at bedside'))).toBe('ok');
    const err = await b.ackAlarm(41, 'Seen too').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'refused', message: 'alarm 41 does not exist or is already acknowledged' });
    expect(b.data.alarms.find((a) => a.id === 41)!.acked_by).toBe(DEMO_ACCOUNT.name);
  });

  it('requires a trimmed reason', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(41, '  '))).toBe('invalid_input');
    expect(await codeOf(b.discardQuarantine(8, '   '))).toBe('invalid_input');
    expect(await codeOf(b.saveSettings(b.data.settings, ' '))).toBe('invalid_input');
  });

  it('is the demo site by default, signed in as the demo administrator', async () => {
    expect(await new MockBackend().session()).toEqual({ account: 'demo', roles: ['admin'], demo: true, locked: false,
      needs_first_admin: false, lock_after_secs: 300, break_glass: false });
    const site = new MockBackend({ accounts: ACCOUNTS, lockAfterSecs: 0 });
    expect(await site.session()).toMatchObject({ account: null, roles: [], demo: false, lock_after_secs: 0 });
  });

  it('lets each role do only what it allows, and says which role is needed', async () => {
    const forbidden = await as('vera').ackAlarm(41, 'Seen').catch((e: unknown) => e);
    expect(forbidden).toMatchObject({ code: 'forbidden', message: 'this needs the clinician role; vera has viewer' });
    expect(await codeOf(as('vera').alarms(true))).toBe('ok');
    expect(await codeOf(as('cleo').ackAlarm(41, 'Seen'))).toBe('ok');
    expect(await codeOf(as('cleo').resend(251))).toBe('forbidden');
    expect(await codeOf(as('bo').resend(251))).toBe('ok');
    expect(await codeOf(as('bo').silenceAlarm(41, 'Seen', 5))).toBe('forbidden');
    const bo = as('bo');
    expect(await codeOf(bo.saveSettings(bo.data.settings, 'New EHR'))).toBe('forbidden');
    const ada = as('ada');
    expect(await codeOf(ada.saveSettings(ada.data.settings, 'New EHR'))).toBe('ok');
    expect(await codeOf(ada.ackAlarm(42, 'Seen'))).toBe('ok');
  });

  it('refuses every call but the board while locked or signed out, and unlocks only with the password', async () => {
    const b = new MockBackend();
    await b.lock();
    expect(await codeOf(b.alarms(true))).toBe('unauthenticated');
    expect(await codeOf(b.ackAlarm(41, 'Seen'))).toBe('unauthenticated');
    expect(await codeOf(b.board())).toBe('ok');
    expect(await b.unlock('wrong').catch((e: unknown) => e)).toMatchObject({ code: 'sign_in_failed' });
    expect(await b.unlock('demo')).toMatchObject({ account: 'demo', locked: false });
    expect(await b.signOut()).toMatchObject({ account: null, locked: false });
    expect(await codeOf(b.alarms(true))).toBe('unauthenticated');
    expect(await codeOf(b.unlock('demo'))).toBe('unauthenticated');
  });

  it('signs in with the right password, and makes one wait after too many failures', async () => {
    const b = new MockBackend({ accounts: ACCOUNTS });
    expect(await b.signIn(' cleo ', 'clinician-password')).toMatchObject({ account: 'cleo', roles: ['clinician'] });
    for (let i = 0; i < 4; i++) {
      expect(await b.signIn('cleo', 'guess').catch((e: unknown) => e)).toMatchObject({ code: 'sign_in_failed', message: 'wrong name or password' });
    }
    expect(await codeOf(b.signIn('nobody', 'guess'))).toBe('sign_in_failed');
    const blocked = await b.signIn('cleo', 'clinician-password').catch((e: unknown) => e);
    expect(blocked).toMatchObject({ code: 'sign_in_failed', message: 'too many failed attempts: wait 60 s, then try again' });
  });

  it('creates the first administrator only while no account exists', async () => {
    expect(MIN_PASSWORD_CHARS).toBe(UI_MIN_PASSWORD_CHARS);
    const b = new MockBackend({ accounts: [] });
    expect(await b.session()).toMatchObject({ account: null, needs_first_admin: true, demo: false });
    expect(await codeOf(b.createFirstAdmin('ada', 'short'))).toBe('invalid_input');
    expect(await b.createFirstAdmin(' ada ', 'a long admin password')).toMatchObject({
      account: 'ada', roles: ['admin'], needs_first_admin: false });
    expect(await codeOf(b.createFirstAdmin('eve', 'another long password'))).toBe('refused');
  });

  it('counts active unacknowledged alarms by priority on the board, the technical and acknowledged apart', async () => {
    const b = new MockBackend();
    expect((await b.board()).alarms).toEqual({ high: 1, medium: 3, low: 1, technical: 4, acknowledged: 0 });
    await b.ackAlarm(41, 'Seen');
    expect((await b.board()).alarms).toEqual({ high: 0, medium: 3, low: 1, technical: 4, acknowledged: 1 });
  });

  it('refuses a pairing that meets another of the device, unless it names the patient it replaces', async () => {
    const b = new MockBackend();
    const ox = () => b.data.devices.find((d) => d.device_id === 'OX-1000')!;
    // OX-1000 is Alpha's (patient 1) since the demo started.
    const toCharlie = pairing('OX-1000', 'MRN-100002');
    const unconfirmed = await b.pairDevice(toCharlie).catch((e: unknown) => e);
    expect(unconfirmed).toMatchObject({ code: 'refused' });
    expect((unconfirmed as Error).message).toContain('confirm the replacement naming both patients (patient 1 replaced by patient 4)');
    expect(await codeOf(b.pairDevice({ ...toCharlie, replacing: 4 }))).toBe('refused');
    expect(await codeOf(b.pairDevice({ ...toCharlie, replacing: 1 }))).toBe('ok');
    expect(ox()).toMatchObject({ patient_id: 4, paired_until: null });
    // Charlie's again, or Alpha's over the time Alpha had it: overlaps.
    expect(await codeOf(b.pairDevice(toCharlie))).toBe('refused');
    const alphaEarlier = { ...pairing('OX-1000', 'MRN-100000', hoursAgo(2), hoursAgo(1)), reason: 'charting late' };
    expect(await codeOf(b.pairDevice(alphaEarlier))).toBe('refused');
    expect(await codeOf(b.pairDevice(pairing('NO-SUCH', 'MRN-100000')))).toBe('refused');
    expect(await codeOf(b.pairDevice(pairing('MX-00A1', 'MRN-999999')))).toBe('patient_not_found');
    expect(await codeOf(b.pairDevice(pairing('MX-00A1', 'MRN-100002', hoursAgo(1), hoursAgo(2))))).toBe('invalid_input');
    expect(await codeOf(b.unpairDevice('MX-00A1'))).toBe('refused');
    expect(await codeOf(b.unpairDevice('OX-1000'))).toBe('ok');
    expect(ox().pairing_id).toBeNull();
    expect(await codeOf(b.unpairDevice('OX-1000'))).toBe('refused');
  });

  it('needs a reason for a pairing that starts more than a minute ago', async () => {
    const b = new MockBackend();
    const backDated = pairing('MX-00A1', 'MRN-100002', hoursAgo(1));
    expect(await codeOf(b.pairDevice(backDated))).toBe('invalid_input');
    expect(await codeOf(b.pairDevice({ ...backDated, reason: '  ' }))).toBe('invalid_input');
    expect(await codeOf(b.pairDevice({ ...backDated, reason: 'sent before it was paired' }))).toBe('ok');
    // A "now" typed half a minute late is not back-dating.
    expect(await codeOf(new MockBackend().pairDevice(pairing('MX-00A1', 'MRN-100002', secondsAgo(30))))).toBe('ok');
  });

  it('registers an existing device as a relabel, and refuses an unknown profile', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.registerDevice('OX-1000', 'acme-ox100', 'Bed 2 oximeter'))).toBe('ok');
    const d = b.data.devices.filter((x) => x.device_id === 'OX-1000');
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ label: 'Bed 2 oximeter', pairing_id: 2 });
    expect(await codeOf(b.registerDevice('OX-2000', 'no-such-profile', ''))).toBe('unknown_profile');
  });

  it('answers unknown ids and wrong states with the codes Rust sends', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(999, 'Seen'))).toBe('refused');
    expect(await codeOf(b.silenceAlarm(37, 'Cleared already', 5))).toBe('refused');
    expect(await codeOf(b.releaseQuarantine(99_999, 'Why'))).toBe('not_found');
    expect(await codeOf(b.discardQuarantine(99_999, 'Why'))).toBe('refused');
    expect(await codeOf(b.resend(999))).toBe('not_found');
    expect(await codeOf(b.resend(302))).toBe('refused');
    expect(await codeOf(b.lookupPatient(MRN_SYSTEM, 'MRN-999999'))).toBe('patient_not_found');
  });

  it('only takes error codes Rust has', () => {
    const b = new MockBackend();
    // @ts-expect-error: "already_acked" is not in the generated ErrorCode union.
    b.failNext('ackAlarm', 'already_acked', 'invented');
    b.failNext('ackAlarm', 'refused', 'alarm 41 does not exist or is already acknowledged');
  });

  it('acknowledges infrastructure alarms in bulk, all or nothing, and refuses one about a patient', async () => {
    const b = new MockBackend();
    const refused = await b.ackAlarms([43, 45], 'Network fixed').catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'refused' });
    expect((refused as Error).message).toContain('alarm 45 (device-offline) is about a patient');
    expect(b.data.alarms.find((a) => a.id === 43)!.acked_at).toBeNull();
    expect(await codeOf(b.ackAlarms([43, 44], ' '))).toBe('invalid_input');
    expect(await codeOf(b.ackAlarms([43, 37], 'Why'))).toBe('not_found');
    expect(await b.ackAlarms([], 'Why')).toBe(0);
    expect(await b.ackAlarms([43, 44], 'Network fixed')).toBe(2);
    expect(await codeOf(b.ackAlarms([43], 'Again'))).toBe('refused');
    expect(await codeOf(as('vera').ackAlarms([44], 'Seen'))).toBe('forbidden');
  });

  it('lists the fleet: every registered device and the unknown sender, each in its state', async () => {
    const b = new MockBackend();
    const fleet = await b.fleet();
    expect(fleet).toHaveLength(30);
    const state = (id: string) => fleet.find((d) => d.device_id === id)!.state;
    expect(state('OX-1000')).toBe('online');
    expect(state('MX-00B7')).toBe('offline');
    expect(state('OX-1005')).toBe('stale');
    expect(state('OX-1090')).toBe('never_seen');
    expect(fleet.find((d) => d.device_id === 'ZX-9F31')).toMatchObject({ state: 'unknown', registered: false,
      profile_id: 'medi-mx700', quarantined: 40 });
    expect(fleet.find((d) => d.device_id === 'MX-00A1')).toMatchObject({ registered: true, patient_id: null, quarantined: 2000 });
    // Registering the unknown sender makes it a device that is heard, not yet paired.
    await b.registerDevice('ZX-9F31', 'medi-mx700', 'Bay 2 monitor');
    expect((await b.fleet()).find((d) => d.device_id === 'ZX-9F31')).toMatchObject({ state: 'online', registered: true,
      label: 'Bay 2 monitor' });
  });

  it('keeps each device\'s pairing history, newest first, with who made each pairing', async () => {
    const b = new MockBackend();
    const history = await b.pairingHistory('MX-00A0');
    expect(history.map((p) => [p.patient_id, p.valid_to === null])).toEqual([[1, true], [15, false]]);
    expect(history[1]!.created_by).toBe('R. Lindqvist');
    await b.pairDevice(pairing('MX-00A1', 'MRN-100002'));
    expect(await b.pairingHistory('MX-00A1')).toMatchObject([{ patient_id: 4, created_by: 'demo', valid_to: null }]);
  });

  it('groups quarantine by device and reason, largest first, and pages through every row newest first', async () => {
    const b = new MockBackend();
    const groups = await b.quarantineGroups();
    expect(groups.map((g) => [g.device_id, g.reason, g.count, g.registered])).toEqual([
      ['MX-00A1', 'no_active_pairing', 2000, true], ['ZX-9F31', 'unknown_device', 40, false], ['OX-1006', 'implausible', 3, true]]);
    expect(Date.parse(groups[0]!.first_observed)).toBeLessThan(Date.parse(groups[0]!.last_observed));
    const filter = { device_id: 'MX-00A1', reason: 'no_active_pairing', older_than: null, limit: 100 };
    const newest = await b.quarantinePage(filter);
    expect([newest.entries.length, newest.total, newest.newer]).toEqual([100, 2000, 0]);
    expect(newest.entries[0]!.observed_at).toBe(groups[0]!.last_observed);
    // Each page starts after the last row of the one before: every row once, to the oldest.
    const seen = new Set(newest.entries.map((q) => q.id));
    let oldest = newest.entries.at(-1)!;
    for (;;) {
      const page = await b.quarantinePage({ ...filter, older_than: { observed_at: oldest.observed_at, id: oldest.id } });
      expect(page.newer).toBe(seen.size);
      if (page.entries.length === 0) break;
      page.entries.forEach((q) => seen.add(q.id));
      oldest = page.entries.at(-1)!;
    }
    expect(seen.size).toBe(2000);
    expect(oldest.observed_at).toBe(groups[0]!.first_observed);
    expect((await b.quarantinePage({ device_id: null, reason: null, older_than: null, limit: 500 })).total).toBe(2043);
    // Rust clamps a page to 500 rows.
    expect((await b.quarantinePage({ device_id: null, reason: null, older_than: null, limit: 5000 })).entries).toHaveLength(500);
  });

  it('pairs and releases a group as one action: every reading inside the pairing is stored under the patient', async () => {
    const b = new MockBackend();
    const [group] = await b.quarantineGroups();
    const stored = b.data.ingest.stored;
    const request = { ...pairing('MX-00A1', 'MRN-100001', group!.first_observed), reason: 'spare monitor sent before it was paired' };
    expect(await codeOf(b.pairAndRelease(request, ' '))).toBe('invalid_input');
    expect(await codeOf(b.pairAndRelease({ ...request, reason: null }, 'Pairing fixed'))).toBe('invalid_input');
    expect(await b.pairAndRelease(request, 'Pairing fixed')).toMatchObject({ stored: 2000, held: 0, duplicate: 0, still_quarantined: 0 });
    expect(b.data.ingest.stored).toBe(stored + 2000);
    expect((await b.quarantineGroups()).map((g) => g.device_id)).toEqual(['ZX-9F31', 'OX-1006']);
    expect(b.data.devices.find((d) => d.device_id === 'MX-00A1')!.patient_id).toBe(2);
  });

  it('holds the released readings of a patient without store consent, and refuses an unregistered device', async () => {
    const b = new MockBackend();
    const [group] = await b.quarantineGroups();
    const request = { ...pairing('MX-00A1', 'MRN-100002', group!.first_observed), reason: 'sent before it was paired' };
    expect(await b.pairAndRelease(request, 'Pairing fixed')).toMatchObject({ stored: 0, held: 2000 });
    expect((await b.held()).filter((h) => h.patient_id === 4)).toHaveLength(2009);
    const unknown = { ...pairing('ZX-9F31', 'MRN-100001', hoursAgo(1)), reason: 'sent before it was registered' };
    expect(await codeOf(b.pairAndRelease(unknown, 'Pairing fixed'))).toBe('refused');
    expect(await codeOf(as('vera').pairAndRelease(unknown, 'Pairing fixed'))).toBe('forbidden');
  });

  it('discards a whole group with a reason, and only that group', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.discardGroup('ZX-9F31', 'unknown_device', ''))).toBe('invalid_input');
    expect(await b.discardGroup('ZX-9F31', 'unknown_device', 'Bench test device')).toBe(40);
    expect((await b.quarantineGroups()).map((g) => g.device_id)).toEqual(['MX-00A1', 'OX-1006']);
  });

  it('draws a bed chart of every parameter of a patient, and refuses a patient without readings', async () => {
    const b = new MockBackend();
    const svg = await b.bedChart(1, 60);
    for (const metric of ['Heart rate', 'SpO2', 'Pulse rate', 'NIBP systolic']) expect(svg).toContain(metric);
    expect(await codeOf(b.bedChart(99, 60))).toBe('unknown_series');
  });
});
