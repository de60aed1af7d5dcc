// The mock must refuse what Rust's facade refuses, with the same codes: views are tested against it.
import { describe, expect, it } from 'vitest';
import { MockBackend } from './mock';
import { MRN_SYSTEM } from './demo-data';
import { SILENCE_MINUTES } from '../views/alarms';

const OP = 'Test Operator';

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

  it('pairs, re-pairs and unpairs by Rust\'s rules', async () => {
    const b = new MockBackend();
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
    // An open pairing is closed at the new start...
    expect(await codeOf(b.pairDevice('OX-1000', MRN_SYSTEM, 'MRN-100002', null, null, OP))).toBe('ok');
    expect(b.data.devices.find((d) => d.device_id === 'OX-1000')!.patient_id).toBe(4);
    // ...unless the new one would start before it.
    expect(await codeOf(b.pairDevice('OX-1000', MRN_SYSTEM, 'MRN-100000', hoursAgo(1), null, OP))).toBe('refused');
    expect(await codeOf(b.pairDevice('NO-SUCH', MRN_SYSTEM, 'MRN-100000', null, null, OP))).toBe('refused');
    expect(await codeOf(b.pairDevice('MX-00A1', MRN_SYSTEM, 'MRN-999999', null, null, OP))).toBe('patient_not_found');
    expect(await codeOf(b.pairDevice('MX-00A1', MRN_SYSTEM, 'MRN-100002', hoursAgo(1), hoursAgo(2), OP))).toBe('invalid_input');
    expect(await codeOf(b.unpairDevice('MX-00A1', OP))).toBe('refused');
    expect(await codeOf(b.unpairDevice('OX-1000', OP))).toBe('ok');
    expect(await codeOf(b.unpairDevice('OX-1000', OP))).toBe('refused');
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
