// An in-memory Backend: the browser demo (`npm run dev`) and the fixture for every view test.
// Mutations really change its state, the way the pipeline would, so tests can assert on what follows.
import { BackendError } from './errors';
import type { Backend } from './index';
import { demoData, patientLabel, type MockData } from './demo-data';
import type {
  Board, ConnectionResult, ConnectionTarget, Device, ErrorCode, Flow, LiveValue, OutboxEntry, OutboxStatus,
  QuarantineItem, ReleaseOutcome, Settings, VerifiedPatient,
} from './types';

export interface MockOptions extends Partial<MockData> {
  /** Push status and jittered live values every 2 s (for the browser demo; tests push by hand). */
  autoTick?: boolean;
  /** The mock's clock; tests may fix it. */
  now?: () => Date;
}

/** One recorded backend call, for tests to assert that operator and reason reached the backend. */
export interface MockCall { method: keyof Backend; args: unknown[] }

const OUTBOX_STATUSES: OutboxStatus[] = ['pending', 'held', 'dead', 'delivered'];

/** A copy, as if it had crossed IPC as JSON: views can never alias the mock's state. */
const wire = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)) as T);

export class MockBackend implements Backend {
  readonly data: MockData;
  readonly calls: MockCall[] = [];
  /** Consent per "system|value|flow". */
  readonly consent = new Map<string, boolean>();
  /** Readings held for want of store consent, per `system|value`. */
  readonly held = new Map<string, number>([['urn:oid:2.16.840.1.113883.19.5.99999.2|MRN-100002', 9]]);
  private readonly now: () => Date;
  private readonly statusSubs = new Set<(b: Board) => void>();
  private readonly liveSubs = new Set<(v: LiveValue[]) => void>();
  private readonly failures = new Map<keyof Backend, BackendError>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private nextPairing = 100;

  constructor(opts: MockOptions = {}) {
    const { autoTick, now, ...overrides } = opts;
    this.now = now ?? (() => new Date());
    this.data = { ...demoData(this.now()), ...overrides };
    if (autoTick) this.timer = setInterval(() => this.tick(), 2000);
  }

  dispose() { clearInterval(this.timer); }

  /** Make the next call of `method` reject with this error (once). */
  failNext(method: keyof Backend, code: ErrorCode, message: string) {
    this.failures.set(method, fail(code, message));
  }

  /** Push a status board to every `onStatus` listener, as the supervisor's event would. */
  pushStatus(board: Board = this.snapshot()) { for (const cb of this.statusSubs) cb(wire(board)); }

  /** Push values to every live subscriber (they also replace the mock's own latest values). */
  pushLive(values: LiveValue[]) {
    for (const v of values) {
      const i = this.data.live.findIndex((x) => x.device_id === v.device_id && x.mdc_code === v.mdc_code);
      if (i >= 0) this.data.live[i] = v; else this.data.live.push(v);
    }
    for (const cb of this.liveSubs) cb(wire(values));
  }

  get liveSubscribers() { return this.liveSubs.size; }

  // ---- queries -------------------------------------------------------------------------------------

  board() { return this.reply('board', [], () => this.snapshot()); }

  async onStatus(cb: (b: Board) => void) {
    this.statusSubs.add(cb);
    return () => { this.statusSubs.delete(cb); };
  }

  liveValues() { return this.reply('liveValues', [], () => this.data.live); }

  async subscribeLive(cb: (v: LiveValue[]) => void) {
    await this.reply('subscribeLive', [], () => undefined);
    this.liveSubs.add(cb);
    return () => { this.liveSubs.delete(cb); };
  }

  chart(deviceId: string, mdcCode: number, minutes: number) {
    return this.reply('chart', [deviceId, mdcCode, minutes], () => {
      const v = this.data.live.find((x) => x.device_id === deviceId && x.mdc_code === mdcCode);
      if (!v) throw fail('unknown_series', `No readings from ${deviceId} for code ${mdcCode}.`);
      return demoChart(v, minutes);
    });
  }

  alarms(activeOnly: boolean) {
    return this.reply('alarms', [activeOnly], () =>
      this.data.alarms.filter((a) => !activeOnly || a.cleared_at === null));
  }

  quarantine() { return this.reply('quarantine', [], () => this.data.quarantine); }
  devices() { return this.reply('devices', [], () => this.data.devices); }
  profiles() { return this.reply('profiles', [], () => this.data.profiles); }

