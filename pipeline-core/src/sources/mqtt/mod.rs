//! MQTT ingest, two ways: Vigil's own endpoint that devices connect to (the embedded default), or a
//! subscription to an external broker. Both acknowledge a QoS 1/2 PUBLISH only once it is durable.

pub mod client;
pub mod endpoint;
pub mod gate;
