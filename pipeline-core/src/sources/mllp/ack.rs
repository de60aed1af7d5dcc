//! The acknowledgements Vigil sends for what a gateway sent: which code, and its MSH, MSA and ERR.
//!
//! - The ACK echoes the incoming version (MSH-12), swaps sender and receiver (MSH-3/4 with
//!   MSH-5/6), and answers the incoming MSH-10 in MSA-2.
//! - Original mode (MSH-15 and MSH-16 empty): one AA, AE or AR. Enhanced mode: a commit ACK (CA,
//!   CE, CR) as MSH-15 asks, then an application ACK as MSH-16 asks (`AL`, `SU`, `ER`, `NE`).
//!   Vigil's processing is the durable write, so both are sent after it.
//! - An ERR names where the problem is and its table 0357 code: from v2.5 on in ERR-2 (ERL) and
//!   ERR-3, with the text in ERR-8; for v2.3 and v2.4 in ERR-1 (ELD), with the text in MSA-3.

use chrono::{DateTime, Utc};

use crate::hl7::escape;
use crate::ingest::Oversized;
use crate::normalise::pcd01::{Decoded, Header, Location, Problem, Refusal};

/// What Vigil answers a message, once it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Stored and read: AA (CA).
    Accept,
    /// The message is wrong (stored in `rejected` with the reason): AE (CE), with every problem.
    Error(Vec<Flaw>),
    /// Not taken (stored in `rejected`): AR (CR), with its code.
    Reject(Flaw),
}

/// One ERR: where, the table 0357 code, and the text for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flaw {
    /// Where, when a field is at fault.
    pub at: Option<Location>,
    /// The table 0357 code.
    pub code: u16,
    /// What and why, without PHI.
    pub text: String,
}

impl From<&Problem> for Flaw {
    fn from(p: &Problem) -> Flaw {
        Flaw { at: Some(p.at.clone()), code: p.error_code(), text: p.detail.clone() }
    }
}

/// Table 0357 code for "busy, resend": the pipeline could not take the message in time.
pub const BUSY: u16 = 207;

/// What a decoded message (or what is kept of an oversized one) is answered, once stored.
pub fn answer(decoded: &Decoded, oversized: Option<&Oversized>) -> Answer {
    if let Some(o) = oversized {
        return Answer::Error(vec![Flaw {
            at: None,
            code: 207,
            text: format!("the message is {} bytes, over the {}-byte limit ({})", o.bytes, o.limit, o.setting),
        }]);
    }
    match &decoded.outcome {
        Ok(_) => Answer::Accept,
        Err(Refusal::NotHl7(why)) => {
            Answer::Error(vec![Flaw { at: None, code: 102, text: format!("not an HL7 v2 message: {why}") }])
        }
        Err(Refusal::Unsupported { code, field, detail }) => Answer::Reject(Flaw {
            at: Some(Location { segment: "MSH", sequence: 1, field: *field }),
            code: *code,
            text: detail.clone(),
        }),
        Err(Refusal::Malformed(problems)) => Answer::Error(problems.iter().map(Flaw::from).collect()),
    }
}

/// The reply to a message that could not be queued in time: AR 207, "busy, resend".
pub fn busy() -> Answer {
    Answer::Reject(Flaw {
        at: None,
        code: BUSY,
        text: "busy, resend: Vigil could not take the message in time; nothing of it was stored".into(),
    })
}

/// The encoded acknowledgements (without framing) for `answer` to a message with `header` (none
/// when the message had no readable MSH), in the order they are sent; empty when the sender asked
/// for none.
pub fn acks(
    header: Option<&Header>,
    answer: &Answer,
    control_ids: &mut impl FnMut() -> String,
    now: DateTime<Utc>,
) -> Vec<String> {
    let fallback = Header { version: "2.6".into(), ..Header::default() };
    let header = header.unwrap_or(&fallback);
    let ok = matches!(answer, Answer::Accept);
    let wanted = |mode: &str| match mode {
        "AL" => true,
        "SU" => ok,
        "ER" => !ok,
        _ => false,
    };
    let enhanced = !header.accept_ack.is_empty() || !header.application_ack.is_empty();
    let (accept, application) = match answer {
        Answer::Accept => ("CA", "AA"),
        Answer::Error(_) => ("CE", "AE"),
        Answer::Reject(_) => ("CR", "AR"),
    };
    let mut out = Vec::new();
    if !enhanced {
        out.push(ack(header, application, answer, control_ids(), now));
        return out;
    }
    if wanted(&header.accept_ack) {
        out.push(ack(header, accept, answer, control_ids(), now));
    }
    if wanted(&header.application_ack) {
        out.push(ack(header, application, answer, control_ids(), now));
    }
    out
}

/// One ACK message.
fn ack(header: &Header, code: &str, answer: &Answer, control_id: String, now: DateTime<Utc>) -> String {
    let version = if header.version.is_empty() { "2.6" } else { header.version.as_str() };
    let legacy = matches!(version, "2.3" | "2.3.1" | "2.4");
    let kind = if version == "2.3" { "ACK^R01" } else { "ACK^R01^ACK" };
    let flaws: Vec<&Flaw> = match answer {
        Answer::Accept => Vec::new(),
        Answer::Error(flaws) => flaws.iter().collect(),
        Answer::Reject(flaw) => vec![flaw],
    };
    let mut segments = vec![format!(
        "MSH|^~\\&|{}|{}|{}|{}|{}||{kind}|{}|P|{}",
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        now.format("%Y%m%d%H%M%S%.3f+0000"),
        escape(&control_id),
        escape(version),
    )];
    let control = escape(&header.control_id);
    match (legacy, flaws.first()) {
        (true, Some(first)) => segments.push(format!("MSA|{code}|{control}|{}", escape(&clip(&first.text)))),
        _ => segments.push(format!("MSA|{code}|{control}")),
    }
    for flaw in flaws {
        let name = escape(code_name(flaw.code));
        let location = flaw.at.as_ref().map(|at| format!("{}^{}^{}", at.segment, at.sequence, at.field));
        let text = escape(&clip(&flaw.text));
        segments.push(if legacy {
            format!("ERR|{}^{}&{name}&HL70357", location.unwrap_or_else(|| "^^".into()), flaw.code)
        } else {
            format!("ERR||{}|{}^{name}^HL70357|E||||{text}", location.unwrap_or_default(), flaw.code)
        });
    }
    let mut message = segments.join("\r");
    message.push('\r');
    message
}

