//! Reading and writing HL7 v2's delimited text.
//!
//! A message's own MSH-1/MSH-2 give its delimiters, so a peer with unusual encoding characters is
//! read correctly. Segments may end with `\r`, `\n` or `\r\n`: peers differ.

use thiserror::Error;

/// Why text is not an HL7 v2 message at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodingError {
    /// The first segment is not MSH.
    #[error("the message does not start with an MSH segment")]
    NoHeader,
    /// MSH-1, the field separator, is missing or a letter, digit or space.
    #[error("MSH-1 (the field separator) is {0:?}, expected a punctuation character such as |")]
    FieldSeparator(String),
    /// MSH-2 does not declare 2 to 5 distinct encoding characters.
    #[error("MSH-2 (the encoding characters) is {0:?}, expected e.g. ^~\\&")]
    EncodingCharacters(String),
}

/// The delimiters a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Between fields (MSH-1).
    pub field: char,
    /// Between components.
    pub component: char,
    /// Between repetitions of a field.
    pub repetition: char,
    /// Starts and ends an escape sequence, if declared.
    pub escape: Option<char>,
    /// Between subcomponents, if declared.
    pub subcomponent: Option<char>,
}

impl Delimiters {
    /// The delimiters an MSH segment declares.
    pub fn from_header(header: &str) -> Result<Self, EncodingError> {
        let mut chars = header.chars().skip(3);
        let field = chars.next().filter(|c| !c.is_alphanumeric() && !c.is_whitespace());
        let Some(field) = field else {
            return Err(EncodingError::FieldSeparator(header.chars().skip(3).take(1).collect()));
        };
        let encoding: Vec<char> = chars.take_while(|&c| c != field).collect();
        let invalid = || EncodingError::EncodingCharacters(encoding.iter().collect());
        if !(2..=5).contains(&encoding.len()) {
            return Err(invalid());
        }
        let mut all = encoding.clone();
        all.push(field);
        all.sort_unstable();
        all.dedup();
        if all.len() != encoding.len() + 1 || encoding.iter().any(|c| c.is_alphanumeric() || c.is_whitespace()) {
            return Err(invalid());
        }
        Ok(Delimiters {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding.get(2).copied(),
            subcomponent: encoding.get(3).copied(),
        })
    }

    /// Resolves `\F\ \S\ \T\ \R\ \E\` and `\Xhh..\`; any other escape sequence is kept as sent, so
    /// nothing the peer wrote is silently lost.
    pub fn unescape(&self, text: &str) -> String {
        let Some(esc) = self.escape else { return text.to_string() };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(esc) {
            out.push_str(&rest[..start]);
            let after = &rest[start + esc.len_utf8()..];
            let Some(end) = after.find(esc) else {
                // An unterminated sequence is text.
                out.push_str(&rest[start..]);
                return out;
            };
            let sequence = &after[..end];
            match sequence {
                "F" => out.push(self.field),
                "S" => out.push(self.component),
                "T" => out.extend(self.subcomponent),
                "R" => out.push(self.repetition),
                "E" => out.push(esc),
                _ => match sequence.strip_prefix('X').and_then(decode_hex) {
                    Some(decoded) => out.push_str(&decoded),
                    None => {
                        out.push(esc);
                        out.push_str(sequence);
                        out.push(esc);
                    }
                },
            }
            rest = &after[end + esc.len_utf8()..];
        }
        out.push_str(rest);
        out
    }
}

fn decode_hex(hex: &str) -> Option<String> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// Escapes the delimiters of `|^~\&` (and line breaks, which end a segment at many receivers) so
/// free text stays inside its field or component.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' => out.push_str("\\X0D\\"),
            '\n' => out.push_str("\\X0A\\"),
            c => out.push(c),
        }
    }
    out
}

/// One received segment, still escaped; `field(n)` is `ID-n` as numbered in the standard, for MSH
/// too.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    fields: Vec<&'a str>,
    delimiters: Delimiters,
}

impl<'a> Segment<'a> {
    /// Splits one segment's text with the message's delimiters.
    pub fn parse(line: &'a str, delimiters: &Delimiters) -> Self {
        let mut fields: Vec<&str> = line.split(delimiters.field).collect();
        if fields[0] == "MSH" {
            // MSH-1 is the separator itself; keep the numbering uniform.
            fields.insert(1, "");
        }
        Segment { fields, delimiters: *delimiters }
    }

