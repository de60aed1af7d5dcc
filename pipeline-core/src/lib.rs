//! Vigil's pipeline: medical-device telemetry in, verified readings stored, clinical events out.
//!
//! # Layout
//! Modules depend only on layers above them: model → stages → store → pipeline → api → faces.
//! `make test` checks that the graph of `use crate::` paths has no cycle
//! (`tests/scripts/module_graph.py`).
//!
//! **Vocabularies and leaves**
//! - [`model`]: canonical types: a FHIR-shaped [`model::Reading`], clinical events, the alarm
//!   vocabulary ([`model::alarm`]), the terminology tables ([`model::codes`], [`model::units`]).
//! - [`config`]: `vigil.toml`, loaded and validated with every problem reported at once.
//! - [`clock`]: where "now" comes from; every module that reads the time takes one.
//! - [`audit`]: the keyed, hash-chained audit log and its sealed checkpoint, independent of the
//!   backend; its AuditEvent export.
//! - [`accounts`]: operator accounts, roles and the permissions table, argon2 passwords, tokens.
//! - [`secrets`]: secrets from the environment or owner-only files; private files and folders.
//! - [`access`]: device credentials, their access lists, and who published a payload.
//! - [`hl7`]: HL7 v2 as bytes: delimiters, segments, escapes and MLLP framing.
//! - [`dedup`]: duplicate suppression by content hash, independent of the backend.
//! - [`simulate`]: realistic simulated devices for the demo, tests and benchmarks.
//!
//! **Stages** (plain functions of data, or state machines with the clock passed in)
//! - [`normalise`]: device profiles mapping vendor payloads to canonical readings (MDC, LOINC, UCUM).
//! - [`identify`]: pairing and consent checks; quarantine and hold decisions.
//! - [`fhir`]: the FHIR R4 resources Vigil emits, their Bundle, and local structural checks.
//! - [`fuzz`]: fuzz entry points over the parsers of what peers send (`make fuzz`).
//! - [`health`]: heartbeats, the board and degradation modes.
//!
//! **Store**
//! - [`store`]: capability traits (inbox, registry, quarantine, outbox, alarms, audit, credentials) behind one
//!   [`store::Store`], the SQLite backend, and an in-memory fake for unit tests (`test-util`).
//!
//! **Tasks and adapters** (each takes only the store capability it uses)
//! - [`sinks`]: EHR adapters (FHIR REST with SMART Backend Services, HL7 v2 over MLLP, sandbox).
//! - [`alerts`]: the independent alert circuit (paging sinks, escalation).
//! - [`clinical`]: the clinical-events plane's front door: validate and queue events, build the EHR
//!   adapter, verify a patient at the EHR.
//! - [`outbox`]: durable, ordered, exactly-once delivery with backoff and a circuit breaker.
//! - [`supervisor`]: turns the board's degradation modes into technical alarms.
//! - [`rules`]: versioned rules over rolling windows: alarms, events and charting summaries.
//! - [`ingest`]: the writer that makes payloads durable before anything is acknowledged.
//! - [`sources`]: where payloads enter (MQTT: the embedded endpoint or an external broker).
//! - [`status`]: the loopback status API (`/status`, `/metrics`).
//! - [`registry_import`]: registry files (patients, devices, consents) for a first set-up.
//! - [`demo`]: the demo site (embedded broker, SQLite, sandbox EHR, simulated ward).
//!
//! **Runtime and facade**
//! - [`pipeline`]: the running pipeline: start every component from a config, stop it cleanly.
//! - [`api`]: the one facade both faces call: [`api::Admin`] (every operator action and query, with
//!   an [`api::Actor`] and typed [`api::ErrorCode`]s) and [`api::Console`] (the live parts).
//! - [`bench`]: `vigil bench`: ingest throughput and alarm latency.
//!
//! The faces, `src/bin/vigil/` and the `src-tauri` shell, call [`api`] only.

pub mod access;
pub mod accounts;
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
pub mod fuzz;
pub mod health;
pub mod hl7;
pub mod identify;
pub mod ingest;
pub mod model;
pub mod normalise;
pub mod outbox;
pub mod pipeline;
pub mod registry_import;
pub mod rules;
pub mod secrets;
pub mod simulate;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod store;
pub mod supervisor;