  lookupPatient(system: string, value: string) {
    return this.reply('lookupPatient', [system, value], (): VerifiedPatient => {
      const { patient_id: _, ...p } = this.patient(system, value);
      return p;
    });
  }

  outbox(status: OutboxStatus | null) {
    return this.reply('outbox', [status], () => this.data.outbox.filter((e) => status === null || e.status === status));
  }

  settings() { return this.reply('settings', [], () => this.data.settings); }

  testConnection(target: ConnectionTarget) {
    return this.reply('testConnection', [target], (): ConnectionResult => {
      const { ehr, broker } = this.data.settings;
      if (target === 'broker') {
        return broker.mode === 'embedded'
          ? { ok: true, message: `Embedded ingest endpoint listening on ${broker.listen ?? '0.0.0.0:1883'}` }
          : { ok: false, message: `Connection refused by ${broker.url ?? '(no URL)'}` };
      }
      if (ehr.kind === 'sandbox') return { ok: true, message: 'Sandbox sink: local store writable' };
      const where = ehr.kind === 'fhir' ? ehr.base_url : ehr.mllp_addr;
      return { ok: false, message: `No answer from ${where ?? '(no address)'} within 10 s` };
    });
  }

  // ---- commands (each takes the operator, as the audit log needs it) ------------------------------
  // Each checks what Rust checks, in the same order (operator first, as the Tauri command builds the
  // Actor before anything else), and fails with the code Rust sends.

  ackAlarm(id: number, operator: string, reason: string) {
    return this.reply('ackAlarm', [id, operator, reason], () => {
      actor(operator);
      required(reason);
      const a = this.data.alarms.find((x) => x.id === id);
      if (!a || a.acked_at) throw fail('refused', `alarm ${id} does not exist or is already acknowledged`);
      Object.assign(a, { acked_at: this.iso(), acked_by: operator.trim(), ack_reason: reason.trim() });
    });
  }

