import { describe, expect, it } from 'vitest';
import { ageText, codeText, secsSince, unitText, valueText } from './format';

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
});
