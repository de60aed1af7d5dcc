//! The ACK parser: what a receiver answered to one message (MSA) and why it refused it (ERR).
//!
//! The reply's own MSH-1/MSH-2 give its delimiters, so a receiver with unusual encoding characters is
//! still read correctly. Segments may end with `\r`, `\n` or `\r\n`: receivers differ, and only the
//! MSA and ERR content matters here.

use std::fmt;

use thiserror::Error;

use crate::hl7::{EncodingError, Message, Segment};

/// MSA-1, the acknowledgement code (HL7 table 0008): original mode `A*`, enhanced mode `C*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept: the receiver stored the message.
    AA,
    /// Application error: the message is wrong; sending it again will not help.
    AE,
    /// Application reject: the receiver would not process it (e.g. overloaded, wrong version).
    AR,
    /// Commit accept (enhanced mode): the receiver safely committed the message.
    CA,
    /// Commit error (enhanced mode).
    CE,
    /// Commit reject (enhanced mode).
    CR,
}

impl AckCode {
    /// Whether the receiver took responsibility for the message, so it may leave the outbox.
    pub fn is_accept(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }

    /// The code as it appears in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }
}

impl fmt::Display for AckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A receiver's acknowledgement of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-2: the MSH-10 of the message this acknowledges.
    pub control_id: String,
    /// MSA-3, the receiver's text message, unescaped.
    pub text: Option<String>,
    /// Every ERR segment as "user message (at SEG-n)": ERR-8, else ERR-3's text, else ERR-3's
    /// code, with ERR-2's location when given; several are joined with `; `.
    pub error: Option<String>,
    /// The first ERR's HL7 table 0357 code: ERR-3 (v2.5 on), else ERR-1.4 (before v2.5).
    pub error_code: Option<u16>,
}

/// What a refusal means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// AE/CE: the message is wrong; sending it again will not help.
    Message,
    /// AR/CR with error code 200-203 (unsupported message type, event, processing id, version): the
    /// receiver refuses what Vigil is configured to send.
    Configuration,
    /// AR/CR with any other code, or none: the receiver could not take it now (busy, locked,
    /// internal error); try again.
    Transient,
}

impl Ack {
    /// What a refusal means; `None` for an accept.
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self.code {
            AckCode::AA | AckCode::CA => return None,
            AckCode::AE | AckCode::CE => Refusal::Message,
            AckCode::AR | AckCode::CR if matches!(self.error_code, Some(200..=203)) => Refusal::Configuration,
            AckCode::AR | AckCode::CR => Refusal::Transient,
        })
    }
}

/// Why a reply is not a readable ACK, with where in it the problem is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckError {
    /// A required segment is absent (MSH must come first).
    #[error("no {segment} segment")]
    MissingSegment {
        /// The segment id.
        segment: &'static str,
    },
    /// A required field is empty.
    #[error("{segment}-{field} is empty")]
    MissingField {
        /// The segment id.
        segment: &'static str,
        /// The field number as in the standard.
        field: usize,
    },
    /// A field holds a value the ACK cannot have.
    #[error("{segment}-{field} has an unexpected value `{value}`")]
    InvalidField {
        /// The segment id.
        segment: &'static str,
        /// The field number as in the standard.
        field: usize,
        /// What was found (never a patient identifier: ACKs carry none of the fields read here).
        value: String,
    },
}