  silenceAlarm(id: number, operator: string, reason: string, minutes: number) {
    return this.reply('silenceAlarm', [id, operator, reason, minutes], () => {
      actor(operator);
      required(reason);
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_SILENCE_MINUTES) {
        throw fail('invalid_input', `silence for 1 to ${MAX_SILENCE_MINUTES} minutes, not ${minutes}`);
      }
      const a = this.data.alarms.find((x) => x.id === id);
      if (!a || a.cleared_at) throw fail('refused', `alarm ${id} does not exist or has already cleared`);
      Object.assign(a, { silenced_until: this.iso(minutes * 60), silenced_by: operator.trim(), silence_reason: reason.trim() });
    });
  }

  releaseQuarantine(id: number, operator: string, reason: string) {
    return this.reply('releaseQuarantine', [id, operator, reason], (): ReleaseOutcome => {
      actor(operator);
      required(reason);
      const item = this.data.quarantine.find((q) => q.id === id);
      if (!item) throw fail('not_found', `quarantined reading ${id} does not exist`);
      const why = this.unattributable(item);
      if (why) {
        return { outcome: 'quarantined', detail: `still quarantined: ${why}. Fix the pairing, then release again.` };
      }
      this.data.quarantine = this.data.quarantine.filter((q) => q.id !== id);
      this.data.ingest.stored += 1;
      return { outcome: 'stored', detail: 'released: the reading now identifies its patient and is stored as telemetry' };
    });
  }

  discardQuarantine(id: number, operator: string, reason: string) {
    return this.reply('discardQuarantine', [id, operator, reason], () => {
      actor(operator);
      required(reason);
      if (!this.data.quarantine.some((q) => q.id === id)) {
        throw fail('refused', `quarantined reading ${id} does not exist or is already resolved`);
      }
      this.data.quarantine = this.data.quarantine.filter((q) => q.id !== id);
    });
  }

  /** Registers a device, or relabels it (and changes its profile) when it exists: an upsert, as in Rust. */
  registerDevice(deviceId: string, profileId: string, label: string, operator: string) {
    return this.reply('registerDevice', [deviceId, profileId, label, operator], () => {
      actor(operator);
      const id = deviceId.trim();
      if (!id) throw fail('invalid_input', 'a device id is required');
      const profile = profileId.trim();
      if (!this.data.profiles.includes(profile)) {
        throw fail('unknown_profile', `no device profile "${profile}" is loaded; loaded: ${this.data.profiles.join(', ')}`);
      }
      const existing = this.data.devices.find((d) => d.device_id === id);
      if (existing) {
        // An empty label keeps the old one (Rust's COALESCE).
        Object.assign(existing, { profile_id: profile, label: label.trim() || existing.label });
        return;
      }
      this.data.devices.push({ device_id: id, profile_id: profile, label: label.trim() || null, pairing_id: null,
        patient_id: null, patient_label: null, paired_since: null, paired_until: null });
    });
  }

  /**
   * Pairs from `from` (default now). An open pairing is closed at the new start, unless the new one
   * would start before it: then Rust refuses and the operator must unpair first.
   */
  pairDevice(deviceId: string, system: string, value: string, from: string | null, until: string | null, operator: string) {
    return this.reply('pairDevice', [deviceId, system, value, from, until, operator], () => {
      actor(operator);
      identifier(system, value);
      const start = from ?? this.iso();
      if (until !== null && Date.parse(until) <= Date.parse(start)) {
        throw fail('invalid_input', 'the pairing must end after it starts');
      }
      const p = this.patient(system, value);
      const id = deviceId.trim();
      const d = this.data.devices.find((x) => x.device_id === id);
      if (!d) throw fail('refused', `device ${id} is not registered`);
      if (isOpen(d) && Date.parse(start) < Date.parse(d.paired_since!)) {
        throw fail('refused', `pairing ${d.pairing_id} of device ${id} starts after ${start}: unpair first`);
      }
      Object.assign(d, { pairing_id: this.nextPairing++, patient_id: p.patient_id, patient_label: patientLabel(p),
        paired_since: start, paired_until: until } satisfies Partial<Device>);
    });
  }

  /** Ends the device's open pairing now; a pairing made for a period has no open end to close. */
  unpairDevice(deviceId: string, operator: string) {
    return this.reply('unpairDevice', [deviceId, operator], () => {
      actor(operator);
      const id = deviceId.trim();
      const d = this.data.devices.find((x) => x.device_id === id);
      if (!d || !isOpen(d)) throw fail('refused', `device ${id} has no open pairing`);
      Object.assign(d, { pairing_id: null, patient_id: null, patient_label: null, paired_since: null,
        paired_until: null } satisfies Partial<Device>);
    });
  }

  setConsent(system: string, value: string, flow: Flow, granted: boolean, operator: string) {
    return this.reply('setConsent', [system, value, flow, granted, operator], () => {
      actor(operator);
      const p = this.patient(system, value);
      this.consent.set(`${p.system}|${p.value}|${flow}`, granted);
    });
  }

  releaseHeld(system: string, value: string, operator: string, reason: string) {
    return this.reply('releaseHeld', [system, value, operator, reason], () => {
      actor(operator);
      required(reason);
      const p = this.patient(system, value);
      const key = `${p.system}|${p.value}`;
      if (this.consent.get(`${key}|store`) !== true) {
        throw fail('refused', `patient ${p.value} has no recorded consent for store: record it before releasing held readings`);
      }
      const moved = this.held.get(key) ?? 0;
      this.held.set(key, 0);
      return moved;
    });
  }

  resend(id: number, operator: string) {
    return this.reply('resend', [id, operator], () => {
      actor(operator);
      const e = this.data.outbox.find((x) => x.id === id);
      if (!e) throw fail('not_found', `outbox ${id} does not exist`);
      if (e.status !== 'dead' && e.status !== 'held') throw fail('refused', `outbox event ${id} is not dead or held`);
      Object.assign(e, { status: 'pending', reason: null, attempts: 0 } satisfies Partial<OutboxEntry>);
    });
  }

  saveSettings(settings: Settings, operator: string) {
    return this.reply('saveSettings', [settings, operator], () => {
      actor(operator);
      if (settings.ehr.kind === 'fhir' && !settings.ehr.base_url) {
        throw fail('invalid_config', 'ehr.base_url: a FHIR EHR needs a base URL.');
      }
      this.data.settings = wire(settings);
    });
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** Answer asynchronously, as IPC does, after recording the call and applying an injected failure. */
  private async reply<T>(method: keyof Backend, args: unknown[], fn: () => T): Promise<T> {
    this.calls.push({ method, args: wire(args) });
    await Promise.resolve();
    const failure = this.failures.get(method);
    if (failure) {
      this.failures.delete(method);
      throw failure;
    }
    return wire(fn());
  }

  private snapshot(): Board {
    const d = this.data;
    const counts = new Map<string, number>(OUTBOX_STATUSES.map((s) => [s, 0]));
    for (const e of d.outbox) counts.set(e.status, (counts.get(e.status) ?? 0) + 1);
    return { at: this.iso(), components: d.components, modes: d.modes, ingest_queue: d.ingest_queue,
      outbox: [...counts.entries()], ingest: d.ingest, rates: d.rates };
  }

  /** Demo heartbeat: components beat, values drift a little and get younger. */
  private tick() {
    const at = this.iso();
    for (const c of this.data.components) if (c.state === 'up') c.last_beat = at;
    this.data.ingest.payloads += 12;
    this.data.ingest.stored += 37;
    this.pushStatus();
    const fresh = this.data.live.filter((v) => !v.stale).map((v) => ({
      ...v, value: drift(v.value), observed_at: at, age_secs: 0,
    }));
    this.pushLive(fresh);
  }

  private iso(plusSecs = 0) { return new Date(this.now().getTime() + plusSecs * 1000).toISOString(); }

  /**
   * Why a quarantined reading still cannot be attributed, as Rust's identify says it; null when the
   * device's current pairing covers the reading's time. (The mock keeps only the current pairing.)
   */
  private unattributable(q: QuarantineItem): string | null {
    const d = this.data.devices.find((x) => x.device_id === q.device_id);
    if (!d) return `device ${q.device_id} is not registered: register and pair it, then release`;
    const t = Date.parse(q.observed_at);
    const covered = d.paired_since !== null && Date.parse(d.paired_since) <= t
      && (d.paired_until === null || t < Date.parse(d.paired_until));
    if (!covered) return `device ${q.device_id} had no active pairing at ${q.observed_at}: pair it for that time, then release`;
    return null;
  }

  /** A verified patient of the (sandbox) registry, by identifier as operators type it. */
  private patient(system: string, value: string) {
    const [s, v] = identifier(system, value);
    const p = this.data.registry.find((x) => x.system === s && x.value === v);
    if (!p) throw fail('patient_not_found', `no patient with that identifier in ${s} is registered`);
    return p;
  }
}

