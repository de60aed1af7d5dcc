//! HL7 v2 as bytes: the delimiters a message declares, its segments read tolerantly, escapes, and
//! MLLP framing. Shared by the HL7 v2 sink (ORU out, ACKs in) and the MLLP source (ORU in, ACKs out);
//! what the fields mean is theirs.

mod encoding;
mod frame;

pub use encoding::{Delimiters, EncodingError, Message, Segment, escape};
pub use frame::{Frame, FrameReader, frame};
