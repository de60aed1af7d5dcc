//! MLLP framing: `<VT> message <FS><CR>`. Kept apart from parsing, so the codec only finds message
//! boundaries and bounds memory; what the bytes mean is the parser's business.

use bytes::{Buf, Bytes, BytesMut};

/// Start of block.
const SB: u8 = 0x0B;
/// End of block, followed by a carriage return.
const EB: u8 = 0x1C;
const CR: u8 = 0x0D;

/// One framed message, whole or, past the size limit, what is kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message within the limit (the frame's content, without the block characters).
    Message(Bytes),
    /// A message over the limit: its first bytes, its size and its hash. The rest was read and
    /// discarded, so the next frame starts clean and memory stays bounded.
    Oversized {
        /// The first `keep` bytes.
        head: Bytes,
        /// Its whole size.
        bytes: usize,
        /// blake3 of the whole content, hex.
        blake3: String,
    },
}

/// Frames `message` for sending.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(SB);
    out.extend_from_slice(message);
    out.extend_from_slice(&[EB, CR]);
    out
}

/// Finds frames in what a connection delivers, holding at most `max` bytes of one message.
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    keep: usize,
    /// Bytes after the start block already searched for the end, so a message arriving in many
    /// reads is scanned once.
    searched: usize,
    /// A frame over the limit being read past: what is kept of it so far.
    skipping: Option<Skipped>,
}

#[derive(Debug)]
struct Skipped {
    head: BytesMut,
    bytes: usize,
    hasher: blake3::Hasher,
}

impl FrameReader {
    /// A reader for messages of at most `max` bytes; of a larger one the first `keep` are kept.
    pub fn new(max: usize, keep: usize) -> Self {
        FrameReader { max, keep: keep.min(max), searched: 0, skipping: None }
    }

    /// Takes the next complete frame out of `buffer`, or `None` when more bytes are needed. Bytes
    /// before a start block are noise (keep-alives, a stray newline) and are dropped.
    pub fn take(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        if self.skipping.is_some() {
            return self.skip(buffer);
        }
        if self.searched == 0 {
            match buffer.iter().position(|&b| b == SB) {
                Some(start) => buffer.advance(start),
                None => {
                    buffer.clear();
                    return None;
                }
            }
        }
        let from = self.searched.max(1);
        let found = buffer[from..].windows(2).position(|w| w == [EB, CR]).map(|i| from + i);
        self.searched = match found {
            Some(_) => 0,
            None => buffer.len().saturating_sub(1).max(1),
        };
        match found {
            Some(end) if end - 1 <= self.max => {
                let frame = buffer.split_to(end + 2).freeze();
                Some(Frame::Message(frame.slice(1..end)))
            }
            // Over the limit, ended or not yet: from here on it is only counted and hashed.
            Some(_) => self.start_skipping(buffer),
            None if buffer.len() - 1 > self.max => self.start_skipping(buffer),
            None => None,
        }
    }

    /// Starts reading through an oversized frame (`buffer` starts at its start block).
    fn start_skipping(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        self.searched = 0;
        buffer.advance(1);
        self.skipping = Some(Skipped { head: BytesMut::new(), bytes: 0, hasher: blake3::Hasher::new() });
        self.skip(buffer)
    }

    /// Reads on through an oversized frame; at its end, what is kept of it.
    fn skip(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        let skipped = self.skipping.as_mut()?;
        let (content, done) = match buffer.windows(2).position(|w| w == [EB, CR]) {
            Some(end) => (end, true),
            // A final EB may be the first half of the end: keep it for the next read.
            None if buffer.last() == Some(&EB) => (buffer.len() - 1, false),
            None => (buffer.len(), false),
        };
        let chunk = buffer.split_to(content);
        skipped.hasher.update(&chunk);
        skipped.bytes += chunk.len();
        let room = self.keep.saturating_sub(skipped.head.len());
        skipped.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        if !done {
            return None;
        }
        buffer.advance(2);
        let skipped = self.skipping.take()?;
        Some(Frame::Oversized {
            head: skipped.head.freeze(),
            bytes: skipped.bytes,
            blake3: skipped.hasher.finalize().to_hex().to_string(),
        })
    }

    /// Bytes of a message held or counted so far: how much of a frame has arrived.
    pub fn pending(&self, buffer: &BytesMut) -> usize {
        self.skipping.as_ref().map_or(0, |s| s.bytes) + buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_across_reads_and_noise_is_dropped() {
        let mut reader = FrameReader::new(1024, 16);
        let mut buffer = BytesMut::from(&b"\r\n\x0bMSH|A\x1c"[..]);
        assert_eq!(reader.take(&mut buffer), None);
        buffer.extend_from_slice(b"\r\x0bMSH|B\x1c\r");
        assert_eq!(reader.take(&mut buffer), Some(Frame::Message(Bytes::from_static(b"MSH|A"))));
        assert_eq!(reader.take(&mut buffer), Some(Frame::Message(Bytes::from_static(b"MSH|B"))));
        assert_eq!(reader.take(&mut buffer), None);
        assert!(buffer.is_empty());
        assert_eq!(frame(b"MSH|A"), b"\x0bMSH|A\x1c\r");
    }

    #[test]
    fn an_oversized_frame_is_kept_as_its_head_size_and_hash_and_the_next_one_is_read_whole() {
        let big: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
        let mut reader = FrameReader::new(40, 8);
        let mut buffer = BytesMut::new();
        let mut wire = frame(&big);
        wire.extend(frame(b"MSH|next"));
        // Delivered in small pieces, with the end block split across two reads.
        let mut frames = Vec::new();
        for piece in wire.chunks(7) {
            buffer.extend_from_slice(piece);
            assert!(buffer.len() <= 48, "at most the limit and one read are held");
            while let Some(f) = reader.take(&mut buffer) {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            [
                Frame::Oversized {
                    head: Bytes::copy_from_slice(&big[..8]),
                    bytes: 100,
                    blake3: blake3::hash(&big).to_hex().to_string()
                },
                Frame::Message(Bytes::from_static(b"MSH|next")),
            ]
        );
    }
}
