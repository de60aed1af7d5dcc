// Made-up demo data for the mock backend (no real person). It mirrors fixtures/demo/registry.toml so the
// browser demo and the real demo show the same ward: three paired patients, one spare monitor MX-00A1.
import type {
  Alarm, ComponentHealth, DegradationMode, Device, IngestTally, LiveValue, OutboxEntry, QuarantineItem,
  Rates, Settings, VerifiedPatient,
} from './types';

export const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5.99999.2';

/** MDC codes used by the demo (ISO/IEEE 11073-10101). */
export const MDC = {
  heartRate: 147842, pulseRate: 149530, spo2: 150456, nibpSys: 150021, nibpDia: 150022, respRate: 151562,
  temp: 150364,
} as const;

/** A patient known to the (sandbox) registry, with the internal id the pipeline gives it. */
export interface RegistryPatient extends VerifiedPatient { patient_id: number }

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

export function demoData(now: Date): MockData {
  const ago = (secs: number) => new Date(now.getTime() - secs * 1000).toISOString();
  const registry = [
    patient(1, 'MRN-100000', 'Demo Patient Alpha', '1948-03-12'),
    patient(2, 'MRN-100001', 'Demo Patient Bravo', '1961-07-30'),
    patient(3, 'MRN-100003', 'Demo Patient Delta', '1979-11-02'),
    patient(4, 'MRN-100002', 'Demo Patient Charlie', '1990-01-15'),
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
  // The spare monitor is registered but was never paired: Rust quarantines its readings as
  // no_active_pairing, with this detail (identify::identify).
  const quarantined = (id: number, mdc_code: number, value: number, unit: string, age: number, obs: object): QuarantineItem => ({
    id, device_id: 'MX-00A1', mdc_code, value, unit, observed_at: ago(age), reason: 'no_active_pairing',
    detail: `device MX-00A1 had no active pairing at ${ago(age)}: pair it for that time, then release`,
    payload: JSON.stringify({ serial: 'MX-00A1', time: ago(age), obs: [obs] }, null, 2),
    origin: 'vigil/devices/MX-00A1/monitor',
  });
  const noAck = {
    acked_at: null, acked_by: null, ack_reason: null, silenced_until: null, silenced_by: null, silence_reason: null,
    silence_count: 0, silenced_minutes: 0, silence_minutes_left: 60,
  };
  const rulesVersion = 'adult-vitals-2026.11-1';

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
        device_id: 'OX-1000', mdc_code: MDC.spo2, value: 87, unit: '%', since: ago(190), raised_at: ago(130), cleared_at: null, ...noAck },
      { id: 42, key: '5be20d71', kind: 'technical', rule_id: 'series-stale', rule_version: rulesVersion,
        description: 'Temperature from Ward wearable 1 not received for 5 min', priority: 'low', patient_id: 2,
        patient_label: bravo, device_id: '00-1B-C5-0C-00-00-00-00', mdc_code: MDC.temp, value: null, unit: null,
        since: ago(412), raised_at: ago(112), cleared_at: null, ...noAck },
      { id: 43, key: '0c77e4aa', kind: 'technical', rule_id: 'device-quarantined', rule_version: rulesVersion,
        description: 'Readings from MX-00A1 are quarantined: device not paired with a patient', priority: 'medium',
        patient_id: null, patient_label: null, device_id: 'MX-00A1', mdc_code: null, value: null, unit: null,
        since: ago(620), raised_at: ago(600), cleared_at: null, ...noAck,
        silenced_until: new Date(now.getTime() + 4 * 60_000).toISOString(), silenced_by: 'K. Osei',
        silence_reason: 'Spare monitor being set up in bay 2', silence_count: 1, silenced_minutes: 5, silence_minutes_left: 60 },
      { id: 37, key: 'e90a51c2', kind: 'physiological', rule_id: 'pulse-high', rule_version: rulesVersion,
        description: 'Pulse rate 131 /min or more for 60 s (NEWS2 band scoring 3)', priority: 'medium',
        patient_id: 3, patient_label: delta, device_id: '00-1B-C5-0C-00-00-00-01', mdc_code: MDC.pulseRate, value: 134, unit: '/min',
        since: ago(7300), raised_at: ago(7240), cleared_at: ago(6900), ...noAck,
        acked_at: ago(7100), acked_by: 'R. Lindqvist', ack_reason: 'Patient walking to the bathroom, checked at bedside' },
    ],
    quarantine: [
      quarantined(7, MDC.heartRate, 76, '/min', 600, { code: 'HR', value: 76, unit: 'bpm' }),
      quarantined(8, MDC.spo2, 95, '%', 598, { code: 'SPO2', value: 95, unit: '%' }),
    ],
    devices: [
      paired('MX-00A0', 'Bed 1 monitor', 'medi-mx700', 1, 1, 86_400),
      paired('OX-1000', 'Bed 1 oximeter', 'acme-ox100', 2, 1, 86_000),
      paired('00-1B-C5-0C-00-00-00-00', 'Ward wearable 1', 'vitaband-2', 3, 2, 30_000),
      paired('00-1B-C5-0C-00-00-00-01', 'Ward wearable 2', 'vitaband-2', 4, 3, 12_000),
      { device_id: 'MX-00A1', label: 'Spare monitor', profile_id: 'medi-mx700', pairing_id: null, patient_id: null,
        patient_label: null, paired_since: null, paired_until: null, demo: false },
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
