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
    const as = (name: string) => new MockBackend({ accounts: ACCOUNTS, signedIn: name });
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
    expect((await b.board()).alarms).toEqual({ high: 1, medium: 1, low: 1, technical: 2, acknowledged: 0 });
    await b.ackAlarm(41, 'Seen');
    expect((await b.board()).alarms).toEqual({ high: 0, medium: 1, low: 1, technical: 2, acknowledged: 1 });
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
    expect(await codeOf(b.releaseQuarantine(999, 'Why'))).toBe('not_found');
    expect(await codeOf(b.discardQuarantine(999, 'Why'))).toBe('refused');
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
});
