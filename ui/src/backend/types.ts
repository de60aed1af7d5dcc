// The data contract with the Rust side (src-tauri). Field names are snake_case because these values
// arrive straight from serde; do not rename them here without changing the Rust DTOs too.

export type HealthState = 'up' | 'degraded' | 'down' | 'stale';
export interface ComponentHealth { name: string; state: HealthState; reason: string; last_beat: string /* RFC 3339 */ }
export interface DegradationMode { id: string; title: string; severity: 'warning' | 'critical'; component: string;
  what_is_off: string; what_still_works: string; what_to_do: string; whom_to_call: string }
export interface IngestTally { payloads: number; duplicate_payloads: number; stored: number; duplicate_readings: number;
  rejected: number; quarantined: number; held: number }
export interface Rates { payloads_per_sec: number; readings_per_sec: number }
export interface Board { at: string; components: ComponentHealth[]; modes: DegradationMode[]; ingest_queue: number;
  outbox: [string, number][] /* [status, count] */; ingest: IngestTally; rates: Rates }
export interface LiveValue { device_id: string; device_label: string | null; patient_id: number | null; patient_label: string | null;
  mdc_code: number; metric: string /* display name, e.g. "SpO2" */; value: number; unit: string /* UCUM, e.g. "%" "/min" "mm[Hg]" */;
  observed_at: string; age_secs: number; stale: boolean }
export type AlarmKind = 'physiological' | 'technical';
export type Priority = 'high' | 'medium' | 'low';
export interface Alarm { id: number; key: string; kind: AlarmKind; rule_id: string; rule_version: string; description: string;
  priority: Priority; patient_id: number | null; patient_label: string | null; device_id: string; mdc_code: number | null; value: number | null; unit: string | null;
  since: string; raised_at: string; cleared_at: string | null; acked_at: string | null; acked_by: string | null; ack_reason: string | null;
  silenced_until: string | null; silenced_by: string | null; silence_reason: string | null }
export interface QuarantineItem { id: number; device_id: string; mdc_code: number; value: number; unit: string; observed_at: string;
  reason: string /* code, e.g. "unpaired_device" */; detail: string /* sentence for the operator */; payload: string /* raw JSON text */ }
export interface ReleaseOutcome { outcome: 'stored' | 'quarantined' | 'held' | 'duplicate'; detail: string }
export interface Device { device_id: string; profile_id: string | null; label: string | null; pairing_id: number | null;
  patient_id: number | null; patient_label: string | null; paired_since: string | null }
export interface VerifiedPatient { system: string; value: string; display: string /* name as the EHR gives it */; birth_date: string | null;
  fhir_id: string | null; verified_by: string /* e.g. "EHR https://…" or "sandbox registry" */ }
export type Flow = 'store' | 'alert' | 'ehr-write';
export type OutboxStatus = 'held' | 'pending' | 'delivered' | 'dead';
export interface OutboxEntry { id: number; hash: string; patient_id: number; patient_label: string | null; status: OutboxStatus; reason: string | null; attempts: number;
  ehr_ref: string | null; summary: string; created_at: string; delivered_at: string | null }
export type EhrKind = 'sandbox' | 'fhir' | 'hl7v2';
export interface Settings { ehr: { kind: EhrKind; base_url: string | null; auth: 'none' | 'bearer' | 'smart'; mllp_addr: string | null };
  broker: { mode: 'embedded' | 'external'; url: string | null; listen: string | null };
  store_url: string; rules_version: string | null; demo: boolean }
export interface ConnectionResult { ok: boolean; message: string }