/// Text for an ACK field: short enough for any receiver's field limits.
fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 250;
    if text.chars().count() <= MAX_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_CHARS - 1).collect();
    format!("{head}…")
}

/// HL7 table 0357's name for a code.
fn code_name(code: u16) -> &'static str {
    match code {
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        203 => "Unsupported version id",
        _ => "Application internal error",
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::hl7::Message;
    use crate::normalise::pcd01::{Pcd01Terms, decode};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 1).unwrap()
    }

    fn reply(message: &str) -> Vec<String> {
        let decoded = decode(message.replace('\n', "\r").as_bytes(), &Pcd01Terms::default());
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("A-{n}")
        };
        acks(decoded.header.as_ref(), &answer(&decoded, None), &mut ids, now())
    }

    const MSH: &str =
        "MSH|^~\\&|GW^0A1B2C3D4E5F6071^EUI-64|WARD|VIGIL|CLINIC|20261124100002+0000||ORU^R01^ORU_R01|C-1|P|2.6";
    const OBX: &str =
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|%^%^UCUM|||||R|||20261124100000+0000||||001BC50C00000001";

    #[test]
    fn an_accepted_message_is_answered_aa_with_its_sender_and_receiver_swapped() {
        let acks = reply(&format!("{MSH}\nPID|||M1^^^&1.2.3&ISO\n{OBX}"));
        assert_eq!(
            acks,
            [
                "MSH|^~\\&|VIGIL|CLINIC|GW^0A1B2C3D4E5F6071^EUI-64|WARD|20261124100001.000+0000||ACK^R01^ACK|A-1|P|2.6\rMSA|AA|C-1\r"
            ]
        );
    }

    #[test]
    fn errors_name_segment_sequence_and_field_in_the_versions_own_layout() {
        let bad = OBX.replace("|97|", "|x|");
        let v26 = reply(&format!("{MSH}\n{bad}"));
        let message = Message::parse(&v26[0]).unwrap();
        assert_eq!(message.first("MSA").unwrap().field(1), "AE");
        let err = message.first("ERR").unwrap();
        assert_eq!((err.field(2), err.component(3, 1)), ("OBX^1^5", "102"));
        assert!(err.field(8).contains("not a number"), "{}", err.field(8));

        let v24 = reply(&format!("{}\n{bad}", MSH.replace("|2.6", "|2.4")));
        let message = Message::parse(&v24[0]).unwrap();
        assert_eq!(message.header().field(12), "2.4");
        assert_eq!(message.first("ERR").unwrap().field(1), "OBX^1^5^102&Data type error&HL70357");
        assert!(message.first("MSA").unwrap().field(3).contains("not a number"));
    }

    #[test]
    fn unsupported_messages_are_rejected_with_their_code() {
        let alarm = reply(&MSH.replace("ORU^R01^ORU_R01", "ORU^R40^ORU_R40"));
        let message = Message::parse(&alarm[0]).unwrap();
        assert_eq!(message.first("MSA").unwrap().field(1), "AR");
        assert_eq!(message.first("ERR").unwrap().field(2), "MSH^1^9");
        assert_eq!(message.first("ERR").unwrap().component(3, 1), "201");
        let busy = acks(None, &busy(), &mut || "A-9".into(), now());
        let message = Message::parse(&busy[0]).unwrap();
        assert_eq!(
            (message.first("MSA").unwrap().field(1), message.first("ERR").unwrap().component(3, 1)),
            ("AR", "207")
        );
        assert!(message.first("ERR").unwrap().field(8).starts_with("busy, resend"));
    }

    #[test]
    fn enhanced_mode_sends_what_msh_15_and_msh_16_ask_for() {
        let codes = |accept: &str, application: &str, body: &str| -> Vec<String> {
            let msh = format!("{MSH}|||{accept}|{application}");
            reply(&format!("{msh}\n{body}"))
                .iter()
                .map(|a| Message::parse(a).unwrap().first("MSA").unwrap().field(1).to_string())
                .collect()
        };
        let good = format!("PID|||M1^^^&1.2.3&ISO\n{OBX}");
        assert_eq!(codes("AL", "NE", &good), ["CA"]);
        assert_eq!(codes("NE", "AL", &good), ["AA"]);
        assert_eq!(codes("AL", "AL", &good), ["CA", "AA"]);
        assert_eq!(codes("NE", "NE", &good), Vec::<String>::new());
        assert_eq!(codes("AL", "ER", &OBX.replace("|97|", "|x|")), ["CE", "AE"]);
        assert_eq!(codes("SU", "SU", &OBX.replace("|97|", "|x|")), Vec::<String>::new());
    }

    #[test]
    fn what_is_not_hl7_gets_an_ae_without_a_control_id() {
        let acks = reply("hello");
        let message = Message::parse(&acks[0]).unwrap();
        assert_eq!(message.first("MSA").unwrap().field(1), "AE");
        assert_eq!(message.first("MSA").unwrap().field(2), "");
    }
}
