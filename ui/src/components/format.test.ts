import { describe, expect, it } from 'vitest';
import { ageText, codeText, countText, formatDateTime, formatTime, secsSince, unitText, valueText } from './format';
import { localToRfc3339, rfc3339ToLocal } from './PairingForms';

describe('formatting', () => {
  it('writes ages in the largest whole unit', () => {
    expect(ageText(4.7)).toBe('4 s ago');
    expect(ageText(-3)).toBe('0 s ago');
    expect(ageText(125)).toBe('2 min ago');
    expect(ageText(7300)).toBe('2 h ago');
    expect(ageText(200_000)).toBe('2 d ago');
  });

  it('measures ages between two instants and never goes negative', () => {
    expect(secsSince('2026-11-24T10:00:00Z', Date.parse('2026-11-24T10:00:30Z'))).toBe(30);
    expect(secsSince('2026-11-24T10:01:00Z', Date.parse('2026-11-24T10:00:30Z'))).toBe(0);
    expect(secsSince('not a time', Date.now())).toBe(0);
  });

  it('shows UCUM units and codes as people write them', () => {
    expect(unitText('mm[Hg]')).toBe('mmHg');
    expect(unitText('Cel')).toBe('°C');
    expect(unitText('/min')).toBe('/min');
    expect(valueText(97)).toBe('97');
    expect(valueText(36.849)).toBe('36.85');
    expect(valueText(36.849, 1)).toBe('36.8');
    expect(valueText(97, 0)).toBe('97');
    expect(codeText('no_active_pairing')).toBe('No active pairing');
  });

  it('writes instants in local clock time with the zone, in one format per column', () => {
    const t = '2026-12-03T14:05:12.345Z';
    expect(formatTime(t, 'America/New_York')).toBe('09:05:12 EST');
    expect(formatDateTime(t, 'America/New_York')).toBe('2026-12-03 09:05:12 EST');
    // Summer time has its own zone name; midnight is 00, never 24.
    expect(formatDateTime('2026-07-01T04:00:00Z', 'America/New_York')).toBe('2026-07-01 00:00:00 EDT');
    expect(formatTime('2026-12-03T14:05:12Z', 'UTC')).toBe('14:05:12 UTC');
    expect(formatTime(null)).toBe('—');
    expect(formatDateTime('not a time')).toBe('not a time');
    // Without a zone given, the workstation's: the same instant, with a zone name at the end.
    expect(formatTime(t)).toMatch(/^\d\d:\d\d:12 \S+$/);
  });

  it('turns an instant into a datetime-local value in local time that reads back as the same second', () => {
    const local = rfc3339ToLocal('2026-12-03T14:05:12.345Z');
    expect(local).toBe('2026-12-03T09:05:12');
    expect(localToRfc3339(local)).toBe('2026-12-03T14:05:12.000Z');
  });

  it('separates thousands the same way on every locale', () => {
    expect(countText(2000)).toBe('2,000');
    expect(countText(12)).toBe('12');
  });
});