/** The longest silence Rust allows, in minutes (pipeline-core's MAX_SILENCE_MINUTES). */
export const MAX_SILENCE_MINUTES = 60;

/** The mock's only way to make an error: typed with the generated ErrorCode, so it cannot invent one. */
function fail(code: ErrorCode, message: string): BackendError {
  return new BackendError(code, message);
}

/** Every Tauri command names its operator first; an empty name is refused (api::Actor::named). */
function actor(operator: string) {
  if (!operator.trim()) throw fail('invalid_input', 'an operator name is required for every action');
}

/** A reason for the audit trail: trimmed, required. */
function required(reason: string) {
  if (!reason.trim()) throw fail('invalid_input', 'give a reason: it is kept in the audit trail');
}

/** A patient identifier as operators type it: trimmed, both parts required. */
function identifier(system: string, value: string): [string, string] {
  const [s, v] = [system.trim(), value.trim()];
  if (!s || !v) throw fail('invalid_input', "give the identifier's system and value");
  return [s, v];
}

/** A pairing Rust can close: current and without an end of its own. */
const isOpen = (d: Device) => d.pairing_id !== null && d.paired_until === null;

/** A small random step; whole numbers (rates, SpO2) stay whole. */
function drift(v: number): number {
  const next = v + (Math.random() - 0.5) * 2;
  return Number.isInteger(v) ? Math.round(next) : Math.round(next * 10) / 10;
}

/** A small SVG line chart, standing in for the pipeline's plotters renderer. */
function demoChart(v: LiveValue, minutes: number): string {
  const w = 560, h = 180, n = 60;
  const pts = Array.from({ length: n }, (_, i) => {
    const y = v.value + Math.sin((i / n) * Math.PI * (minutes / 15)) * 3;
    return `${(i / (n - 1)) * (w - 40) + 30},${h / 2 - (y - v.value) * 12}`;
  }).join(' ');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" role="img" aria-label="${v.metric} over the last ${minutes} min">`
    + `<text x="30" y="16" font-size="12">${v.metric} (${v.unit}), last ${minutes} min</text>`
    + `<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${pts}"/></svg>`;
}
