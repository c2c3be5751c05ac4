//! Bounded capture of an agent's output, and the `ocf-exit-reason:` scanner.
//! Pure: bytes in, bounded buffers out.
//!
//! An agent may print gigabytes; [`Capture`] keeps the first `head` and the
//! last `tail` bytes and counts the rest, so memory per stream never exceeds
//! `head + tail`. [`ReasonScanner`] sees every byte of stderr (not only what
//! is kept) and finds the last `ocf-exit-reason:` on any line, as Pacemaker's
//! executor does (`parse_exit_reason_from_stderr`): the reason is the text
//! after the last occurrence of the prefix, up to the end of its line; an
//! empty last reason means none. Lines are scanned up to
//! [`MAX_REASON_LINE`] bytes; a prefix further into a longer line is not
//! seen.

use serde::Serialize;

/// The prefix agents print on stderr before their exit reason
/// (`OCF_EXIT_REASON_PREFIX`).
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// How much of each line of stderr the exit-reason scanner looks at.
pub const MAX_REASON_LINE: usize = 4096;

/// How much of a stream to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Bytes kept from the start.
    pub head: usize,
    /// Bytes kept from the end.
    pub tail: usize,
}

impl Default for CaptureLimits {
    /// 32 KiB from the start and 32 KiB from the end of each stream.
    fn default() -> Self {
        CaptureLimits {
            head: 32 << 10,
            tail: 32 << 10,
        }
    }
}

/// A stream being captured: head, a ring buffer for the tail, and a count.
#[derive(Debug)]
pub struct Capture {
    limits: CaptureLimits,
    head: Vec<u8>,
    /// Allocated (to `limits.tail`) on first use.
    ring: Vec<u8>,
    /// Where the next tail byte goes in `ring`.
    pos: usize,
    /// Valid bytes in `ring` (≤ `limits.tail`).
    len: usize,
    total: u64,
}

impl Capture {
    /// An empty capture.
    pub fn new(limits: CaptureLimits) -> Capture {
        Capture {
            limits,
            head: Vec::new(),
            ring: Vec::new(),
            pos: 0,
            len: 0,
            total: 0,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.limits.head {
            let n = (self.limits.head - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        let cap = self.limits.tail;
        if data.is_empty() || cap == 0 {
            return;
        }
        if self.ring.len() != cap {
            self.ring = vec![0; cap];
        }
        if data.len() >= cap {
            data = &data[data.len() - cap..];
        }
        // Copy in at most two pieces around the end of the ring.
        let first = (cap - self.pos).min(data.len());
        self.ring[self.pos..self.pos + first].copy_from_slice(&data[..first]);
        let rest = data.len() - first;
        self.ring[..rest].copy_from_slice(&data[first..]);
        self.pos = (self.pos + data.len()) % cap;
        self.len = (self.len + data.len()).min(cap);
    }

    /// The bytes pushed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// What was kept.
    pub fn finish(self) -> Captured {
        let cap = self.ring.len();
        let mut tail = Vec::with_capacity(self.len);
        if self.len > 0 {
            let start = (self.pos + cap - self.len) % cap;
            if start + self.len <= cap {
                tail.extend_from_slice(&self.ring[start..start + self.len]);
            } else {
                tail.extend_from_slice(&self.ring[start..]);
                tail.extend_from_slice(&self.ring[..self.pos]);
            }
        }
        Captured {
            head: self.head,
            tail,
            total: self.total,
        }
    }
}

/// A captured stream: the first and last bytes, and how many there were.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captured {
    /// The first bytes (up to the head limit).
    pub head: Vec<u8>,
    /// The last bytes after the head (up to the tail limit).
    pub tail: Vec<u8>,
    /// Every byte the stream carried.
    pub total: u64,
}

impl Captured {
    /// Bytes neither in `head` nor in `tail`.
    pub fn omitted(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// Nothing was dropped: `head` followed by `tail` is the whole stream.
    pub fn is_complete(&self) -> bool {
        self.omitted() == 0
    }

    /// Whether the stream was empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kept text (invalid UTF-8 replaced), with a marker line where
    /// bytes were omitted.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if !self.is_complete() {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&format!("[... {} bytes omitted ...]\n", self.omitted()));
        }
        s.push_str(&String::from_utf8_lossy(&self.tail));
        s
    }
}

impl Serialize for Captured {
    /// `{"text": "...", "total_bytes": n, "omitted_bytes": m}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Captured", 3)?;
        st.serialize_field("text", &self.text())?;
        st.serialize_field("total_bytes", &self.total)?;
        st.serialize_field("omitted_bytes", &self.omitted())?;
        st.end()
    }
}

/// Finds the last `ocf-exit-reason:` in a stream fed in arbitrary chunks.
#[derive(Debug, Default)]
pub struct ReasonScanner {
    line: Vec<u8>,
    reason: Option<Vec<u8>>,
}

impl ReasonScanner {
    /// A scanner that has seen nothing.
    pub fn new() -> ReasonScanner {
        ReasonScanner::default()
    }

