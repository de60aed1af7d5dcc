// The mock must refuse what Rust's facade refuses, with the same codes: views are tested against it.
import { describe, expect, it } from 'vitest';
import { MockBackend } from './mock';
import type { PairRequest } from './types';
import { MRN_SYSTEM } from './demo-data';
import { SILENCE_MINUTES } from '../views/alarms';

const OP = 'Test Operator';

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
    expect(await codeOf(b.silenceAlarm(41, OP, 'Repositioning', 0))).toBe('invalid_input');
    expect(await codeOf(b.silenceAlarm(41, OP, 'Repositioning', 61))).toBe('invalid_input');
    expect(await codeOf(b.silenceAlarm(41, OP, 'Repositioning', 60))).toBe('ok');
    // Every choice the alarms view offers is one Rust accepts.
    for (const m of SILENCE_MINUTES) expect(await codeOf(b.silenceAlarm(42, OP, 'Repositioning', m))).toBe('ok');
  });

  it('refuses to acknowledge an alarm twice', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(41, OP, 'Seen at bedside'))).toBe('ok');
    const err = await b.ackAlarm(41, 'Someone Else', 'Seen too').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'refused', message: 'alarm 41 does not exist or is already acknowledged' });
    expect(b.data.alarms.find((a) => a.id === 41)!.acked_by).toBe(OP);
  });

  it('requires a trimmed operator and reason', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(41, '  ', 'Seen'))).toBe('invalid_input');
    expect(await codeOf(b.discardQuarantine(8, OP, '   '))).toBe('invalid_input');
  });

  it('refuses a pairing that meets another of the device, unless it names the patient it replaces', async () => {
    const b = new MockBackend();
    const ox = () => b.data.devices.find((d) => d.device_id === 'OX-1000')!;
    // OX-1000 is Alpha's (patient 1) since the demo started.
    const toCharlie = pairing('OX-1000', 'MRN-100002');
    const unconfirmed = await b.pairDevice(toCharlie, OP).catch((e: unknown) => e);
    expect(unconfirmed).toMatchObject({ code: 'refused' });
    expect((unconfirmed as Error).message).toContain('confirm the replacement naming both patients (patient 1 replaced by patient 4)');
    expect(await codeOf(b.pairDevice({ ...toCharlie, replacing: 4 }, OP))).toBe('refused');
    expect(await codeOf(b.pairDevice({ ...toCharlie, replacing: 1 }, OP))).toBe('ok');
    expect(ox()).toMatchObject({ patient_id: 4, paired_until: null });
    // Charlie's again, or Alpha's over the time Alpha had it: overlaps.
    expect(await codeOf(b.pairDevice(toCharlie, OP))).toBe('refused');
    const alphaEarlier = { ...pairing('OX-1000', 'MRN-100000', hoursAgo(2), hoursAgo(1)), reason: 'charting late' };
    expect(await codeOf(b.pairDevice(alphaEarlier, OP))).toBe('refused');
    expect(await codeOf(b.pairDevice(pairing('NO-SUCH', 'MRN-100000'), OP))).toBe('refused');
    expect(await codeOf(b.pairDevice(pairing('MX-00A1', 'MRN-999999'), OP))).toBe('patient_not_found');
    expect(await codeOf(b.pairDevice(pairing('MX-00A1', 'MRN-100002', hoursAgo(1), hoursAgo(2)), OP))).toBe('invalid_input');
    expect(await codeOf(b.unpairDevice('MX-00A1', OP))).toBe('refused');
    expect(await codeOf(b.unpairDevice('OX-1000', OP))).toBe('ok');
    expect(ox().pairing_id).toBeNull();
    expect(await codeOf(b.unpairDevice('OX-1000', OP))).toBe('refused');
  });

  it('needs a reason for a pairing that starts more than a minute ago', async () => {
    const b = new MockBackend();
    const backDated = pairing('MX-00A1', 'MRN-100002', hoursAgo(1));
    expect(await codeOf(b.pairDevice(backDated, OP))).toBe('invalid_input');
    expect(await codeOf(b.pairDevice({ ...backDated, reason: '  ' }, OP))).toBe('invalid_input');
    expect(await codeOf(b.pairDevice({ ...backDated, reason: 'sent before it was paired' }, OP))).toBe('ok');
    // A "now" typed half a minute late is not back-dating.
    expect(await codeOf(new MockBackend().pairDevice(pairing('MX-00A1', 'MRN-100002', secondsAgo(30)), OP))).toBe('ok');
  });

  it('registers an existing device as a relabel, and refuses an unknown profile', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.registerDevice('OX-1000', 'acme-ox100', 'Bed 2 oximeter', OP))).toBe('ok');
    const d = b.data.devices.filter((x) => x.device_id === 'OX-1000');
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ label: 'Bed 2 oximeter', pairing_id: 2 });
    expect(await codeOf(b.registerDevice('OX-2000', 'no-such-profile', '', OP))).toBe('unknown_profile');
  });

  it('answers unknown ids and wrong states with the codes Rust sends', async () => {
    const b = new MockBackend();
    expect(await codeOf(b.ackAlarm(999, OP, 'Seen'))).toBe('refused');
    expect(await codeOf(b.silenceAlarm(37, OP, 'Cleared already', 5))).toBe('refused');
    expect(await codeOf(b.releaseQuarantine(999, OP, 'Why'))).toBe('not_found');
    expect(await codeOf(b.discardQuarantine(999, OP, 'Why'))).toBe('refused');
    expect(await codeOf(b.resend(999, OP))).toBe('not_found');
    expect(await codeOf(b.resend(302, OP))).toBe('refused');
    expect(await codeOf(b.lookupPatient(MRN_SYSTEM, 'MRN-999999'))).toBe('patient_not_found');
  });

  it('only takes error codes Rust has', () => {
    const b = new MockBackend();
    // @ts-expect-error: "already_acked" is not in the generated ErrorCode union.
    b.failNext('ackAlarm', 'already_acked', 'invented');
    b.failNext('ackAlarm', 'refused', 'alarm 41 does not exist or is already acknowledged');
  });
});
