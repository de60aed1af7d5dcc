// How values are written on screen. Every state that has a colour also has a word and a shape, so
// nothing depends on colour alone.
import type { DegradationMode, HealthState, Priority } from '../backend';

export function ageText(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Seconds from `iso` to `nowMs` (0 if `iso` is in the future or unparsable). */
export function secsSince(iso: string, nowMs: number): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : Math.max(0, (nowMs - t) / 1000);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time: "14:03:27" today, "2026-11-23 14:03" on other days. */
export function timeText(iso: string | null, nowMs = Date.now()): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date(nowMs);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return `${hm}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** UCUM codes as clinicians write them; the UCUM code stays available as a tooltip. */
const UNIT_TEXT: Record<string, string> = { 'mm[Hg]': 'mmHg', Cel: '°C', '[degF]': '°F', '{beats}/min': '/min' };
export function unitText(ucum: string): string {
  return UNIT_TEXT[ucum] ?? ucum;
}

/** With the metric's decimals when given (36.8, 97); else up to two, without trailing zeros. */
export function valueText(v: number, decimals?: number): string {
  return decimals === undefined ? String(Math.round(v * 100) / 100) : v.toFixed(decimals);
}

export const PRIORITY: Record<Priority, { shape: string; word: string; rank: number }> = {
  high: { shape: '▲▲▲', word: 'HIGH', rank: 0 },
  medium: { shape: '▲▲', word: 'MEDIUM', rank: 1 },
  low: { shape: '▲', word: 'LOW', rank: 2 },
};

export const HEALTH: Record<HealthState, { shape: string; word: string }> = {
  up: { shape: '●', word: 'up' },
  degraded: { shape: '◆', word: 'degraded' },
  down: { shape: '✖', word: 'down' },
  stale: { shape: '◌', word: 'stale' },
};

export const SEVERITY: Record<DegradationMode['severity'], { shape: string; word: string; rank: number }> = {
  critical: { shape: '▲', word: 'CRITICAL', rank: 0 },
  warning: { shape: '●', word: 'WARNING', rank: 1 },
};

/** "no_active_pairing" -> "No active pairing". */
export function codeText(code: string): string {
  const s = code.replace(/[_-]+/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
