// How values are written on screen. Every state that has a colour also has a word and a shape, so
// nothing depends on colour alone.
import type { DegradationMode, DeviceState, HealthState, Priority } from '../backend';

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

/**
 * Formatters by zone, made once: Intl formatters are costly to build and a fleet of 500 rows formats
 * a time per row. The zone name is written the en-US way ("EST", "GMT+1") so it reads the same on any
 * workstation locale; the digits are assembled from the parts, never left to the locale.
 */
const formatters = new Map<string, Intl.DateTimeFormat>();
function partsOf(d: Date, timeZone?: string): Record<string, string> {
  const key = timeZone ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
      hourCycle: 'h23', timeZoneName: 'short', ...(timeZone ? { timeZone } : {}),
    });
    formatters.set(key, f);
  }
  return Object.fromEntries(f.formatToParts(d).map((p) => [p.type, p.value]));
}

/**
 * Local clock time with the zone, "09:05:12 EST": the workstation's zone unless `timeZone` is given
 * (tests). Unparsable input is shown as it came; no time as "—".
 */
export function formatTime(iso: string | null, timeZone?: string): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = partsOf(d, timeZone);
  return `${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** Local date and time with the zone, "2026-12-03 09:05:12 EST". */
export function formatDateTime(iso: string | null, timeZone?: string): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = partsOf(d, timeZone);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** A count with thousands separated, "2,000": the same on every workstation locale. */
export function countText(n: number): string {
  return n.toLocaleString('en-US');
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

/** Device states, worst first, with the same shapes as component health (✖ down, ◌ stale, ● up). */
export const DEVICE_STATE: Record<DeviceState, { shape: string; word: string; rank: number }> = {
  unknown: { shape: '?', word: 'Unknown', rank: 0 },
  offline: { shape: '✖', word: 'Offline', rank: 1 },
  stale: { shape: '◌', word: 'Stale', rank: 2 },
  never_seen: { shape: '○', word: 'Never seen', rank: 3 },
  online: { shape: '●', word: 'Online', rank: 4 },
};
export const DEVICE_STATES = (Object.keys(DEVICE_STATE) as DeviceState[]).sort((a, b) => DEVICE_STATE[a].rank - DEVICE_STATE[b].rank);

export const SEVERITY: Record<DegradationMode['severity'], { shape: string; word: string; rank: number }> = {
  critical: { shape: '▲', word: 'CRITICAL', rank: 0 },
  warning: { shape: '●', word: 'WARNING', rank: 1 },
};

/** "no_active_pairing" -> "No active pairing". */
export function codeText(code: string): string {
  const s = code.replace(/[_-]+/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