    /// Feeds the next bytes of stderr.
    pub fn push(&mut self, data: &[u8]) {
        let mut rest = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.append(&rest[..i]);
            self.end_line();
            rest = &rest[i + 1..];
        }
        self.append(rest);
    }

    fn append(&mut self, part: &[u8]) {
        let room = MAX_REASON_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..room.min(part.len())]);
    }

    fn end_line(&mut self) {
        let p = EXIT_REASON_PREFIX.as_bytes();
        if let Some(i) = self.line.windows(p.len()).rposition(|w| w == p) {
            self.reason = Some(self.line[i + p.len()..].to_vec());
        }
        self.line.clear();
    }

    /// The reason, once the stream has ended: the text after the last
    /// prefix, trimmed; `None` if there was none or it was empty.
    pub fn finish(mut self) -> Option<String> {
        if !self.line.is_empty() {
            self.end_line();
        }
        let r = String::from_utf8_lossy(&self.reason?).trim().to_string();
        (!r.is_empty()).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn capture(limits: CaptureLimits, chunks: &[Vec<u8>]) -> Captured {
        let mut c = Capture::new(limits);
        for ch in chunks {
            c.push(ch);
        }
        c.finish()
    }

    #[test]
    fn small_output_is_kept_whole() {
        let c = capture(
            CaptureLimits { head: 8, tail: 8 },
            &[b"hello ".to_vec(), b"world".to_vec()],
        );
        assert_eq!(c.head, b"hello wo");
        assert_eq!(c.tail, b"rld");
        assert!(c.is_complete());
        assert_eq!(c.text(), "hello world");
    }

    #[test]
    fn large_output_keeps_both_ends() {
        let data: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let c = capture(
            CaptureLimits { head: 10, tail: 5 },
            &data.chunks(333).map(<[u8]>::to_vec).collect::<Vec<_>>(),
        );
        assert_eq!(c.head, &data[..10]);
        assert_eq!(c.tail, &data[data.len() - 5..]);
        assert_eq!(c.total, 10_000);
        assert_eq!(c.omitted(), 10_000 - 15);
        assert!(c.text().contains("[... 9985 bytes omitted ...]"));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["total_bytes"], 10_000);
        assert_eq!(json["omitted_bytes"], 9985);
    }

    proptest! {
        /// Against a model: the whole stream kept in memory.
        #[test]
        fn capture_matches_model(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40),
            head in 0usize..200,
            tail in 0usize..200,
        ) {
            let all: Vec<u8> = chunks.concat();
            let c = capture(CaptureLimits { head, tail }, &chunks);
            let h = head.min(all.len());
            let t = tail.min(all.len() - h);
            prop_assert_eq!(&c.head[..], &all[..h]);
            prop_assert_eq!(&c.tail[..], &all[all.len() - t..]);
            prop_assert_eq!(c.total, all.len() as u64);
            prop_assert_eq!(c.omitted(), (all.len() - h - t) as u64);
        }

        /// However stderr is split into reads, the same reason comes out.
        #[test]
        fn reason_is_independent_of_chunking(
            lines in prop::collection::vec("[a-z :-]{0,30}", 0..8),
            reason_at in prop::option::of(0usize..8),
            cuts in prop::collection::vec(0usize..400, 0..10),
        ) {
            let mut lines = lines;
            if let Some(i) = reason_at {
                let i = i.min(lines.len());
                lines.insert(i, "ocf-exit-reason:the disk is gone".to_string());
            }
            let text = lines.join("\n");
            let whole = {
                let mut s = ReasonScanner::new();
                s.push(text.as_bytes());
                s.finish()
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut s = ReasonScanner::new();
            let mut prev = 0;
            for c in cuts {
                s.push(&text.as_bytes()[prev..c]);
                prev = c;
            }
            s.push(&text.as_bytes()[prev..]);
            prop_assert_eq!(s.finish(), whole);
        }
    }

    fn reason(s: &str) -> Option<String> {
        let mut r = ReasonScanner::new();
        r.push(s.as_bytes());
        r.finish()
    }

    #[test]
    fn exit_reason_rules() {
        assert_eq!(reason(""), None);
        assert_eq!(reason("no reason here\n"), None);
        assert_eq!(
            reason("INFO: x\nocf-exit-reason:Couldn't mount /dev/sdb1\nmore\n").as_deref(),
            Some("Couldn't mount /dev/sdb1")
        );
        // The last one wins, also when it is in the middle of a line.
        assert_eq!(
            reason("ocf-exit-reason:first\nERROR: ocf-exit-reason:second\n").as_deref(),
            Some("second")
        );
        // No trailing newline.
        assert_eq!(
            reason("ocf-exit-reason:at the end").as_deref(),
            Some("at the end")
        );
        // An empty last reason means none, as in Pacemaker.
        assert_eq!(reason("ocf-exit-reason:first\nocf-exit-reason:\n"), None);
        // Past the scanned part of a very long line it is not seen.
        let long = format!("{}ocf-exit-reason:hidden\n", "x".repeat(MAX_REASON_LINE));
        assert_eq!(reason(&long), None);
    }
}