    /// The segment id: `MSH`, `PID`, `OBX`...
    pub fn id(&self) -> &'a str {
        self.fields[0]
    }

    /// Field `n`, raw (all repetitions, escaped).
    pub fn field(&self, n: usize) -> &'a str {
        self.fields.get(n).copied().unwrap_or("")
    }

    /// The repetitions of field `n`; an empty field has none.
    pub fn repetitions(&self, n: usize) -> impl Iterator<Item = &'a str> {
        let field = self.field(n);
        field.split(self.delimiters.repetition).filter(move |_| !field.is_empty())
    }

    /// The first repetition of field `n`.
    pub fn first_repetition(&self, n: usize) -> &'a str {
        self.field(n).split(self.delimiters.repetition).next().unwrap_or("")
    }

    /// Component `c` (1-based) of the first repetition of field `n`, raw.
    pub fn component(&self, n: usize, c: usize) -> &'a str {
        component(self.first_repetition(n), c, &self.delimiters)
    }

    /// Component `c` (1-based) of the first repetition of field `n`, unescaped and trimmed.
    pub fn text(&self, n: usize, c: usize) -> String {
        self.delimiters.unescape(self.component(n, c)).trim().to_string()
    }
}

/// Component `c` (1-based) of one repetition.
pub fn component<'a>(repetition: &'a str, c: usize, d: &Delimiters) -> &'a str {
    repetition.split(d.component).nth(c - 1).unwrap_or("")
}

/// A whole message: its delimiters and its segments in order.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// What MSH-1 and MSH-2 declare.
    pub delimiters: Delimiters,
    /// Every non-blank segment, MSH first.
    pub segments: Vec<Segment<'a>>,
}

impl<'a> Message<'a> {
    /// Splits a message (without MLLP framing) into segments with the delimiters it declares.
    pub fn parse(text: &'a str) -> Result<Message<'a>, EncodingError> {
        let mut lines = text.split(['\r', '\n']).filter(|line| !line.trim().is_empty());
        let header = lines.next().filter(|line| line.starts_with("MSH")).ok_or(EncodingError::NoHeader)?;
        let delimiters = Delimiters::from_header(header)?;
        let segments = std::iter::once(header).chain(lines).map(|line| Segment::parse(line, &delimiters)).collect();
        Ok(Message { delimiters, segments })
    }

    /// The MSH segment.
    pub fn header(&self) -> &Segment<'a> {
        &self.segments[0]
    }

    /// The first segment with this id.
    pub fn first(&self, id: &str) -> Option<&Segment<'a>> {
        self.segments.iter().find(|s| s.id() == id)
    }

    /// Component `c` of a repetition, unescaped.
    pub fn unescaped(&self, repetition: &str, c: usize) -> String {
        self.delimiters.unescape(component(repetition, c, &self.delimiters)).trim().to_string()
    }

    /// Subcomponent `s` (1-based) of a raw component, unescaped.
    pub fn subcomponent(&self, component: &str, s: usize) -> String {
        let part = match self.delimiters.subcomponent {
            Some(sep) => component.split(sep).nth(s - 1).unwrap_or(""),
            None if s == 1 => component,
            None => "",
        };
        self.delimiters.unescape(part).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_reverses_escape() {
        let d = Delimiters::from_header("MSH|^~\\&|").unwrap();
        let text = "a|b^c&d~e\\f\r\ng é";
        assert_eq!(d.unescape(&escape(text)), text);
        assert_eq!(d.unescape("\\H\\bold\\N\\ and \\X\\ and trailing \\"), "\\H\\bold\\N\\ and \\X\\ and trailing \\");
    }

    #[test]
    fn a_message_is_split_with_its_own_delimiters() {
        let text = "MSH#*~\\&#GW#WARD#VIGIL\r\nPID###MRN-1*X*PI~A\\F\\B\nOBX#1#NM#150456*MDC_PULS_OXIM_SAT_O2*MDC\r";
        let message = Message::parse(text).unwrap();
        assert_eq!(message.segments.len(), 3);
        assert_eq!(message.header().field(3), "GW");
        let pid = message.first("PID").unwrap();
        assert_eq!(pid.repetitions(3).collect::<Vec<_>>(), ["MRN-1*X*PI", "A\\F\\B"]);
        assert_eq!(message.unescaped(pid.repetitions(3).nth(1).unwrap(), 1), "A#B");
        assert_eq!(message.first("OBX").unwrap().text(3, 1), "150456");
        assert_eq!(pid.repetitions(9).count(), 0);
    }

    #[test]
    fn what_is_not_hl7_says_why() {
        assert_eq!(Message::parse("PID|1").unwrap_err(), EncodingError::NoHeader);
        assert_eq!(Message::parse("MSH1^~").unwrap_err(), EncodingError::FieldSeparator("1".into()));
        assert_eq!(Message::parse("MSH|^^\\&|A").unwrap_err(), EncodingError::EncodingCharacters("^^\\&".into()));
    }
}