/// Parses a receiver's reply (without MLLP framing) into an [`Ack`].
pub fn parse_ack(message: &str) -> Result<Ack, AckError> {
    let parsed = Message::parse(message).map_err(|e| match e {
        EncodingError::NoHeader => AckError::MissingSegment { segment: "MSH" },
        EncodingError::FieldSeparator(value) => AckError::InvalidField { segment: "MSH", field: 1, value },
        EncodingError::EncodingCharacters(value) => AckError::InvalidField { segment: "MSH", field: 2, value },
    })?;
    let d = parsed.delimiters;
    let msh = parsed.header();
    if msh.component(9, 1) != "ACK" {
        return Err(AckError::InvalidField { segment: "MSH", field: 9, value: msh.field(9).to_string() });
    }
    let msa = parsed.first("MSA").ok_or(AckError::MissingSegment { segment: "MSA" })?;
    let code = match msa.field(1) {
        "" => return Err(AckError::MissingField { segment: "MSA", field: 1 }),
        raw => AckCode::parse(raw).ok_or_else(|| AckError::InvalidField {
            segment: "MSA",
            field: 1,
            value: raw.to_string(),
        })?,
    };
    let control_id = d.unescape(msa.field(2));
    if control_id.is_empty() {
        return Err(AckError::MissingField { segment: "MSA", field: 2 });
    }
    let text = non_empty(d.unescape(msa.first_repetition(3)));

    let errs = || parsed.segments.iter().filter(|s| s.id() == "ERR");
    let errors: Vec<String> = errs().filter_map(|err| describe_error(err, &parsed)).collect();
    let error = non_empty(errors.join("; "));
    let error_code = errs().next().and_then(|err| {
        let v25 = err.component(3, 1);
        // ERR-1 (ELD): segment ^ sequence ^ field ^ code, the code a CE whose first part is the number.
        let v24 = parsed.subcomponent(err.component(1, 4), 1);
        [v25.to_string(), v24].into_iter().find_map(|c| c.trim().parse().ok())
    });
    Ok(Ack { code, control_id, text, error, error_code })
}

