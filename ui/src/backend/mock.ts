// An in-memory Backend: the browser demo (`npm run dev`) and the fixture for every view test.
// Mutations really change its state, the way the pipeline would, so tests can assert on what follows.
import { BackendError } from './errors';
import type { Backend } from './index';
import { demoData, patientLabel, type MockData } from './demo-data';
import type {
  Alarm, Board, ConnectionResult, Device, Flow, LiveValue, OutboxEntry, OutboxStatus, QuarantineItem,
  ReleaseOutcome, Settings, VerifiedPatient,
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
  failNext(method: keyof Backend, code: string, message: string) {
    this.failures.set(method, new BackendError(code, message));
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
      if (!v) throw new BackendError('unknown_series', `No readings from ${deviceId} for code ${mdcCode}.`);
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

  testConnection(target: 'ehr' | 'broker') {
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

  ackAlarm(id: number, operator: string, reason: string) {
    return this.reply('ackAlarm', [id, operator, reason], () => {
      const a = this.alarm(id);
      required(operator, reason);
      if (a.acked_at) throw new BackendError('already_acked', `Alarm ${id} was acknowledged by ${a.acked_by}.`);
      Object.assign(a, { acked_at: this.iso(), acked_by: operator, ack_reason: reason });
    });
  }

  silenceAlarm(id: number, operator: string, reason: string, minutes: number) {
    return this.reply('silenceAlarm', [id, operator, reason, minutes], () => {
      const a = this.alarm(id);
      required(operator, reason);
      if (![2, 5, 15].includes(minutes)) throw new BackendError('invalid_input', 'Silence for 2, 5 or 15 minutes.');
      Object.assign(a, { silenced_until: this.iso(minutes * 60), silenced_by: operator, silence_reason: reason });
    });
  }

  releaseQuarantine(id: number, operator: string, reason: string) {
    return this.reply('releaseQuarantine', [id, operator, reason], (): ReleaseOutcome => {
      const item = this.quarantined(id);
      required(operator, reason);
      const d = this.data.devices.find((x) => x.device_id === item.device_id);
      if (!d?.patient_label) {
        return { outcome: 'quarantined', detail: `Device ${item.device_id} is still not paired; the reading stays in quarantine.` };
      }
      this.data.quarantine = this.data.quarantine.filter((q) => q.id !== id);
      this.data.ingest.stored += 1;
      return { outcome: 'stored', detail: `Stored for ${d.patient_label} under the pairing since ${d.paired_since}.` };
    });
  }

  discardQuarantine(id: number, operator: string, reason: string) {
    return this.reply('discardQuarantine', [id, operator, reason], () => {
      this.quarantined(id);
      required(operator, reason);
      this.data.quarantine = this.data.quarantine.filter((q) => q.id !== id);
    });
  }

  registerDevice(deviceId: string, profileId: string, label: string, operator: string) {
    return this.reply('registerDevice', [deviceId, profileId, label, operator], () => {
      required(operator, deviceId);
      if (this.data.devices.some((d) => d.device_id === deviceId)) {
        throw new BackendError('device_exists', `Device ${deviceId} is already registered.`);
      }
      if (!this.data.profiles.includes(profileId)) throw new BackendError('unknown_profile', `No profile "${profileId}".`);
      this.data.devices.push({ device_id: deviceId, profile_id: profileId, label: label || null, pairing_id: null,
        patient_id: null, patient_label: null, paired_since: null });
    });
  }

  pairDevice(deviceId: string, system: string, value: string, from: string | null, until: string | null, operator: string) {
    return this.reply('pairDevice', [deviceId, system, value, from, until, operator], () => {
      required(operator);
      const d = this.device(deviceId);
      if (d.pairing_id !== null) {
        throw new BackendError('already_paired', `Device ${deviceId} is paired with ${d.patient_label}; unpair it first.`);
      }
      const p = this.patient(system, value);
      Object.assign(d, { pairing_id: this.nextPairing++, patient_id: p.patient_id, patient_label: patientLabel(p),
        paired_since: from ?? this.iso() });
    });
  }

  unpairDevice(deviceId: string, operator: string) {
    return this.reply('unpairDevice', [deviceId, operator], () => {
      required(operator);
      const d = this.device(deviceId);
      if (d.pairing_id === null) throw new BackendError('not_paired', `Device ${deviceId} is not paired.`);
      Object.assign(d, { pairing_id: null, patient_id: null, patient_label: null, paired_since: null });
    });
  }

  setConsent(system: string, value: string, flow: Flow, granted: boolean, operator: string) {
    return this.reply('setConsent', [system, value, flow, granted, operator], () => {
      required(operator);
      this.patient(system, value);
      this.consent.set(`${system}|${value}|${flow}`, granted);
    });
  }

  resend(id: number, operator: string) {
    return this.reply('resend', [id, operator], () => {
      required(operator);
      const e = this.data.outbox.find((x) => x.id === id);
      if (!e) throw new BackendError('not_found', `No outbox entry ${id}.`);
      if (e.status !== 'dead' && e.status !== 'held') {
        throw new BackendError('invalid_state', `Entry ${id} is ${e.status}; only dead or held entries are resent.`);
      }
      Object.assign(e, { status: 'pending', reason: null, attempts: 0 } satisfies Partial<OutboxEntry>);
    });
  }

  saveSettings(settings: Settings, operator: string) {
    return this.reply('saveSettings', [settings, operator], () => {
      required(operator);
      if (settings.ehr.kind === 'fhir' && !settings.ehr.base_url) {
        throw new BackendError('invalid_config', 'ehr.base_url: a FHIR EHR needs a base URL.');
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

  private alarm(id: number): Alarm {
    const a = this.data.alarms.find((x) => x.id === id);
    if (!a) throw new BackendError('not_found', `No alarm ${id}.`);
    return a;
  }

  private quarantined(id: number): QuarantineItem {
    const q = this.data.quarantine.find((x) => x.id === id);
    if (!q) throw new BackendError('not_found', `No quarantined reading ${id}.`);
    return q;
  }

  private device(id: string): Device {
    const d = this.data.devices.find((x) => x.device_id === id);
    if (!d) throw new BackendError('unknown_device', `Device ${id} is not registered.`);
    return d;
  }

  private patient(system: string, value: string) {
    const p = this.data.registry.find((x) => x.system === system && x.value === value);
    if (!p) throw new BackendError('patient_not_found', `No patient with identifier ${value} in the sandbox registry.`);
    return p;
  }
}

/** The pipeline refuses operator actions without a name or reason; so does the mock. */
function required(...fields: string[]) {
  if (fields.some((f) => !f.trim())) throw new BackendError('invalid_input', 'Operator and reason are required.');
}

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
