// Made-up demo data for the mock backend (no real person). Its first beds mirror fixtures/demo/registry.toml
// so the browser demo and the real demo show the same ward (three paired patients, one spare monitor
// MX-00A1 that was never paired); around them a ward of 30 devices for the fleet view, with one device
// offline, one stale, two never seen and one unregistered sender.
import type {
  Alarm, ComponentHealth, DegradationMode, Device, FleetDevice, HeldView, IngestTally, LiveValue, OutboxEntry,
  PageDelivery, QuarantineItem, Rates, RejectedEntry, Settings, VerifiedPatient,
} from './types';

export const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5.99999.2';

/** MDC codes used by the demo (ISO/IEEE 11073-10101). */
export const MDC = {
  heartRate: 147842, pulseRate: 149530, spo2: 150456, nibpSys: 150021, nibpDia: 150022, respRate: 151562,
  temp: 150364,
} as const;

/** A patient known to the (sandbox) registry, with the internal id the pipeline gives it. */
export interface RegistryPatient extends VerifiedPatient { patient_id: number }

/**
 * What the pipeline has heard of one device (registered or not): the facts the fleet view shows
 * besides the registry's. `alive` devices keep sending in the browser demo; the others fall silent.
 */
export interface HeardDevice extends Pick<FleetDevice, 'device_id' | 'origin' | 'messages_per_min' | 'messages'
  | 'latest_validity' | 'battery_pct' | 'firmware' | 'clock_offset_secs'> {
  last_heard: string;
  alive: boolean;
  /** The profile its topic suggests (used for an unknown sender). */
  suggested_profile: string;
}

/** A pairing that has ended, for the devices' pairing history. */
export interface PastPairing { device_id: string; patient_id: number; from: string; until: string; by: string }

/** How often each demo profile sends, and after how long without a payload its device is offline. */
export const PROFILE_TIMING: Record<string, { interval: number; offline: number }> = {
  // The monitors and oximeters are under the device-offline (no-data) rule of 60 s ...
  'medi-mx700': { interval: 5, offline: 60 },
  'acme-ox100': { interval: 5, offline: 60 },
  // ... the wearables upload in batches and are offline after 10 of their intervals.
  'vitaband-2': { interval: 15, offline: 150 },
};

export interface MockData {
  components: ComponentHealth[];
  modes: DegradationMode[];
  ingest_queue: number;
  ingest_unstored: number;
  ingest: IngestTally;
  rates: Rates;
  live: LiveValue[];
  alarms: Alarm[];
  quarantine: QuarantineItem[];
  devices: Device[];
  heard: HeardDevice[];
  pastPairings: PastPairing[];
  held: HeldView[];
  /** Patients (store keys) with no store consent on record: their released readings are held. */
  noStoreConsent: number[];
  rejected: RejectedEntry[];
  profiles: string[];
  registry: RegistryPatient[];
  outbox: OutboxEntry[];
  settings: Settings;
}

export const EHR_SYNC_PAUSED: DegradationMode = {
  id: 'ehr_sync_paused', title: 'EHR sync paused', severity: 'warning', component: 'ehr',
  what_is_off: 'Vital signs and reports are not reaching the patient chart in the EHR right now.',
  what_still_works: 'Device monitoring, this console and local storage go on. Every event is kept, in order, and sent automatically when the EHR answers again; nothing is lost.',
  what_to_do: 'Where your policy requires it, chart critical values by hand. Do not re-enter values that Vigil will send later without checking the chart first.',
  whom_to_call: 'Clinical engineering on call, and the EHR interface team.',
  alarm_priority: 'low',
};

function patient(patient_id: number, value: string, display: string, birth_date: string): RegistryPatient {
  return { patient_id, system: MRN_SYSTEM, value, display, birth_date, fhir_id: null, verified_by: 'sandbox registry' };
}

export function patientLabel(p: VerifiedPatient): string {
  return `${p.display} (${p.value})`;
}


