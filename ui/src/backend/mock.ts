// An in-memory Backend: the browser demo (`npm run dev`) and the fixture for every view test.
// Mutations really change its state, the way the pipeline would, so tests can assert on what follows.
import { BackendError } from './errors';
import type { Backend } from './index';
import { PROFILE_TIMING, demoData, patientLabel, type HeardDevice, type MockData } from './demo-data';
import type {
  Alarm, AlarmCounts, Board, ConnectionResult, ConnectionTarget, Device, DeviceState, ErrorCode, FleetDevice, Flow,
  GroupReleaseOutcome, HeldView, LiveValue, OutboxEntry, OutboxStatus, PairingView, PairRequest, QuarantineFilter,
  QuarantineCursor, QuarantineGroup, QuarantineItem, QuarantinePage, ReleaseOutcome, Role, SessionView, Settings, VerifiedPatient,
} from './types';

/** An account of the site, with its password in clear: the mock is for demos and tests only. */
export interface MockAccount { name: string; password: string; roles: Role[] }

/** The demo site's built-in account, signed in automatically. */
export const DEMO_ACCOUNT: MockAccount = { name: 'demo', password: 'demo', roles: ['admin'] };

export interface MockOptions extends Partial<MockData> {
  /** Push status and jittered live values every 2 s (for the browser demo; tests push by hand). */
  autoTick?: boolean;
  /** The mock's clock; tests may fix it. */
  now?: () => Date;
  /**
   * The site's accounts. Without them the mock is the demo site, signed in as DEMO_ACCOUNT; an empty
   * list is a site's first start, which needs its first administrator.
   */
  accounts?: MockAccount[];
  /** The account signed in at start; by default nobody (the demo account on the demo site). */
  signedIn?: string;
  /** Seconds without input after which the UI locks (0: never). */
  lockAfterSecs?: number;
  /** The session is an emergency (break-glass) administrator session. */
  breakGlass?: boolean;
}

/** One recorded backend call, for tests to assert that arguments (e.g. a reason) reached the backend. */
export interface MockCall { method: keyof Backend; args: unknown[] }

