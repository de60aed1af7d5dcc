//! Vigil's pipeline: medical-device telemetry in, verified readings stored, clinical events out.
//!
//! # Layout
//! - [`config`]: `vigil.toml`, loaded and validated with every problem reported at once.
//! - [`model`]: canonical types (a FHIR-shaped [`model::Reading`] and its content hash).
//! - [`sources`]: where payloads enter (MQTT: the embedded endpoint or an external broker).
//! - [`ingest`]: the writer that makes payloads durable before anything is acknowledged.
//! - [`normalise`]: device profiles mapping vendor payloads to canonical readings (MDC, LOINC, UCUM).
//! - [`identify`]: device registry, pairing and consent checks; quarantine and hold decisions.
//! - [`store`]: the store trait and its SQLite backend.
//! - [`clinical`]: the clinical-events plane's front door: validate and queue events, build the EHR
//!   adapter, provision pairings verified at the EHR.
//! - [`fhir`]: the FHIR R4 resources Vigil emits, their Bundle, and local structural checks.
//! - [`outbox`]: durable, ordered, exactly-once delivery with backoff and a circuit breaker.
//! - [`sinks`]: EHR adapters (FHIR REST with SMART Backend Services) and the sandbox.
//! - [`pipeline`]: the facade the binary and the console drive.
//! - [`api`]: the console's facade over a running pipeline: board, live values, charts, alarms,
//!   quarantine, pairing, outbox and settings, as operator actions with `{code, message}` errors.
//! - [`demo`]: the demo site (embedded broker, SQLite, sandbox EHR, simulated ward).
//! - [`simulate`]: realistic simulated devices for the demo, tests and benchmarks.
//! - [`bench`]: `vigil bench`, end-to-end ingest throughput.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod bench;
pub mod clinical;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod demo;
pub mod fhir;
pub mod health;
pub mod identify;
pub mod ingest;
pub mod model;
pub mod normalise;
pub mod outbox;
pub mod pipeline;
pub mod registry_import;
pub mod rules;
pub mod simulate;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod store;
pub mod supervisor;