/** The demo ward's further patients (store keys 5 on), and one discharged yesterday (15). */
const WARD_PATIENTS = ['Echo', 'Foxtrot', 'Golf', 'Hotel', 'India', 'Juliett', 'Kilo', 'Lima', 'Mike', 'November', 'Oscar'];

/** The last level of each profile's topic, and the firmware its devices report. */
const KIND: Record<string, string> = { 'medi-mx700': 'monitor', 'acme-ox100': 'oximeter', 'vitaband-2': 'wearable' };
const FIRMWARE: Record<string, string> = { 'medi-mx700': '4.2.1', 'acme-ox100': '1.9.0', 'vitaband-2': '2.0.7' };

/** One observation of a demo payload: the code and unit the device sends, and what Vigil makes of them. */
interface DemoObs { mdc: number; metric: string; code: string; value: number; sent: string; ucum: string }

export function demoData(now: Date): MockData {
  const ago = (secs: number) => new Date(now.getTime() - secs * 1000).toISOString();
  const registry = [
    patient(1, 'MRN-100000', 'Demo Patient Alpha', '1948-03-12'),
    patient(2, 'MRN-100001', 'Demo Patient Bravo', '1961-07-30'),
    patient(3, 'MRN-100003', 'Demo Patient Delta', '1979-11-02'),
    patient(4, 'MRN-100002', 'Demo Patient Charlie', '1990-01-15'),
    ...WARD_PATIENTS.map((name, i) => patient(5 + i, `MRN-1000${String(4 + i).padStart(2, '0')}`, `Demo Patient ${name}`,
      `19${50 + i * 4}-0${1 + (i % 9)}-1${i % 10}`)),
  ];
  const [alpha, bravo, delta] = registry.map(patientLabel);
  // The pipeline's clinical order and decimals of each metric (pipeline-core's code table).
  const shape: Record<number, { order: number; decimals: number }> = {
    [MDC.heartRate]: { order: 0, decimals: 0 }, [MDC.pulseRate]: { order: 1, decimals: 0 },
    [MDC.spo2]: { order: 2, decimals: 0 }, [MDC.respRate]: { order: 3, decimals: 0 },
    [MDC.temp]: { order: 4, decimals: 1 }, [MDC.nibpSys]: { order: 5, decimals: 0 },
    [MDC.nibpDia]: { order: 6, decimals: 0 },
  };
  const live = (device_id: string, device_label: string, patient_id: number, patient_label: string,
    mdc_code: number, metric: string, value: number, unit: string, age: number, stale = false,
    validity: LiveValue['validity'] = 'demo'): LiveValue => ({
    device_id, device_label, patient_id, patient_label, mdc_code, metric, ...shape[mdc_code], value, unit,
    observed_at: ago(age), age_secs: age, stale, validity,
  });
  const beat = (name: string, state: ComponentHealth['state'] = 'up', reason = '') =>
    ({ name, state, reason, last_beat: ago(state === 'up' ? 1 : 95) });
  const paired = (device_id: string, label: string, profile_id: string, pairing_id: number, p: number, since: number): Device =>
    ({ device_id, label, profile_id, pairing_id, patient_id: p, patient_label: patientLabel(registry[p - 1]!), paired_since: ago(since),
      paired_until: null, demo: false });
  const unpaired = (device_id: string, label: string, profile_id: string): Device => ({ device_id, label, profile_id,
    pairing_id: null, patient_id: null, patient_label: null, paired_since: null, paired_until: null, demo: false });

  // Quarantined readings come in runs: `payloads` payloads of one device, `every` s apart, the newest
  // `newest` s ago, each payload's readings quarantined for one reason with Rust's detail.
  let nextId = 1;
  const quarantineRun = (device: string, origin: string, reason: string, detail: (at: string) => string,
    payloads: number, every: number, newest: number, obs: DemoObs[]): QuarantineItem[] =>
    Array.from({ length: payloads }, (_, k) => {
      const at = ago(newest + (payloads - 1 - k) * every);
      const values = obs.map((o) => ({ ...o, value: o.value + (k % 3) - 1 }));
      const payload = JSON.stringify({ serial: device, time: at,
        obs: values.map((o) => ({ code: o.code, value: o.value, unit: o.sent })) }, null, 2);
      return values.map((o) => ({ id: nextId++, device_id: device, mdc_code: o.mdc, metric: o.metric, value: o.value, unit: o.ucum,
        observed_at: at, reason, detail: detail(at), payload, origin }));
    }).flat();

  const noAck = {
    acked_at: null, acked_by: null, ack_reason: null, silenced_until: null, silenced_by: null, silence_reason: null,
    silence_count: 0, silenced_minutes: 0, silence_minutes_left: 60, pages: [], escalated_at: null, bulk_ack: false,
  };
  const page = (sink: string, state: PageDelivery['state'], sent: number, escalated = false, detail: string | null = null): PageDelivery =>
    ({ step: escalated ? 1 : 0, escalated, sink, state, sent_at: ago(sent), settled_at: state === 'sending' ? null : ago(sent - 1), detail });
  const rulesVersion = 'adult-vitals-2026.11-1';

  // The ward around the demo's first beds, each device paired with one of the patients above.
  const ward: [id: string, label: string, profile: string, patient: number | null][] = [
    ['MX-00B2', 'Bed 2 monitor', 'medi-mx700', 5], ['OX-1002', 'Bed 2 oximeter', 'acme-ox100', 5],
    ['MX-00B3', 'Bed 3 monitor', 'medi-mx700', 6], ['OX-1003', 'Bed 3 oximeter', 'acme-ox100', 6],
    ['MX-00B4', 'Bed 4 monitor', 'medi-mx700', 4],
    ['MX-00B5', 'Bed 5 monitor', 'medi-mx700', 7], ['OX-1005', 'Bed 5 oximeter', 'acme-ox100', 7],
    ['MX-00B6', 'Bed 6 monitor', 'medi-mx700', 8], ['OX-1006', 'Bed 6 oximeter', 'acme-ox100', 8],
    ['MX-00B7', 'Bed 7 monitor', 'medi-mx700', 9],
    ['MX-00B8', 'Bed 8 monitor', 'medi-mx700', 10], ['OX-1008', 'Bed 8 oximeter', 'acme-ox100', 10],
    ['MX-00B9', 'Bed 9 monitor', 'medi-mx700', 11], ['OX-1009', 'Bed 9 oximeter', 'acme-ox100', 11],
    ['MX-00C0', 'Bed 10 monitor', 'medi-mx700', 12], ['OX-1010', 'Bed 10 oximeter', 'acme-ox100', 12],
    ['MX-00C1', 'Bed 11 monitor', 'medi-mx700', 13], ['OX-1011', 'Bed 11 oximeter', 'acme-ox100', 13],
    ['MX-00C2', 'Bed 12 monitor', 'medi-mx700', 14],
    ['00-1B-C5-0C-00-00-00-02', 'Ward wearable 3', 'vitaband-2', 12],
    ['00-1B-C5-0C-00-00-00-03', 'Ward wearable 4', 'vitaband-2', 13],
    ['00-1B-C5-0C-00-00-00-04', 'Ward wearable 5', 'vitaband-2', 14],
    ['00-1B-C5-0C-00-00-00-05', 'Ward wearable 6', 'vitaband-2', null],
    ['OX-1090', 'Spare oximeter (store room)', 'acme-ox100', null],
  ];
  const devices: Device[] = [
    paired('MX-00A0', 'Bed 1 monitor', 'medi-mx700', 1, 1, 86_400),
    paired('OX-1000', 'Bed 1 oximeter', 'acme-ox100', 2, 1, 86_000),
    paired('00-1B-C5-0C-00-00-00-00', 'Ward wearable 1', 'vitaband-2', 3, 2, 30_000),
    paired('00-1B-C5-0C-00-00-00-01', 'Ward wearable 2', 'vitaband-2', 4, 3, 12_000),
    unpaired('MX-00A1', 'Spare monitor', 'medi-mx700'),
    ...ward.map(([id, label, profile, p], i) =>
      (p === null ? unpaired(id, label, profile) : paired(id, label, profile, 5 + i, p, 20_000 + i * 3_100))),
  ];

  // What the pipeline heard of each device. Bed 7's monitor stopped 7 min ago (offline), Bed 5's
  // oximeter 22 s ago (stale), the spare oximeter and wearable 6 were never heard, and ZX-9F31 sends
  // without being registered.
  const silentFor: Record<string, number> = { 'MX-00B7': 420, 'OX-1005': 22 };
  const neverHeard = new Set(['OX-1090', '00-1B-C5-0C-00-00-00-05']);
  const heard: HeardDevice[] = devices.filter((d) => !neverHeard.has(d.device_id)).map((d, i) => {
    const profile = d.profile_id!;
    const { interval } = PROFILE_TIMING[profile]!;
    const silent = silentFor[d.device_id];
    const batteryMapped = profile !== 'medi-mx700';
    return {
      device_id: d.device_id, origin: `vigil/devices/${d.device_id}/${KIND[profile]}`, suggested_profile: profile,
      last_heard: ago(silent ?? 1 + (i % 4)), alive: silent === undefined,
      messages_per_min: silent === undefined ? 60 / interval : 0, messages: 900 + i * 37,
      latest_validity: d.device_id === '00-1B-C5-0C-00-00-00-01' ? 'invalid' : 'demo',
      battery_pct: batteryMapped ? (d.device_id === '00-1B-C5-0C-00-00-00-04' ? 12 : 97 - ((i * 13) % 40)) : null,
      firmware: FIRMWARE[profile]!,
      // One oximeter's clock runs 42 s behind; the rest are within a second or two.
      clock_offset_secs: d.device_id === 'OX-1006' ? -42 : Math.round(((i * 7) % 21) - 10) / 10,
    };
  });
  heard.push({ device_id: 'ZX-9F31', origin: 'vigil/devices/ZX-9F31/monitor', suggested_profile: 'medi-mx700',
    last_heard: ago(2), alive: true, messages_per_min: 12, messages: 20, latest_validity: 'valid', battery_pct: null,
    firmware: '4.1.0', clock_offset_secs: 0.4 });

  const monitorObs: DemoObs[] = [
    { mdc: MDC.heartRate, metric: 'Heart rate', code: 'HR', value: 76, sent: 'bpm', ucum: '/min' },
    { mdc: MDC.spo2, metric: 'SpO2', code: 'SPO2', value: 95, sent: '%', ucum: '%' },
  ];
  const quarantine = [
    // The spare monitor has been sending for about 80 min, never paired: 2,000 readings.
    ...quarantineRun('MX-00A1', 'vigil/devices/MX-00A1/monitor', 'no_active_pairing',
      () => 'device MX-00A1 had no active pairing when this was measured: pair it for that time, then release', 1000, 5, 3, monitorObs),
    ...quarantineRun('ZX-9F31', 'vigil/devices/ZX-9F31/monitor', 'unknown_device',
      () => 'device ZX-9F31 is not registered: register and pair it, then release', 20, 5, 2, monitorObs),
    ...quarantineRun('OX-1006', 'vigil/devices/OX-1006/oximeter', 'implausible',
      () => 'device OX-1006: SpO2 181 % is outside the plausible range 0-100 %', 3, 40, 900,
      [{ mdc: MDC.spo2, metric: 'SpO2', code: 'SPO2', value: 181, sent: '%', ucum: '%' }]),
  ];

  // Bed 4's patient has no store consent on record: the monitor's readings are held, not stored.
  const charlie = patientLabel(registry[3]!);
  const held: HeldView[] = Array.from({ length: 9 }, (_, k) => {
    const at = ago(60 + k * 5);
    const [mdc_code, value, code, metric] =
      k % 2 === 0 ? [MDC.heartRate, 70 + (k % 4), 'HR', 'Heart rate'] : [MDC.spo2, 97, 'SPO2', 'SpO2'];
    return { device_id: 'MX-00B4', patient_id: 4, patient_label: charlie, mdc_code, metric, value, unit: mdc_code === MDC.spo2 ? '%' : '/min',
      observed_at: at, flow: 'store', reason: 'no store consent recorded for this patient (fail-closed)',
      payload: JSON.stringify({ serial: 'MX-00B4', time: at, obs: [{ code, value, unit: code === 'HR' ? 'bpm' : '%' }] }, null, 2) };
  });

  return {
    components: [
      beat('mqtt'), beat('mllp'), beat('store'), beat('rules'), beat('alerts'), beat('alert-webhook'),
      beat('ehr', 'down', 'FHIR server https://ehr.example.org/fhir not answering (timeout after 10 s)'),
    ],
    modes: [EHR_SYNC_PAUSED],
    ingest_queue: 3,
    ingest_unstored: 0,
    ingest: { payloads: 18244, duplicate_payloads: 12, stored: 54690, duplicate_readings: 31, rejected: 4, quarantined: 2, held: 9, control_id_reused: 0 },
    rates: { payloads_per_sec: 6.2, readings_per_sec: 18.4 },
    live: [
      live('MX-00A0', 'Bed 1 monitor', 1, alpha, MDC.heartRate, 'Heart rate', 88, '/min', 2),
      live('MX-00A0', 'Bed 1 monitor', 1, alpha, MDC.nibpSys, 'NIBP systolic', 128, 'mm[Hg]', 240),
      live('MX-00A0', 'Bed 1 monitor', 1, alpha, MDC.nibpDia, 'NIBP diastolic', 79, 'mm[Hg]', 240),
      live('MX-00A0', 'Bed 1 monitor', 1, alpha, MDC.respRate, 'Respiratory rate', 18, '/min', 2),
      live('OX-1000', 'Bed 1 oximeter', 1, alpha, MDC.spo2, 'SpO2', 87, '%', 1),
      live('OX-1000', 'Bed 1 oximeter', 1, alpha, MDC.pulseRate, 'Pulse rate', 91, '/min', 1),
      live('00-1B-C5-0C-00-00-00-00', 'Ward wearable 1', 2, bravo, MDC.heartRate, 'Heart rate', 72, '/min', 4),
      live('00-1B-C5-0C-00-00-00-00', 'Ward wearable 1', 2, bravo, MDC.spo2, 'SpO2', 96, '%', 4),
      live('00-1B-C5-0C-00-00-00-00', 'Ward wearable 1', 2, bravo, MDC.temp, 'Temperature', 36.8, 'Cel', 412, true),
      live('00-1B-C5-0C-00-00-00-01', 'Ward wearable 2', 3, delta, MDC.heartRate, 'Heart rate', 64, '/min', 3),
      // A demo site stamps every reading demo, except one the device flagged invalid (off the wrist).
      live('00-1B-C5-0C-00-00-00-01', 'Ward wearable 2', 3, delta, MDC.spo2, 'SpO2', 85, '%', 3, false, 'invalid'),
    ],
    alarms: [
      { id: 41, key: 'a1f3c09e', kind: 'physiological', rule_id: 'spo2-low', rule_version: rulesVersion,
        description: 'SpO2 below 90 % for 60 s', priority: 'high', patient_id: 1, patient_label: alpha,
        device_id: 'OX-1000', mdc_code: MDC.spo2, value: 87, unit: '%', since: ago(190), raised_at: ago(130), cleared_at: null, ...noAck,
        pages: [page('ward webhook', 'delivered', 130), page('ward webhook', 'delivered', 70, true)], escalated_at: ago(70) },
      // Low priority pages nobody at this site: no page on record.
      { id: 42, key: '5be20d71', kind: 'technical', rule_id: 'series-stale', rule_version: rulesVersion,
        description: 'Temperature from Ward wearable 1 not received for 5 min', priority: 'low', patient_id: 2,
        patient_label: bravo, device_id: '00-1B-C5-0C-00-00-00-00', mdc_code: MDC.temp, value: null, unit: null,
        since: ago(412), raised_at: ago(112), cleared_at: null, ...noAck },
      { id: 43, key: '0c77e4aa', kind: 'technical', rule_id: 'device-quarantined', rule_version: rulesVersion,
        description: 'Readings from MX-00A1 are quarantined: device not paired with a patient', priority: 'medium',
        patient_id: null, patient_label: null, device_id: 'MX-00A1', mdc_code: null, value: null, unit: null,
        since: ago(4_900), raised_at: ago(4_880), cleared_at: null, ...noAck, bulk_ack: true,
        pages: [page('biomed webhook', 'failed', 4_880, false, 'HTTP 503 from https://biomed.example.org/hook after 3 attempts')],
        silenced_until: new Date(now.getTime() + 4 * 60_000).toISOString(), silenced_by: 'K. Osei',
        silence_reason: 'Spare monitor being set up in bay 2', silence_count: 1, silenced_minutes: 5, silence_minutes_left: 60 },
      { id: 44, key: '7d01b3f2', kind: 'technical', rule_id: 'device-quarantined', rule_version: rulesVersion,
        description: 'Readings from ZX-9F31 are quarantined: device not registered', priority: 'medium',
        patient_id: null, patient_label: null, device_id: 'ZX-9F31', mdc_code: null, value: null, unit: null,
        since: ago(97), raised_at: ago(90), cleared_at: null, ...noAck, bulk_ack: true,
        pages: [page('biomed webhook', 'sending', 90)] },
      { id: 45, key: 'c4e8a610', kind: 'technical', rule_id: 'device-offline', rule_version: rulesVersion,
        description: 'A paired bedside device has sent nothing for 60 s: the patient is not being monitored remotely',
        priority: 'medium', patient_id: 9, patient_label: patientLabel(registry[8]!), device_id: 'MX-00B7', mdc_code: null,
        value: null, unit: null, since: ago(420), raised_at: ago(360), cleared_at: null, ...noAck,
        pages: [page('ward webhook', 'delivered', 360)] },
      { id: 37, key: 'e90a51c2', kind: 'physiological', rule_id: 'pulse-high', rule_version: rulesVersion,
        description: 'Pulse rate 131 /min or more for 60 s (NEWS2 band scoring 3)', priority: 'medium',
        patient_id: 3, patient_label: delta, device_id: '00-1B-C5-0C-00-00-00-01', mdc_code: MDC.pulseRate, value: 134, unit: '/min',
        since: ago(7300), raised_at: ago(7240), cleared_at: ago(6900), ...noAck,
        pages: [page('ward webhook', 'delivered', 7240)],
        acked_at: ago(7100), acked_by: 'R. Lindqvist', ack_reason: 'Patient walking to the bathroom, checked at bedside' },
    ],
    quarantine,
    devices,
    heard,
    // Bed 1's devices were with a patient discharged yesterday.
    pastPairings: ['MX-00A0', 'OX-1000'].map((device_id) =>
      ({ device_id, patient_id: 15, from: ago(5 * 86_400), until: ago(86_400 + 900), by: 'R. Lindqvist' })),
    held,
    noStoreConsent: [4],
    rejected: [
      { id: 11, source: 'mqtt', origin: 'vigil/devices/XR-0001/ventilator', reason: 'no_profile',
        detail: 'no device profile serves topic vigil/devices/XR-0001/ventilator: add one, or check the device\'s topic',
        payload: JSON.stringify({ serial: 'XR-0001', time: ago(3_000), peep: 5, fio2: 0.4 }, null, 2), received_at: ago(3_000) },
      { id: 12, source: 'mqtt', origin: 'vigil/devices/00-1B-C5-0C-00-00-00-02/wearable', reason: 'bad_unit',
        detail: 'obs[0].unit "degF" for Temperature: not among the profile\'s accepted units for it; add it to `units` if the device really sends it',
        payload: JSON.stringify({ serial: '00-1B-C5-0C-00-00-00-02', time: ago(2_400), obs: [{ code: 'TEMP', value: 98.6, unit: 'degF' }] }, null, 2),
        received_at: ago(2_400) },
      { id: 13, source: 'mqtt', origin: 'vigil/devices/OX-1003/oximeter', reason: 'not_json',
        detail: 'the payload is not JSON: expected value at line 1 column 1', payload: 'SPO2=97;PR=71', received_at: ago(1_200) },
      { id: 14, source: 'mqtt', origin: 'vigil/devices/MX-00B3/monitor', reason: 'bad_time',
        detail: 'time "yesterday": not an RFC 3339 time',
        payload: JSON.stringify({ serial: 'MX-00B3', time: 'yesterday', obs: [{ code: 'HR', value: 80, unit: 'bpm' }] }, null, 2),
        received_at: ago(300) },
    ],
    profiles: ['acme-ox100', 'medi-mx700', 'vitaband-2'],
    registry,
    outbox: [
      { id: 301, hash: 'b3:9f1c2e…', patient_id: 1, patient_label: alpha, status: 'pending', reason: 'EHR not answering (timeout after 10 s); next attempt in 40 s',
        attempts: 3, ehr_ref: null, summary: 'Observation SpO2 87 % (below 90 % for 60 s)', created_at: ago(125), delivered_at: null },
      { id: 302, hash: 'b3:4a77d0…', patient_id: 2, patient_label: bravo, status: 'pending', reason: null, attempts: 0, ehr_ref: null,
        summary: 'Vital signs panel: HR 72 /min, SpO2 96 %', created_at: ago(60), delivered_at: null },
      { id: 288, hash: 'b3:c0ffee…', patient_id: 4, patient_label: null, status: 'held', reason: 'No ehr-write consent recorded for this patient (fail-closed)',
        attempts: 0, ehr_ref: null, summary: 'Vital signs panel: SpO2 97 %, pulse 70 /min', created_at: ago(5400), delivered_at: null },
      { id: 251, hash: 'b3:77aa01…', patient_id: 3, patient_label: delta, status: 'dead',
        reason: 'EHR refused (HTTP 422): Observation.subject: Patient/pt-100003 is not an active patient (OperationOutcome invalid)',
        attempts: 1, ehr_ref: null, summary: 'Observation pulse rate 134 /min (above 130 /min for 60 s)', created_at: ago(7200), delivered_at: null },
      { id: 240, hash: 'b3:18e2bb…', patient_id: 1, patient_label: alpha, status: 'delivered', reason: null, attempts: 1,
        ehr_ref: 'Observation/8f2c1d', summary: 'Vital signs panel: HR 84 /min, NIBP 131/82 mm[Hg]', created_at: ago(9000), delivered_at: ago(8998) },
      { id: 241, hash: 'b3:5d0c9a…', patient_id: 2, patient_label: bravo, status: 'delivered', reason: null, attempts: 2,
        ehr_ref: 'Observation/8f2c22', summary: 'Vital signs panel: HR 70 /min, SpO2 97 %', created_at: ago(8800), delivered_at: ago(8700) },
    ],
    settings: {
      ehr: { kind: 'fhir', environment: 'production', base_url: 'https://ehr.example.org/fhir', auth: 'smart', mllp_addr: null },
      broker: { mode: 'embedded', url: null, listen: '127.0.0.1:1883' },
      store_url: 'sqlite:///var/lib/vigil/vigil.db', rules_version: rulesVersion, demo: true,
    },
  };
}
