//! Cutting a byte stream into lines, in bounded memory.
//!
//! The reader reads large chunks into one reused buffer and hands out each complete
//! line as a slice of it: no copy and no allocation per line. A line longer than the
//! record size limit is not buffered: it is skipped up to its newline and reported as
//! [`Line::TooLarge`] with its first bytes, so a 10 GB line costs no more memory than a
//! short one.

use std::io::{self, Read};
use std::ops::ControlFlow;

use tenantflow_core::clock::now_ms;

/// Bytes read per call.
const CHUNK: usize = 1 << 20;
/// Bytes of an over-long line kept for its dead letter.
pub const TOO_LARGE_PREFIX: usize = 1024;

/// What the reader found.
#[derive(Debug)]
pub enum Line<'a> {
    /// A line within the limit, without its `\n` (and `\r`).
    Record(&'a [u8]),
    /// A line over the limit.
    TooLarge {
        /// Its first bytes.
        prefix: &'a [u8],
        /// Its full length in bytes.
        len: u64,
    },
}

/// A line with where and when it was read.
#[derive(Debug)]
pub struct LineEvent<'a> {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line's start in the stream.
    pub offset: u64,
    /// Wall-clock time of the read that completed the line, epoch milliseconds: the
    /// event time of records that carry none.
    pub arrival_ms: i64,
    /// The line.
    pub line: Line<'a>,
    /// The last line of a read that returned less than it asked for: the stream (a
    /// pipe, a terminal) had nothing more at that moment, and the next read may wait.
    /// A reader of such a stream hands on what it holds here, not only when its
    /// batches fill.
    pub last_of_read: bool,
}