/// One ERR segment (v2.5+ layout) in words, or `None` when it says nothing.
fn describe_error(err: &Segment, message: &Message) -> Option<String> {
    let d = &message.delimiters;
    let what = [d.unescape(err.first_repetition(8)), d.unescape(err.component(3, 2)), d.unescape(err.component(3, 1))]
        .into_iter()
        .find(|s| !s.is_empty())?;
    // ERR-2 (ERL): segment id ^ sequence ^ field position ^ ...
    let (segment, field) = (err.component(2, 1), err.component(2, 3));
    Some(match (segment, field) {
        ("", _) => what,
        (segment, "") => format!("{what} (at {segment})"),
        (segment, field) => format!("{what} (at {segment}-{field})"),
    })
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSH: &str = "MSH|^~\\&|EHR|HOSP|VIGIL|WARD_7|20240601120001+0000||ACK^R01^ACK|A-77|P|2.6";

    #[test]
    fn application_accept() {
        let ack = parse_ack(&format!("{MSH}\rMSA|AA|VIGIL-0001\r")).unwrap();
        assert_eq!(
            ack,
            Ack { code: AckCode::AA, control_id: "VIGIL-0001".into(), text: None, error: None, error_code: None }
        );
        assert_eq!(ack.refusal(), None);
        assert!(ack.code.is_accept());
    }

    #[test]
    fn application_error_with_err_segments() {
        let reply = format!(
            "{MSH}\r\nMSA|AE|VIGIL-0002|Message rejected\r\n\
             ERR||PID^1^3^1|101^Required field missing^HL70357|E||||Patient identifier \\T\\ authority required\r\n\
             ERR||OBX^2|102^Data type error^HL70357|E\r\n"
        );
        let ack = parse_ack(&reply).unwrap();
        assert_eq!(ack.code, AckCode::AE);
        assert!(!ack.code.is_accept());
        assert_eq!(ack.control_id, "VIGIL-0002");
        assert_eq!(ack.text.as_deref(), Some("Message rejected"));
        assert_eq!(
            ack.error.as_deref(),
            Some("Patient identifier & authority required (at PID-3); Data type error (at OBX)")
        );
    }

    #[test]
    fn application_reject_with_newline_separators() {
        let ack = parse_ack(&format!("{MSH}\nMSA|AR|VIGIL-0003|Overloaded, try later\nERR|||207\n")).unwrap();
        assert_eq!(ack.code, AckCode::AR);
        assert_eq!(ack.text.as_deref(), Some("Overloaded, try later"));
        assert_eq!(ack.error.as_deref(), Some("207"), "ERR-3's code when there is no text");
    }

    #[test]
    fn a_refusal_is_the_messages_fault_the_configurations_or_passing() {
        let refusal = |reply: &str| parse_ack(&format!("{MSH}\r{reply}")).unwrap().refusal();
        assert_eq!(refusal("MSA|AE|X\rERR|||207"), Some(Refusal::Message), "AE is never retried");
        assert_eq!(refusal("MSA|AR|X"), Some(Refusal::Transient), "no code: try again");
        assert_eq!(refusal("MSA|AR|X\rERR|||207^Application internal error^HL70357"), Some(Refusal::Transient));
        assert_eq!(refusal("MSA|CR|X\rERR|||206"), Some(Refusal::Transient));
        for code in 200..=203 {
            assert_eq!(refusal(&format!("MSA|AR|X\rERR|||{code}^x^HL70357")), Some(Refusal::Configuration));
        }
        // Before v2.5 the code is ERR-1.4.
        assert_eq!(refusal("MSA|AR|X\rERR|MSH^1^12^203&Unsupported version id&HL70357"), Some(Refusal::Configuration));
        assert_eq!(parse_ack(&format!("{MSH}\rMSA|AR|X\rERR|MSH^1^9^200")).unwrap().error_code, Some(200));
    }

    #[test]
    fn enhanced_mode_commit_accept_is_an_accept() {
        assert!(parse_ack(&format!("{MSH}\rMSA|CA|X")).unwrap().code.is_accept());
        assert!(!parse_ack(&format!("{MSH}\rMSA|CR|X")).unwrap().code.is_accept());
        assert!(!parse_ack(&format!("{MSH}\rMSA|CE|X")).unwrap().code.is_accept());
    }

    #[test]
    fn declared_delimiters_are_honoured() {
        let reply = "MSH#*~\\&#EHR#HOSP#VIGIL#W#20240601120001##ACK#A-9#P#2.6\rMSA#AE#C-1#bad \\F\\ field\rERR##PID*1*3#101*Missing";
        let ack = parse_ack(reply).unwrap();
        assert_eq!(ack.control_id, "C-1");
        assert_eq!(ack.text.as_deref(), Some("bad # field"));
        assert_eq!(ack.error.as_deref(), Some("Missing (at PID-3)"));
    }

    #[test]
    fn malformed_replies_say_where() {
        let cases = [
            ("", AckError::MissingSegment { segment: "MSH" }),
            ("PID|||1\rMSA|AA|X", AckError::MissingSegment { segment: "MSH" }),
            ("MSH", AckError::InvalidField { segment: "MSH", field: 1, value: String::new() }),
            ("MSH|^|A", AckError::InvalidField { segment: "MSH", field: 2, value: "^".into() }),
            ("MSH|^^\\&|A", AckError::InvalidField { segment: "MSH", field: 2, value: "^^\\&".into() }),
            (
                "MSH|^~\\&|A|B|C|D|20240601||ORU^R01^ORU_R01|X|P|2.6\rMSA|AA|X",
                AckError::InvalidField { segment: "MSH", field: 9, value: "ORU^R01^ORU_R01".into() },
            ),
            (MSH, AckError::MissingSegment { segment: "MSA" }),
            (&*format!("{MSH}\rMSA||X"), AckError::MissingField { segment: "MSA", field: 1 }),
            (&*format!("{MSH}\rMSA|OK|X"), AckError::InvalidField { segment: "MSA", field: 1, value: "OK".into() }),
            (&*format!("{MSH}\rMSA|AA"), AckError::MissingField { segment: "MSA", field: 2 }),
        ];
        for (reply, expected) in cases {
            assert_eq!(parse_ack(reply), Err(expected.clone()), "{reply:?}");
        }
        assert_eq!(AckError::MissingField { segment: "MSA", field: 2 }.to_string(), "MSA-2 is empty");
    }
}
