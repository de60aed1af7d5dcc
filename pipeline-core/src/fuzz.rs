//! Fuzz entry points: plain functions over arbitrary bytes, one per parser that reads what a peer
//! sends. Each must return without panicking, whatever the bytes. The `fuzz/` crate (cargo-fuzz,
//! `make fuzz`) runs them for long; `make test` runs each over its checked-in corpus
//! (`fixtures/fuzz/<target>/`) and a bounded number of arbitrary inputs.

use std::sync::OnceLock;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use rumqttc::Packet;

use crate::access::{DeviceAcl, Publisher};
use crate::config::Config;
use crate::hl7::{Frame, FrameReader};
use crate::identify::{Policy, Registry};
use crate::ingest::{Envelope, Format, Oversized, SourceTerms, process};
use crate::normalise::pcd01::{self, DeviceFrom, Pcd01Terms};
use crate::normalise::{PayloadLimits, ProfileSet, normalise};
use crate::sources::mllp;
use crate::sources::mqtt::endpoint::{Action, respond};

/// The endpoint's read limit for a packet in these runs.
const MAX_PACKET: usize = 64 * 1024;

/// A device's bytes on the embedded MQTT endpoint: decoded packet by packet as the endpoint does
/// (CONNECT first), each answered by the protocol, each answer encoded.
pub fn mqtt_endpoint(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut connected = false;
    while let Ok(packet) = Packet::read(&mut buf, MAX_PACKET) {
        if !connected {
            if !matches!(packet, Packet::Connect(..)) {
                return;
            }
            connected = true;
            continue;
        }
        match respond(Some(packet)) {
            Action::Store { topic, payload, ack } => {
                let _ = Envelope::received(&terms(1024), topic, DateTime::<Utc>::UNIX_EPOCH, payload);
                if let Some(ack) = ack {
                    let _ = ack.write(&mut BytesMut::new(), MAX_PACKET);
                }
            }
            Action::Reply(packet) => {
                let _ = packet.write(&mut BytesMut::new(), MAX_PACKET);
            }
            Action::Ignore => {}
            Action::End | Action::Close(_) => return,
        }
    }
}

/// An MQTT source's terms with a payload limit; a gateway's credential (`*`) publishes.
fn terms(max_bytes: usize) -> SourceTerms {
    let allowed = std::sync::Arc::new(DeviceAcl::parse(&["*"]).unwrap_or_else(|_| unreachable!("a valid pattern")));
    SourceTerms {
        source: "mqtt",
        publisher: Publisher::Credential { username: "fuzz".into(), allowed },
        max_bytes,
        max_bytes_setting: "[sources.mqtt] max_packet_bytes",
        limits: PayloadLimits::default(),
        format: Format::Profiles,
    }
}

/// The fixture profiles (one of each payload shape Vigil reads).
fn profiles() -> &'static ProfileSet {
    static PROFILES: OnceLock<ProfileSet> = OnceLock::new();
    PROFILES.get_or_init(|| {
        ProfileSet::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/profiles")).unwrap_or_default()
    })
}

/// A payload read by every fixture profile, then the whole ingest step (normalise, identify) on the
/// first profile's topic.
pub fn profile_payload(data: &[u8]) {
    for profile in profiles().iter() {
        let _ = normalise(profile, data, &PayloadLimits::default());
    }
    let Some(topic) = profiles().iter().next().and_then(|p| p.topics.first()) else { return };
    let origin = topic.replace(['+', '#'], "OX-1");
    let envelope = Envelope::received(&terms(64 * 1024), origin, DateTime::<Utc>::UNIX_EPOCH, data.to_vec().into());
    let _ = process(&envelope, profiles(), &Registry::default(), &Policy::of(&Config::default()), Utc::now());
}

/// An HL7 v2 receiver's reply, parsed as an ACK and classified.
pub fn hl7_ack(data: &[u8]) {
    if let Ok(ack) = crate::sinks::hl7v2::parse_ack(&String::from_utf8_lossy(data)) {
        let _ = ack.refusal();
    }
}

/// A gateway's bytes on the MLLP listener: the first byte sets the read size, the rest arrives in
/// reads of that size through the framing codec (a small limit, so oversized frames are exercised),
/// and every frame is decoded and answered as the listener does.
pub fn mllp_frame(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else { return };
    let mut reader = FrameReader::new(256, 64);
    let mut buffer = BytesMut::new();
    for chunk in rest.chunks(usize::from(step).max(1)) {
        buffer.extend_from_slice(chunk);
        while let Some(frame) = reader.take(&mut buffer) {
            match frame {
                Frame::Message(bytes) => answer_hl7(&bytes, None),
                Frame::Oversized { head, bytes, blake3 } => {
                    let oversized =
                        Oversized { bytes, limit: 256, blake3, setting: "[sources.mllp] max_message_bytes" };
                    answer_hl7(&head, Some(&oversized));
                }
            }
        }
    }
}

/// One HL7 v2 message as the MLLP source reads it: decoded (local times in Berlin, and MSH-3 as the
/// device), through normalise and identify, and answered.
pub fn pcd01_message(data: &[u8]) {
    answer_hl7(data, None);
    let terms = Pcd01Terms {
        timezone: Some(chrono_tz::Europe::Berlin),
        device_from: DeviceFrom::Msh3,
        ..Pcd01Terms::default()
    };
    let source = SourceTerms {
        source: "mllp",
        publisher: Publisher::Anonymous,
        max_bytes: 64 * 1024,
        max_bytes_setting: "[sources.mllp] max_message_bytes",
        limits: terms.limits,
        format: Format::Pcd01(std::sync::Arc::new(terms)),
    };
    let envelope = Envelope::received(&source, "fuzz".into(), DateTime::<Utc>::UNIX_EPOCH, data.to_vec().into());
    let _ = process(&envelope, profiles(), &Registry::default(), &Policy::of(&Config::default()), Utc::now());
}

/// Decodes a message with the default terms and writes the acknowledgements it gets.
fn answer_hl7(message: &[u8], oversized: Option<&Oversized>) {
    let decoded = pcd01::decode(message, &Pcd01Terms::default());
    let answer = mllp::answer(&decoded, oversized);
    let _ = mllp::acks(decoded.header.as_ref(), &answer, &mut || "FUZZ-1".into(), DateTime::<Utc>::UNIX_EPOCH);
}

/// A SMART token endpoint's answer.
pub fn token_response(data: &[u8]) {
    let _ = crate::sinks::smart::token_response(data);
}

/// A `vigil.toml`, parsed and checked.
pub fn config(data: &[u8]) {
    if let Ok(config) = Config::parse(&String::from_utf8_lossy(data)) {
        let _ = config.validate();
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus runner.
pub const TARGETS: [(&str, Target); 7] = [
    ("mqtt_endpoint", mqtt_endpoint),
    ("profile_payload", profile_payload),
    ("hl7_ack", hl7_ack),
    ("mllp_frame", mllp_frame),
    ("pcd01_message", pcd01_message),
    ("token_response", token_response),
    ("config", config),
];

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_target_survives_its_corpus() {
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/fuzz"));
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!files.is_empty(), "{name} has no corpus");
            for file in files {
                target(&std::fs::read(&file).unwrap());
            }
        }
    }

    proptest! {
        // Bounded for `make test` (a few seconds in all); `make fuzz` runs long.
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn no_target_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for (_, target) in TARGETS {
                target(&data);
            }
        }

        #[test]
        fn no_target_panics_on_arbitrary_text(text in "\\PC{0,512}") {
            for (_, target) in TARGETS {
                target(text.as_bytes());
            }
        }
    }
}