/** A row of Rust's pairings table: the mock keeps every pairing, as the rules need them all. */
interface MockPairing {
  id: number; device_id: string; patient_id: number; from: string; until: string | null; by: string; at: string;
}

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
  private readonly pairings: MockPairing[];
  private readonly accounts: MockAccount[];
  private readonly demo: boolean;
  private readonly lockAfterSecs: number;
  private account: MockAccount | null;
  private locked = false;
  private breakGlass: boolean;
  private failedSignIns = 0;
  /** Sign-ins are refused until then (ms), after too many failures. */
  private signInBlockedUntil = 0;

  constructor(opts: MockOptions = {}) {
    const { autoTick, now, accounts, signedIn, lockAfterSecs, breakGlass, ...overrides } = opts;
    this.now = now ?? (() => new Date());
    this.data = { ...demoData(this.now()), ...overrides };
    this.demo = accounts === undefined;
    this.accounts = accounts ? [...accounts] : [{ ...DEMO_ACCOUNT }];
    const first = signedIn ?? (this.demo ? DEMO_ACCOUNT.name : null);
    this.account = this.accounts.find((a) => a.name === first) ?? null;
    this.lockAfterSecs = lockAfterSecs ?? DEFAULT_LOCK_AFTER_SECS;
    this.breakGlass = breakGlass ?? false;
    this.pairings = [
      ...this.data.pastPairings.map((p, i) => ({ ...p, id: 90 + i, at: p.from })),
      ...this.data.devices.flatMap((d) => (d.pairing_id === null ? [] : [{
        id: d.pairing_id, device_id: d.device_id, patient_id: d.patient_id!, from: d.paired_since!, until: d.paired_until,
        by: 'K. Osei', at: d.paired_since!,
      }])),
    ];
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

  // ---- the session ---------------------------------------------------------------------------------

  session() { return this.reply('session', [], () => this.view()); }

  signIn(name: string, password: string) {
    return this.reply('signIn', [name, password], () => {
      this.account = this.checkPassword(this.accounts.find((a) => a.name === name.trim()), password);
      this.locked = false;
      this.breakGlass = false;
      return this.view();
    });
  }

  createFirstAdmin(name: string, password: string) {
    return this.reply('createFirstAdmin', [name, password], () => {
      if (this.accounts.length > 0) throw fail('refused', 'an administrator exists already: sign in instead');
      if (!name.trim()) throw fail('invalid_input', 'give the administrator a name');
      if (password.length < MIN_PASSWORD_CHARS) {
        throw fail('invalid_input', `the password needs at least ${MIN_PASSWORD_CHARS} characters`);
      }
      this.account = { name: name.trim(), password, roles: ['admin'] };
      this.accounts.push(this.account);
      return this.view();
    });
  }

  lock() {
    return this.reply('lock', [], () => {
      if (!this.account) throw fail('unauthenticated', 'nobody is signed in');
      this.locked = true;
      return this.view();
    });
  }

  unlock(password: string) {
    return this.reply('unlock', [password], () => {
      if (!this.account) throw fail('unauthenticated', 'nobody is signed in: sign in');
      this.checkPassword(this.account, password);
      this.locked = false;
      return this.view();
    });
  }

  signOut() {
    return this.reply('signOut', [], () => {
      this.account = null;
      this.locked = false;
      this.breakGlass = false;
      return this.view();
    });
  }

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

  bedChart(patientId: number, minutes: number) {
    return this.reply('bedChart', [patientId, minutes], () => {
      const series = this.data.live.filter((v) => v.patient_id === patientId).sort((a, b) => a.order - b.order);
      if (series.length === 0) throw fail('unknown_series', `No readings for patient ${patientId}.`);
      return demoBedChart(series, minutes, this.now());
    });
  }

  alarms(activeOnly: boolean) {
    return this.reply('alarms', [activeOnly], () =>
      this.data.alarms.filter((a) => !activeOnly || a.cleared_at === null)
        .map((a) => ({ ...a, silence_minutes_left: silenceLeft(a) })));
  }

  /** The newest 500, as Rust's compatibility query answers. */
  quarantine() { return this.reply('quarantine', [], () => newestFirst(this.data.quarantine).slice(0, 500)); }

  quarantineGroups() {
    return this.reply('quarantineGroups', [], (): QuarantineGroup[] => {
      const groups = new Map<string, QuarantineGroup>();
      // Oldest first, so the last reading seen of a group is its newest (its detail and origin).
      for (const q of newestFirst(this.data.quarantine).reverse()) {
        const key = `${q.device_id}|${q.reason}`;
        const g = groups.get(key);
        if (g) Object.assign(g, { count: g.count + 1, last_observed: q.observed_at, detail: q.detail, origin: q.origin });
        else {
          const device = this.data.devices.find((d) => d.device_id === q.device_id);
          const heard = this.data.heard.find((h) => h.device_id === q.device_id);
          groups.set(key, { device_id: q.device_id, reason: q.reason, detail: q.detail, origin: q.origin, count: 1,
            first_observed: q.observed_at, last_observed: q.observed_at, registered: device !== undefined,
            profile_id: device?.profile_id ?? heard?.suggested_profile ?? null });
        }
      }
      return [...groups.values()].sort((a, b) => b.count - a.count);
    });
  }

  quarantinePage(filter: QuarantineFilter) {
    return this.reply('quarantinePage', [filter], (): QuarantinePage => {
      const { device_id, reason, older_than } = filter;
      // Rust clamps a page to 1 to 500 rows.
      const limit = Math.min(500, Math.max(1, filter.limit));
      const rows = newestFirst(this.data.quarantine)
        .filter((q) => (device_id === null || q.device_id === device_id) && (reason === null || q.reason === reason));
      const entries = rows.filter((q) => older_than === null || newerFirst(older_than, q) < 0).slice(0, limit);
      // The page holds the rows just older than the cursor: every row at or after it is newer.
      const newer = older_than ? rows.filter((q) => newerFirst(q, older_than) <= 0).length : 0;
      return { entries, total: rows.length, newer };
    });
  }

  held() { return this.reply('held', [], () => this.data.held); }

  rejected() {
    return this.reply('rejected', [], () => [...this.data.rejected].sort((a, b) => b.received_at.localeCompare(a.received_at)));
  }

  /** Every registered device and every unknown sender, with its state from how long it has been silent. */
  fleet() {
    return this.reply('fleet', [], (): FleetDevice[] => {
      const quarantined = new Map<string, number>();
      for (const q of this.data.quarantine) quarantined.set(q.device_id, (quarantined.get(q.device_id) ?? 0) + 1);
      const heard = new Map(this.data.heard.map((h) => [h.device_id, h]));
      const registered = new Set(this.data.devices.map((d) => d.device_id));
      const known = this.data.devices.map((d) => this.fleetDevice(d.device_id, d, heard.get(d.device_id), quarantined));
      const unknown = this.data.heard.filter((h) => !registered.has(h.device_id))
        .map((h) => this.fleetDevice(h.device_id, null, h, quarantined));
      return [...known, ...unknown];
    });
  }

  pairingHistory(deviceId: string) {
    return this.reply('pairingHistory', [deviceId], (): PairingView[] => this.pairings
      .filter((p) => p.device_id === deviceId.trim())
      .sort((a, b) => instant(b.from) - instant(a.from))
      .map((p) => {
        const patient = this.data.registry.find((r) => r.patient_id === p.patient_id);
        return { id: p.id, patient_id: p.patient_id, patient_label: patient ? patientLabel(patient) : null,
          valid_from: p.from, valid_to: p.until, created_by: p.by, created_at: p.at };
      }));
  }

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
          ? { ok: true, message: `Embedded ingest endpoint listening on ${broker.listen ?? '127.0.0.1:1883'}` }
          : { ok: false, message: `Connection refused by ${broker.url ?? '(no URL)'}` };
      }
      if (ehr.kind === 'sandbox') return { ok: true, message: 'Sandbox sink: local store writable' };
      const where = ehr.kind === 'fhir' ? ehr.base_url : ehr.mllp_addr;
      return { ok: false, message: `No answer from ${where ?? '(no address)'} within 10 s` };
    });
  }

  // ---- commands, in the signed-in account's name -----------------------------------------------------
  // Each checks what Rust checks, in the same order (the session and its roles first, in `reply`), and
  // fails with the code Rust sends.

  ackAlarm(id: number, reason: string) {
    return this.reply('ackAlarm', [id, reason], () => {
      required(reason);
      const a = this.data.alarms.find((x) => x.id === id);
      if (!a || a.acked_at) throw fail('refused', `alarm ${id} does not exist or is already acknowledged`);
      Object.assign(a, { acked_at: this.iso(), acked_by: this.signedIn(), ack_reason: reason.trim() });
    });
  }

  /** All or nothing, as Rust: every id must be an active infrastructure alarm not yet acknowledged. */
  ackAlarms(ids: number[], reason: string) {
    return this.reply('ackAlarms', [ids, reason], () => {
      required(reason);
      const alarms = ids.map((id) => {
        const a = this.data.alarms.find((x) => x.id === id);
        if (!a || a.cleared_at) throw fail('not_found', `alarm ${id} is not active (cleared, or no such alarm)`);
        if (!a.bulk_ack) {
          throw fail('refused', `alarm ${id} (${a.rule_id}) is about a patient: acknowledge it on its own, at its bed`);
        }
        if (a.acked_at) throw fail('refused', `alarm ${id} does not exist or is already acknowledged`);
        return a;
      });
      for (const a of alarms) Object.assign(a, { acked_at: this.iso(), acked_by: this.signedIn(), ack_reason: reason.trim() });
      return alarms.length;
    });
  }

  silenceAlarm(id: number, reason: string, minutes: number) {
    return this.reply('silenceAlarm', [id, reason, minutes], () => {
      required(reason);
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_SILENCE_MINUTES) {
        throw fail('invalid_input', `silence for 1 to ${MAX_SILENCE_MINUTES} minutes, not ${minutes}`);
      }
      const a = this.data.alarms.find((x) => x.id === id);
      if (!a || a.cleared_at) throw fail('refused', `alarm ${id} does not exist or has already cleared`);
      // The site's limits per alarm, as the facade keeps them (4 silences, 120 minutes in all).
      if (a.silence_count >= MAX_SILENCES) {
        throw fail('refused', `this alarm has been silenced ${a.silence_count} times, the most allowed (${MAX_SILENCES}): it escalates until acknowledged`);
      }
      if (a.silenced_minutes + minutes > MAX_SILENCE_TOTAL_MINUTES) {
        throw fail('refused', `this alarm has been silenced for ${a.silenced_minutes} of the ${MAX_SILENCE_TOTAL_MINUTES} minutes allowed in all`);
      }
      Object.assign(a, {
        silenced_until: this.iso(minutes * 60), silenced_by: this.signedIn(), silence_reason: reason.trim(),
        silence_count: a.silence_count + 1, silenced_minutes: a.silenced_minutes + minutes,
      });
    });
  }

  releaseQuarantine(id: number, reason: string) {
    return this.reply('releaseQuarantine', [id, reason], (): ReleaseOutcome => {
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

  discardGroup(deviceId: string, reasonCode: string, why: string) {
    return this.reply('discardGroup', [deviceId, reasonCode, why], () => {
      required(why);
      const before = this.data.quarantine.length;
      this.data.quarantine = this.data.quarantine.filter((q) => q.device_id !== deviceId || q.reason !== reasonCode);
      return before - this.data.quarantine.length;
    });
  }

  /**
   * Pairs, then releases every quarantined reading of the device that the new pairing covers: stored,
   * or held when the patient has no store consent on record.
   */
  pairAndRelease(request: PairRequest, reason: string) {
    return this.reply('pairAndRelease', [request, reason], (): GroupReleaseOutcome => {
      required(reason);
      const pairing = this.pair(request);
      const covered = (q: QuarantineItem) => q.device_id === pairing.device_id && covers(pairing, Date.parse(q.observed_at));
      const inside = this.data.quarantine.filter(covered);
      this.data.quarantine = this.data.quarantine.filter((q) => !covered(q));
      const patient = this.data.registry.find((r) => r.patient_id === pairing.patient_id)!;
      const label = patientLabel(patient);
      let held = 0;
      if (this.storeConsented(patient)) {
        this.data.ingest.stored += inside.length;
      } else {
        held = inside.length;
        this.data.held.push(...inside.map((q): HeldView => ({ device_id: q.device_id, patient_id: patient.patient_id,
          patient_label: label, mdc_code: q.mdc_code, metric: q.metric, value: q.value, unit: q.unit, observed_at: q.observed_at, flow: 'store',
          reason: 'no store consent recorded for this patient (fail-closed)', payload: q.payload })));
      }
      const stored = inside.length - held;
      return { stored, held, duplicate: 0, still_quarantined: 0,
        detail: `paired from ${secs(pairing.from)}; of ${inside.length} quarantined readings inside the pairing, ${stored} stored `
          + `under the patient, ${held} held for consent, 0 already stored, 0 still quarantined` };
    });
  }

  discardQuarantine(id: number, reason: string) {
    return this.reply('discardQuarantine', [id, reason], () => {
      required(reason);
      if (!this.data.quarantine.some((q) => q.id === id)) {
        throw fail('refused', `quarantined reading ${id} does not exist or is already resolved`);
      }
      this.data.quarantine = this.data.quarantine.filter((q) => q.id !== id);
    });
  }

  /** Registers a device, or relabels it (and changes its profile) when it exists: an upsert, as in Rust. */
  registerDevice(deviceId: string, profileId: string, label: string) {
    return this.reply('registerDevice', [deviceId, profileId, label], () => {
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
        patient_id: null, patient_label: null, paired_since: null, paired_until: null, demo: false });
    });
  }

  /**
   * Pairs by Rust's rules: a start more than a minute ago needs a reason; a pairing that meets another
   * of the device is refused, unless it replaces the open pairing of the patient `replacing` names,
   * which then ends where the new one starts.
   */
  pairDevice(request: PairRequest) {
    return this.reply('pairDevice', [request], () => { this.pair(request); });
  }

  /** Rust's pairing checks, then the new pairing. */
  private pair(request: PairRequest): MockPairing {
    identifier(request.system, request.value);
    const from = request.from ?? this.iso();
    const { until } = request;
    if (until !== null && Date.parse(until) <= Date.parse(from)) {
      throw fail('invalid_input', 'the pairing must end after it starts');
    }
    if (Date.parse(from) < this.now().getTime() - BACKDATING_TOLERANCE_SECS * 1000 && !request.reason?.trim()) {
      throw fail('invalid_input', `the pairing would start at ${secs(from)}, in the past: give the reason for `
        + 'back-dating it, which the audit log keeps with it');
    }
    const p = this.patient(request.system, request.value);
    const id = request.device_id.trim();
    const d = this.data.devices.find((x) => x.device_id === id);
    if (!d) throw fail('refused', `device ${id} is not registered`);
    const mine = this.pairings.filter((x) => x.device_id === id);
    const replaced = checkPairing(id, mine, p.patient_id, from, until, request.replacing);
    if (replaced) replaced.until = from;
    const pairing = { id: this.nextPairing++, device_id: id, patient_id: p.patient_id, from, until, by: this.signedIn(), at: this.iso() };
    this.pairings.push(pairing);
    this.show(d);
    return pairing;
  }

  /** Ends the device's open pairing now; a pairing made for a period has no open end to close. */
  unpairDevice(deviceId: string) {
    return this.reply('unpairDevice', [deviceId], () => {
      const id = deviceId.trim();
      const open = this.pairings.find((x) => x.device_id === id && x.until === null);
      if (!open) throw fail('refused', `device ${id} has no open pairing`);
      open.until = new Date(Math.max(this.now().getTime(), Date.parse(open.from))).toISOString();
      const d = this.data.devices.find((x) => x.device_id === id);
      if (d) this.show(d);
    });
  }

  setConsent(system: string, value: string, flow: Flow, granted: boolean) {
    return this.reply('setConsent', [system, value, flow, granted], () => {
      const p = this.patient(system, value);
      this.consent.set(`${p.system}|${p.value}|${flow}`, granted);
    });
  }

  releaseHeld(system: string, value: string, reason: string) {
    return this.reply('releaseHeld', [system, value, reason], () => {
      required(reason);
      const p = this.patient(system, value);
      if (this.consent.get(`${p.system}|${p.value}|store`) !== true) {
        throw fail('refused', `patient ${p.value} has no recorded consent for store: record it before releasing held readings`);
      }
      const moved = this.data.held.filter((h) => h.patient_id === p.patient_id).length;
      this.data.held = this.data.held.filter((h) => h.patient_id !== p.patient_id);
      this.data.ingest.stored += moved;
      return moved;
    });
  }

  resend(id: number) {
    return this.reply('resend', [id], () => {
      const e = this.data.outbox.find((x) => x.id === id);
      if (!e) throw fail('not_found', `outbox ${id} does not exist`);
      if (e.status !== 'dead' && e.status !== 'held') throw fail('refused', `outbox event ${id} is not dead or held`);
      Object.assign(e, { status: 'pending', reason: null, attempts: 0 } satisfies Partial<OutboxEntry>);
    });
  }

  saveSettings(settings: Settings, reason: string) {
    return this.reply('saveSettings', [settings, reason], () => {
      required(reason);
      if (settings.ehr.kind === 'fhir' && !settings.ehr.base_url) {
        throw fail('invalid_config', 'ehr.base_url: a FHIR EHR needs a base URL.');
      }
      this.data.settings = wire(settings);
    });
  }

  // ---- internals -----------------------------------------------------------------------------------

  /**
   * Answer asynchronously, as IPC does, after recording the call, applying an injected failure and
   * checking the session and its roles.
   */
  private async reply<T>(method: keyof Backend, args: unknown[], fn: () => T): Promise<T> {
    this.calls.push({ method, args: wire(args) });
    await Promise.resolve();
    const failure = this.failures.get(method);
    if (failure) {
      this.failures.delete(method);
      throw failure;
    }
    this.authorize(method);
    return wire(fn());
  }

  /** Rust's checks before any command: an unlocked session, then a role that allows the action. */
  private authorize(method: keyof Backend) {
    if (WITHOUT_SESSION.includes(method)) return;
    if (!this.account) throw fail('unauthenticated', 'nobody is signed in: sign in to go on');
    if (this.locked) throw fail('unauthenticated', `the console is locked: ${this.account.name} must unlock it to go on`);
    const need = NEEDS_ROLE[method];
    const { name, roles } = this.account;
    if (need && !roles.includes(need) && !roles.includes('admin')) {
      throw fail('forbidden', `this needs the ${need} role; ${name} has ${roles.join(', ') || 'no role'}`);
    }
  }

  /** The name of the account acting; `authorize` made sure there is one. */
  private signedIn(): string {
    return this.account!.name;
  }

  /** The account when the password is its own; after too many failures it refuses for a while, as Rust does. */
  private checkPassword(account: MockAccount | undefined, password: string): MockAccount {
    const wait = Math.ceil((this.signInBlockedUntil - this.now().getTime()) / 1000);
    if (wait > 0) throw fail('sign_in_failed', `too many failed attempts: wait ${wait} s, then try again`);
    if (!account || account.password !== password) {
      if (++this.failedSignIns >= MAX_FAILED_SIGN_INS) {
        this.failedSignIns = 0;
        this.signInBlockedUntil = this.now().getTime() + SIGN_IN_BLOCK_SECS * 1000;
      }
      throw fail('sign_in_failed', 'wrong name or password');
    }
    this.failedSignIns = 0;
    return account;
  }

  private view(): SessionView {
    return {
      account: this.account?.name ?? null, roles: this.account?.roles ?? [], demo: this.demo, locked: this.locked,
      needs_first_admin: this.accounts.length === 0, lock_after_secs: this.lockAfterSecs, break_glass: this.breakGlass,
    };
  }

  private snapshot(): Board {
    const d = this.data;
    const counts = new Map<string, number>(OUTBOX_STATUSES.map((s) => [s, 0]));
    for (const e of d.outbox) counts.set(e.status, (counts.get(e.status) ?? 0) + 1);
    return { at: this.iso(), components: d.components, modes: d.modes, ingest_queue: d.ingest_queue,
      ingest_unstored: d.ingest_unstored,
      outbox: [...counts.entries()], ingest: d.ingest, rates: d.rates, device_clocks: [], alarms: unacknowledged(d.alarms) };
  }

  /** Demo heartbeat: components beat, live devices are heard, values drift a little and get younger. */
  private tick() {
    const at = this.iso();
    for (const c of this.data.components) if (c.state === 'up') c.last_beat = at;
    for (const h of this.data.heard.filter((x) => x.alive)) {
      h.last_heard = at;
      h.messages += Math.round(h.messages_per_min / 30);
    }
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
   * Why a quarantined reading still cannot be attributed, as Rust's identify says it; null when a
   * pairing of the device covers the reading's time.
   */
  private unattributable(q: QuarantineItem): string | null {
    if (!this.data.devices.some((x) => x.device_id === q.device_id)) {
      return `device ${q.device_id} is not registered: register and pair it, then release`;
    }
    const t = Date.parse(q.observed_at);
    if (!this.pairings.some((p) => p.device_id === q.device_id && covers(p, t))) {
      return `device ${q.device_id} had no active pairing when this was measured: pair it for that time, then release`;
    }
    return null;
  }

  /** A device as the fleet lists it: the registry's facts (`device`, null for an unknown sender) and what was heard. */
  private fleetDevice(id: string, device: Device | null, heard: HeardDevice | undefined,
    quarantined: Map<string, number>): FleetDevice {
    const profile = device?.profile_id ?? heard?.suggested_profile ?? null;
    // A profile without timing: the default interval of 5 s, offline after 10 of them.
    const { interval, offline } = PROFILE_TIMING[profile ?? ''] ?? { interval: 5, offline: 50 };
    const silent = heard ? Math.max(0, (this.now().getTime() - Date.parse(heard.last_heard)) / 1000) : null;
    return {
      device_id: id, state: deviceState(device !== null, silent, 3 * interval, offline), registered: device !== null,
      label: device?.label ?? null, profile_id: profile, origin: heard?.origin ?? null, last_heard: heard?.last_heard ?? null,
      silent_secs: silent, expected_interval_secs: interval, stale_after_secs: 3 * interval, offline_after_secs: offline,
      messages_per_min: heard?.messages_per_min ?? 0, messages: heard?.messages ?? 0, latest_validity: heard?.latest_validity ?? null,
      battery_pct: heard?.battery_pct ?? null, firmware: heard?.firmware ?? null, clock_offset_secs: heard?.clock_offset_secs ?? null,
      patient_id: device?.patient_id ?? null, patient_label: device?.patient_label ?? null, paired_since: device?.paired_since ?? null,
      quarantined: quarantined.get(id) ?? 0, demo: device?.demo ?? false,
    };
  }

  /** Consent as recorded; without a record, the demo's patients have it but for those in `noStoreConsent`. */
  private storeConsented(p: { patient_id: number; system: string; value: string }): boolean {
    return this.consent.get(`${p.system}|${p.value}|store`) ?? !this.data.noStoreConsent.includes(p.patient_id);
  }

  /** Shows on the device the pairing that covers now, as Rust's device list does. */
  private show(d: Device) {
    const p = this.pairings.find((x) => x.device_id === d.device_id && covers(x, this.now().getTime()));
    const patient = p && this.data.registry.find((r) => r.patient_id === p.patient_id);
    Object.assign(d, {
      pairing_id: p?.id ?? null, patient_id: p?.patient_id ?? null, patient_label: patient ? patientLabel(patient) : null,
      paired_since: p?.from ?? null, paired_until: p?.until ?? null,
    } satisfies Partial<Device>);
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
/** Silences of one alarm at most, and minutes in all ([alerts] max_silences, max_silence_minutes_total). */
const MAX_SILENCES = 4;
const MAX_SILENCE_TOTAL_MINUTES = 120;

/** The shortest password Rust accepts for a new account. */
export const MIN_PASSWORD_CHARS = 12;

/** Failed sign-ins (or unlocks) in a row after which Rust refuses them for SIGN_IN_BLOCK_SECS. */
const MAX_FAILED_SIGN_INS = 5;
const SIGN_IN_BLOCK_SECS = 60;

/** The idle lock when the test or demo does not choose one. */
const DEFAULT_LOCK_AFTER_SECS = 300;

/** The calls that need no unlocked session: the session's own, and the status board the lock screen shows. */
const WITHOUT_SESSION: (keyof Backend)[] = ['session', 'signIn', 'createFirstAdmin', 'lock', 'unlock', 'signOut', 'board'];

/** The role each action needs (admin may do everything); reading needs only a session. */
const NEEDS_ROLE: Partial<Record<keyof Backend, Role>> = {
  ackAlarm: 'clinician', ackAlarms: 'clinician', silenceAlarm: 'clinician', setConsent: 'clinician',
  registerDevice: 'biomed', pairDevice: 'biomed', unpairDevice: 'biomed', releaseQuarantine: 'biomed',
  discardQuarantine: 'biomed', pairAndRelease: 'biomed', discardGroup: 'biomed', releaseHeld: 'biomed', resend: 'biomed',
  saveSettings: 'admin',
};

/** The mock's only way to make an error: typed with the generated ErrorCode, so it cannot invent one. */
function fail(code: ErrorCode, message: string): BackendError {
  return new BackendError(code, message);
}

/** Active alarms nobody has acknowledged yet, by priority (silenced ones too: they still need an owner). */
/** As the facade says it: no silence where it would change nothing, or past the alarm's limits. */
function silenceLeft(a: Alarm): number {
  if (a.acked_at || a.cleared_at || a.silence_count >= MAX_SILENCES) return 0;
  return Math.min(MAX_SILENCE_MINUTES, MAX_SILENCE_TOTAL_MINUTES - a.silenced_minutes);
}

function unacknowledged(alarms: Alarm[]): AlarmCounts {
  const counts: AlarmCounts = { high: 0, medium: 0, low: 0, technical: 0, acknowledged: 0 };
  for (const a of alarms.filter((x) => x.cleared_at === null)) {
    if (a.acked_at !== null) {
      counts.acknowledged += 1;
      continue;
    }
    counts[a.priority] += 1;
    if (a.kind === 'technical') counts.technical += 1;
  }
  return counts;
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

/** How far before now a pairing may start without a reason (pipeline-core's BACKDATING_TOLERANCE). */
export const BACKDATING_TOLERANCE_SECS = 60;

/** An instant as Rust words it in messages: RFC 3339 to the second. */
const secs = (iso: string) => new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** An instant in ms; no end is never. */
const instant = (iso: string | null) => (iso === null ? Infinity : Date.parse(iso));

/** Whether a pairing covers the instant `t` (ms). */
const covers = (p: MockPairing, t: number) => instant(p.from) <= t && t < instant(p.until);

/** A pairing as Rust's refusals name it. */
const span = (p: MockPairing) =>
  (p.until === null ? `pairing ${p.id}, since ${secs(p.from)}` : `pairing ${p.id}, from ${secs(p.from)} until ${secs(p.until)}`);

/**
 * Rust's NewPairing::check, with its words: the open pairing a confirmed replacement ends, or a refusal
 * naming the pairing in the way.
 */
function checkPairing(deviceId: string, existing: MockPairing[], patientId: number, from: string, until: string | null,
  replacing: number | null): MockPairing | null {
  const overlapping = existing
    .filter((p) => Math.max(instant(from), instant(p.from)) < Math.min(instant(until), instant(p.until)))
    .sort((a, b) => instant(a.from) - instant(b.from));
  let replaced: MockPairing | null = null;
  for (const p of overlapping) {
    const them = `patient ${p.patient_id} (${span(p)})`;
    if (p.patient_id === patientId) {
      throw fail('refused', `device ${deviceId} is already paired with ${them}: unpair it first, or choose a period `
        + 'that does not overlap it');
    }
    if (p.until !== null || instant(p.from) > instant(from)) {
      throw fail('refused', `device ${deviceId} is paired with patient ${p.patient_id} over part of that period `
        + `(${span(p)}): a device is paired with one patient at a time, so choose a period that does not overlap it`);
    }
    if (replacing === null) {
      throw fail('refused', `device ${deviceId} is already paired with ${them}: unpair it first, or confirm the `
        + `replacement naming both patients (patient ${p.patient_id} replaced by patient ${patientId})`);
    }
    if (replacing !== p.patient_id) {
      throw fail('refused', `device ${deviceId} is paired with ${them}, not with patient ${replacing} named as `
        + 'replaced: nothing was changed; check which device this is and whom it is on');
    }
    replaced = p;
  }
  if (replacing !== null && !replaced) {
    throw fail('refused', `device ${deviceId} has no open pairing with patient ${replacing} to replace: nothing was `
      + 'changed; check which device this is, or pair it without confirming a replacement');
  }
  return replaced;
}

/** Rust's order of quarantined readings: newest observed first. */
/** Rust's order of quarantined rows: newest observed first, then the higher store key. */
function newerFirst(a: QuarantineCursor, b: QuarantineCursor): number {
  return b.observed_at.localeCompare(a.observed_at) || b.id - a.id;
}

function newestFirst(rows: QuarantineItem[]): QuarantineItem[] {
  return [...rows].sort(newerFirst);
}

/** How a device stands, by the rules the fleet view documents. */
function deviceState(registered: boolean, silent: number | null, staleAfter: number, offlineAfter: number): DeviceState {
  if (!registered) return 'unknown';
  if (silent === null) return 'never_seen';
  if (silent > offlineAfter) return 'offline';
  return silent > staleAfter ? 'stale' : 'online';
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

/** Every parameter of one patient in its own band, on one time axis in local clock time with the zone. */
function demoBedChart(series: LiveValue[], minutes: number, now: Date): string {
  const w = 760, band = 70, top = 24, n = 60;
  const h = top + band * series.length + 24;
  const clock = new Intl.DateTimeFormat('en-US', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' });
  const bands = series.map((v, i) => {
    const y0 = top + i * band;
    const pts = Array.from({ length: n }, (_, k) =>
      `${90 + (k / (n - 1)) * (w - 110)},${y0 + band / 2 - Math.sin((k / n) * Math.PI * (minutes / 15) + i) * (band / 4)}`).join(' ');
    return `<text x="8" y="${y0 + band / 2}" font-size="12">${v.metric}</text>`
      + `<line x1="90" x2="${w - 20}" y1="${y0 + band}" y2="${y0 + band}" stroke="#d5d9e0"/>`
      + `<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${pts}"/>`;
  }).join('');
  const from = clock.format(new Date(now.getTime() - minutes * 60_000));
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" role="img" aria-label="Every parameter over the last ${minutes} min">`
    + `<text x="90" y="16" font-size="13">${series[0]!.patient_label ?? 'Patient'}, last ${minutes} min</text>${bands}`
    + `<text x="90" y="${h - 6}" font-size="12">${from}</text><text x="${w - 20}" y="${h - 6}" font-size="12" text-anchor="end">now</text></svg>`;
}