/// How reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The stream ended: every line was given.
    EndOfInput,
    /// The line handler said to stop.
    Stopped,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The stream failed.
    #[error("read failed")]
    Io(#[source] io::Error),
    /// The line handler stopped the read.
    #[error("line handler failed")]
    Handler(#[source] E),
}

/// Cuts a stream into lines.
pub struct LineReader<R> {
    inner: R,
    max_record: usize,
    buf: Vec<u8>,
    start_offset: u64,
    start_number: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader of `inner` whose lines may be at most `max_record` bytes.
    pub fn new(inner: R, max_record: usize) -> Self {
        Self {
            inner,
            max_record,
            buf: Vec::new(),
            start_offset: 0,
            start_number: 1,
        }
    }

    /// Tells the reader that `inner` starts at byte `offset` of its stream, at line
    /// `number` (resuming from a checkpoint), so offsets and numbers stay the stream's.
    pub fn starting_at(mut self, offset: u64, number: u64) -> Self {
        self.start_offset = offset;
        self.start_number = number;
        self
    }

    /// Calls `on_line` for every line, in order, until the stream ends or `on_line`
    /// says to stop ([`ControlFlow::Break`]).
    ///
    /// # Errors
    /// A read error of the stream, or the first error of `on_line`.
    pub fn read_all<E>(
        &mut self,
        mut on_line: impl FnMut(LineEvent<'_>) -> Result<ControlFlow<()>, E>,
    ) -> Result<ReadEnd, ReadError<E>> {
        let max = self.max_record;
        self.buf.resize(CHUNK + max + 1, 0);
        let buf = &mut self.buf;
        let (mut start, mut end) = (0usize, 0usize);
        // Stream offset of buf[0], and the next line's number.
        let mut base: u64 = self.start_offset;
        let mut number: u64 = self.start_number;
        // An over-long line being skipped: (offset, prefix kept in `prefix`, length so far).
        let mut skipping: Option<(u64, u64)> = None;
        let mut prefix: Vec<u8> = Vec::new();
        loop {
            if buf.len() - end < CHUNK {
                buf.copy_within(start..end, 0);
                base += start as u64;
                end -= start;
                start = 0;
            }
            let asked = buf.len() - end;
            let n = loop {
                match self.inner.read(&mut buf[end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ReadError::Io(e)),
                }
            };
            let arrival_ms = now_ms();
            let short = n > 0 && n < asked;
            let mut scan = end;
            end += n;
            if let Some((offset, len)) = skipping {
                match memchr::memchr(b'\n', &buf[scan..end]) {
                    Some(i) => {
                        let total = len + i as u64;
                        let flow = on_line(LineEvent {
                            number,
                            offset,
                            arrival_ms,
                            line: Line::TooLarge {
                                prefix: &prefix,
                                len: total,
                            },
                            last_of_read: false,
                        })
                        .map_err(ReadError::Handler)?;
                        if flow.is_break() {
                            return Ok(ReadEnd::Stopped);
                        }
                        number += 1;
                        skipping = None;
                        start = scan + i + 1;
                        scan = start;
                    }
                    None if n == 0 => {
                        let flow = on_line(LineEvent {
                            number,
                            offset,
                            arrival_ms,
                            line: Line::TooLarge {
                                prefix: &prefix,
                                len,
                            },
                            last_of_read: false,
                        })
                        .map_err(ReadError::Handler)?;
                        return Ok(if flow.is_break() {
                            ReadEnd::Stopped
                        } else {
                            ReadEnd::EndOfInput
                        });
                    }
                    None => {
                        skipping = Some((offset, len + n as u64));
                        start = end;
                        continue;
                    }
                }
            }
            let last_nl = if short {
                memchr::memrchr(b'\n', &buf[scan..end]).map(|i| scan + i)
            } else {
                None
            };
            for i in memchr::memchr_iter(b'\n', &buf[scan..end]) {
                let nl = scan + i;
                if emit(
                    &buf[start..nl],
                    Emitted {
                        number,
                        offset: base + start as u64,
                        arrival_ms,
                        last_of_read: last_nl == Some(nl),
                    },
                    max,
                    &mut on_line,
                )?
                .is_break()
                {
                    return Ok(ReadEnd::Stopped);
                }
                number += 1;
                start = nl + 1;
            }
            if n == 0 {
                if start < end
                    && emit(
                        &buf[start..end],
                        Emitted {
                            number,
                            offset: base + start as u64,
                            arrival_ms,
                            last_of_read: false,
                        },
                        max,
                        &mut on_line,
                    )?
                    .is_break()
                {
                    return Ok(ReadEnd::Stopped);
                }
                return Ok(ReadEnd::EndOfInput);
            }
            if end - start > max {
                prefix.clear();
                prefix.extend_from_slice(&buf[start..start + TOO_LARGE_PREFIX.min(end - start)]);
                skipping = Some((base + start as u64, (end - start) as u64));
                start = end;
            }
        }
    }
}

/// Where and when a line was read.
struct Emitted {
    number: u64,
    offset: u64,
    arrival_ms: i64,
    last_of_read: bool,
}

fn emit<E>(
    raw: &[u8],
    at: Emitted,
    max: usize,
    on_line: &mut impl FnMut(LineEvent<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<ControlFlow<()>, ReadError<E>> {
    let Emitted {
        number,
        offset,
        arrival_ms,
        last_of_read,
    } = at;
    let mut bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
    if offset == 0 {
        // A UTF-8 byte-order mark at the start of the stream is not part of a record.
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    }
    let line = if bytes.len() > max {
        Line::TooLarge {
            prefix: &bytes[..TOO_LARGE_PREFIX.min(bytes.len())],
            len: bytes.len() as u64,
        }
    } else {
        Line::Record(bytes)
    };
    on_line(LineEvent {
        number,
        offset,
        arrival_ms,
        line,
        last_of_read,
    })
    .map_err(ReadError::Handler)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, to cut lines anywhere.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Record(u64, u64, Vec<u8>),
        TooLarge(u64, u64, usize, u64),
    }

    fn collect(data: &[u8], step: usize, max: usize) -> Vec<Seen> {
        let mut out = Vec::new();
        let end = LineReader::new(Trickle { data, step }, max)
            .read_all(|e| {
                out.push(match e.line {
                    Line::Record(b) => Seen::Record(e.number, e.offset, b.to_vec()),
                    Line::TooLarge { prefix, len } => {
                        Seen::TooLarge(e.number, e.offset, prefix.len(), len)
                    }
                });
                Ok::<_, ()>(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(end, ReadEnd::EndOfInput);
        out
    }

    #[test]
    fn the_last_line_of_a_short_read_says_so() {
        let data = b"a\nb\nc\nd";
        let mut reader = LineReader::new(Trickle { data, step: 5 }, 100);
        let mut seen = Vec::new();
        reader
            .read_all(|e| {
                let Line::Record(bytes) = e.line else {
                    panic!("a record");
                };
                seen.push((String::from_utf8_lossy(bytes).into_owned(), e.last_of_read));
                Ok::<_, ()>(ControlFlow::Continue(()))
            })
            .unwrap();
        // Reads of "a\nb\nc" and "\nd": the last complete line of each is marked; the
        // line the end of the stream completes is not (the reader ends there anyway).
        let want = [("a", false), ("b", true), ("c", true), ("d", false)];
        assert_eq!(seen, want.map(|(l, last)| (l.to_owned(), last)).to_vec());
    }

    #[test]
    fn the_handler_stops_reading_with_a_return_value() {
        for step in [1, 3, 1024] {
            let mut seen = Vec::new();
            let end = LineReader::new(
                Trickle {
                    data: b"a\nb\nc\nd",
                    step,
                },
                64,
            )
            .read_all(|e| {
                seen.push(e.number);
                Ok::<_, ()>(if e.number == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })
            .unwrap();
            assert_eq!((end, seen), (ReadEnd::Stopped, vec![1, 2]), "step {step}");
        }
    }

    #[test]
    fn lines_numbers_and_offsets_whatever_the_read_sizes() {
        let data = b"one\r\ntwo\n\nthree";
        let want = vec![
            Seen::Record(1, 0, b"one".to_vec()),
            Seen::Record(2, 5, b"two".to_vec()),
            Seen::Record(3, 9, b"".to_vec()),
            Seen::Record(4, 10, b"three".to_vec()),
        ];
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(collect(data, step, 64), want, "step {step}");
        }
    }

    #[test]
    fn over_long_lines_are_reported_not_buffered() {
        let long = vec![b'x'; 3 * CHUNK + 17];
        let mut data = b"ok\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\nafter\n");
        data.extend_from_slice(&long);
        let got = collect(&data, CHUNK, 1000);
        let second = 3 + long.len() as u64 + 1;
        assert_eq!(
            got,
            vec![
                Seen::Record(1, 0, b"ok".to_vec()),
                Seen::TooLarge(2, 3, TOO_LARGE_PREFIX, long.len() as u64),
                Seen::Record(3, second, b"after".to_vec()),
                Seen::TooLarge(4, second + 6, TOO_LARGE_PREFIX, long.len() as u64),
            ]
        );
    }

    #[test]
    fn a_line_just_over_the_limit_in_one_read_is_too_large() {
        let got = collect(b"12345\n123\n", 100, 4);
        assert_eq!(
            got,
            vec![
                Seen::TooLarge(1, 0, 5, 5),
                Seen::Record(2, 6, b"123".to_vec())
            ]
        );
    }
}
