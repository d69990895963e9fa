//! Wyoming framing: a sans-I/O [`Decoder`], an async [`read_frame`] and the encoder.
//!
//! On the wire every event is
//!
//! ```text
//! {"type": "...", "data": {...}?, "data_length": N?, "payload_length": M?, "version": "..."?}\n
//! <N bytes: a JSON object merged over "data"> (only if data_length > 0)
//! <M bytes: binary payload, e.g. PCM audio>    (only if payload_length > 0)
//! ```
//!
//! Readers accept data inline in the header, in the separate block, or both (the block's
//! keys win, a shallow merge as in the reference `dict.update`). Writers always put data in
//! the separate block, as the reference implementation has done since 1.x, and add
//! `"version"`.
//!
//! Both readers are strict where the reference is lax: a length that is not a
//! non-negative integer, a `type` that is not a non-empty string, a `data` that is neither
//! an object nor `null`, or a data block that is not a JSON object is an error rather than
//! silently ignored, and every part is bounded by [`Limits`].

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::WyomingError;

/// The protocol version written in the `version` field of every header: the version of
/// the reference Python package this implementation was checked against.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// Default for [`Limits::max_header_len`]: 64 KiB.
pub const DEFAULT_MAX_HEADER_LEN: usize = 64 * 1024;
/// Default for [`Limits::max_data_len`]: 1 MiB.
pub const DEFAULT_MAX_DATA_LEN: usize = 1024 * 1024;
/// Default for [`Limits::max_payload_len`]: 4 MiB (over two minutes of 16 kHz mono audio).
pub const DEFAULT_MAX_PAYLOAD_LEN: usize = 4 * 1024 * 1024;

/// One Wyoming event as framed on the wire, before typing (see [`super::event::Event`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// The event `type`, e.g. `"audio-chunk"`.
    pub kind: String,
    /// The event data: inline `data` merged with the data block.
    pub data: Map<String, Value>,
    /// The binary payload; `None` when `payload_length` was absent or zero.
    pub payload: Option<Vec<u8>>,
}

impl Frame {
    /// A frame of this type with no data and no payload.
    pub fn new(kind: impl Into<String>) -> Frame {
        Frame {
            kind: kind.into(),
            data: Map::new(),
            payload: None,
        }
    }

    /// A frame of this type with data and no payload.
    pub fn with_data(kind: impl Into<String>, data: Map<String, Value>) -> Frame {
        Frame {
            kind: kind.into(),
            data,
            payload: None,
        }
    }
}

/// Upper bounds on the parts of a frame, checked before anything is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest header line, in bytes, not counting its `\n`.
    pub max_header_len: usize,
    /// Largest `data_length`.
    pub max_data_len: usize,
    /// Largest `payload_length`.
    pub max_payload_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_data_len: DEFAULT_MAX_DATA_LEN,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
        }
    }
}

/// A parsed header line: what follows it and how long it is.
#[derive(Debug)]
struct Header {
    kind: String,
    data: Map<String, Value>,
    data_len: usize,
    payload_len: usize,
}

/// Parses one header line (without its `\n`).
fn parse_header(line: &[u8], limits: &Limits) -> Result<Header, WyomingError> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| WyomingError::Malformed(format!("header is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(WyomingError::Malformed(
            "header is not a JSON object".to_owned(),
        ));
    };
    let kind = match obj.remove("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind,
        Some(Value::String(_)) => {
            return Err(WyomingError::Malformed("\"type\" is empty".to_owned()));
        }
        Some(_) => {
            return Err(WyomingError::Malformed(
                "\"type\" is not a string".to_owned(),
            ));
        }
        None => return Err(WyomingError::Malformed("missing \"type\"".to_owned())),
    };
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(_) => {
            return Err(WyomingError::Malformed(
                "\"data\" is not a JSON object".to_owned(),
            ));
        }
    };
    let data_len = length_field(&obj, "data_length", "data block", limits.max_data_len)?;
    let payload_len = length_field(&obj, "payload_length", "payload", limits.max_payload_len)?;
    Ok(Header {
        kind,
        data,
        data_len,
        payload_len,
    })
}

/// Reads `data_length` / `payload_length`: absent or `null` is 0, anything but a
/// non-negative integer is malformed, more than `max` is too large.
fn length_field(
    obj: &Map<String, Value>,
    key: &str,
    what: &'static str,
    max: usize,
) -> Result<usize, WyomingError> {
    let number = match obj.get(key) {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(number)) => number,
        Some(other) => {
            return Err(WyomingError::Malformed(format!(
                "\"{key}\" must be a non-negative integer, not {}",
                json_kind(other)
            )));
        }
    };
    let Some(len) = number.as_u64() else {
        return Err(WyomingError::Malformed(format!(
            "\"{key}\" must be a non-negative integer, not {number}"
        )));
    };
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(WyomingError::TooLarge {
            what,
            len,
            max: max as u64,
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Merges a data block over the inline data (block keys win).
fn merge_data_block(data: &mut Map<String, Value>, block: &[u8]) -> Result<(), WyomingError> {
    let value: Value = serde_json::from_slice(block)
        .map_err(|e| WyomingError::Malformed(format!("data block is not valid JSON: {e}")))?;
    let Value::Object(block) = value else {
        return Err(WyomingError::Malformed(
            "data block is not a JSON object".to_owned(),
        ));
    };
    data.extend(block);
    Ok(())
}

fn finish_frame(
    header: Header,
    data_block: Option<&[u8]>,
    payload: Option<Vec<u8>>,
) -> Result<Frame, WyomingError> {
    let mut data = header.data;
    if let Some(block) = data_block {
        merge_data_block(&mut data, block)?;
    }
    Ok(Frame {
        kind: header.kind,
        data,
        payload,
    })
}

/// A sans-I/O decoder: feed it bytes as they arrive, take frames out.
///
/// ```
/// use serena::wyoming::codec::{Decoder, Limits};
///
/// let mut decoder = Decoder::new(Limits::default());
/// assert!(decoder.push(b"{\"type\": \"ping\", \"data\": {\"te").unwrap().is_none());
/// let frame = decoder.push(b"xt\": \"hi\"}}\n").unwrap().unwrap();
/// assert_eq!(frame.kind, "ping");
/// assert_eq!(frame.data["text"], "hi");
/// assert!(decoder.finish().is_ok());
/// ```
///
/// After an error the decoder stays failed: the stream has lost its framing.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Start of the bytes not yet consumed.
    pos: usize,
    /// Bytes after `pos` already searched for the header's `\n`.
    scanned: usize,
    /// The header of the frame whose data/payload is awaited.
    pending: Option<Header>,
    failed: bool,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            pending: None,
            failed: false,
        }
    }

    /// Appends bytes to the internal buffer without decoding.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Feeds `bytes` and returns the next complete frame, if any.
    ///
    /// `bytes` may hold several frames: call [`Decoder::next_frame`] until it returns
    /// `Ok(None)` to take the rest.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Frame>, WyomingError> {
        self.feed(bytes);
        self.next_frame()
    }

    /// Returns the next complete frame from the bytes fed so far, or `Ok(None)` when more
    /// bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WyomingError> {
        if self.failed {
            return Err(WyomingError::Malformed(
                "the stream failed to decode earlier".to_owned(),
            ));
        }
        let result = self.decode();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Call at end of input: an error if a frame was cut off (or the decoder had failed).
    pub fn finish(&self) -> Result<(), WyomingError> {
        if self.failed {
            return Err(WyomingError::Malformed(
                "the stream failed to decode earlier".to_owned(),
            ));
        }
        if self.pending.is_some() || self.pos < self.buf.len() {
            return Err(WyomingError::Closed);
        }
        Ok(())
    }

    /// Bytes fed but not yet returned as part of a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn decode(&mut self) -> Result<Option<Frame>, WyomingError> {
        if self.pending.is_none() {
            let avail = self.buf.get(self.pos..).unwrap_or_default();
            let from = self.scanned.min(avail.len());
            let newline = avail
                .get(from..)
                .unwrap_or_default()
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| from + i);
            let max = self.limits.max_header_len;
            let Some(end) = newline else {
                self.scanned = avail.len();
                if avail.len() > max {
                    return Err(header_too_large(avail.len(), max));
                }
                return Ok(None);
            };
            if end > max {
                return Err(header_too_large(end, max));
            }
            let header = parse_header(avail.get(..end).unwrap_or_default(), &self.limits)?;
            self.pos += end + 1;
            self.scanned = 0;
            self.pending = Some(header);
        }
        let Some(header) = self.pending.as_ref() else {
            return Ok(None);
        };
        let (data_len, payload_len) = (header.data_len, header.payload_len);
        // Both are bounded by the limits, so the sum cannot overflow in practice.
        let needed = data_len.saturating_add(payload_len);
        if self.buffered_len() < needed {
            return Ok(None);
        }
        let Some(header) = self.pending.take() else {
            return Ok(None);
        };
        let body = self
            .buf
            .get(self.pos..self.pos + needed)
            .unwrap_or_default();
        let (block, payload) = body.split_at(data_len.min(body.len()));
        let block = (data_len > 0).then_some(block);
        let payload = (payload_len > 0).then(|| payload.to_vec());
        let frame = finish_frame(header, block, payload);
        self.pos += needed;
        frame.map(Some)
    }
}

fn header_too_large(len: usize, max: usize) -> WyomingError {
    WyomingError::TooLarge {
        what: "header line",
        len: len as u64,
        max: max as u64,
    }
}

/// Reads one frame from a buffered async reader.
///
/// Returns `Ok(None)` on end of input at a frame boundary and
/// [`WyomingError::Closed`] when the input ends inside a frame. The header line is
/// bounded without buffering more than [`Limits::max_header_len`] bytes, and the data
/// block and payload buffers grow as bytes arrive, so a peer announcing a large length
/// cannot make the reader allocate it up front. Not cancel-safe: dropping the future
/// mid-frame loses the framing (the server closes the connection on timeout anyway).
pub async fn read_frame<R>(reader: &mut R, limits: &Limits) -> Result<Option<Frame>, WyomingError>
where
    R: AsyncBufRead + Unpin + ?Sized,
{
    let mut line = Vec::new();
    loop {
        let avail = reader.fill_buf().await?;
        if avail.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(WyomingError::Closed);
        }
        if let Some(i) = avail.iter().position(|&b| b == b'\n') {
            if line.len() + i > limits.max_header_len {
                return Err(header_too_large(line.len() + i, limits.max_header_len));
            }
            line.extend_from_slice(avail.get(..i).unwrap_or_default());
            reader.consume(i + 1);
            break;
        }
        let n = avail.len();
        if line.len() + n > limits.max_header_len {
            return Err(header_too_large(line.len() + n, limits.max_header_len));
        }
        line.extend_from_slice(avail);
        reader.consume(n);
    }
    let header = parse_header(&line, limits)?;
    let block = read_exactly(reader, header.data_len).await?;
    let payload = read_exactly(reader, header.payload_len).await?;
    finish_frame(header, block.as_deref(), payload).map(Some)
}

/// Reads exactly `len` bytes (`None` for 0), growing the buffer as bytes arrive.
async fn read_exactly<R>(reader: &mut R, len: usize) -> Result<Option<Vec<u8>>, WyomingError>
where
    R: AsyncBufRead + Unpin + ?Sized,
{
    if len == 0 {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    let mut limited = reader.take(len as u64);
    limited.read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(WyomingError::Closed);
    }
    Ok(Some(buf))
}

/// The header as written: field order as in the reference writer.
#[derive(Serialize)]
struct HeaderOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_length: Option<usize>,
}

/// Encodes a frame as the reference writer does: header line with `version` (and
/// `data_length` / `payload_length` when non-empty), then the data block, then the
/// payload. Empty data and empty payloads are left out.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, WyomingError> {
    let data = if frame.data.is_empty() {
        None
    } else {
        Some(
            serde_json::to_vec(&frame.data)
                .map_err(|e| WyomingError::Malformed(format!("cannot encode data: {e}")))?,
        )
    };
    let payload = frame.payload.as_deref().filter(|p| !p.is_empty());
    let header = HeaderOut {
        kind: &frame.kind,
        version: PROTOCOL_VERSION,
        data_length: data.as_ref().map(Vec::len),
        payload_length: payload.map(<[u8]>::len),
    };
    let mut out = serde_json::to_vec(&header)
        .map_err(|e| WyomingError::Malformed(format!("cannot encode header: {e}")))?;
    out.push(b'\n');
    if let Some(data) = data {
        out.extend_from_slice(&data);
    }
    if let Some(payload) = payload {
        out.extend_from_slice(payload);
    }
    Ok(out)
}

/// Writes one frame (see [`encode_frame`]) and flushes.
pub async fn write_frame<W>(writer: &mut W, frame: &Frame) -> Result<(), WyomingError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let bytes = encode_frame(frame)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Fuzzing entry point: runs arbitrary bytes through the decoder in several ways and
/// checks that they agree. Must never panic (a panic is a bug).
///
/// Checks: decoding all at once and decoding in pieces (split by the first byte) give the
/// same frames and the same outcome; every decoded frame converts to an
/// [`Event`](super::event::Event) or a clean error; and every decoded frame re-encodes to
/// bytes that decode to the same type and payload.
pub fn fuzz_decode(bytes: &[u8]) {
    let limits = Limits {
        max_header_len: 4096,
        max_data_len: 8192,
        max_payload_len: 16384,
    };
    let whole = decode_all(bytes, &limits, bytes.len().max(1));
    let step = usize::from(bytes.first().copied().unwrap_or(1)).max(1);
    let pieces = decode_all(bytes, &limits, step);
    assert_eq!(whole.0, pieces.0, "frames differ when fed in pieces");
    assert_eq!(whole.1, pieces.1, "outcome differs when fed in pieces");
    for frame in whole.0 {
        let encoded = match encode_frame(&frame) {
            Ok(encoded) => encoded,
            Err(e) => panic!("decoded frame does not encode: {e}"),
        };
        let mut decoder = Decoder::new(Limits {
            max_header_len: usize::MAX,
            max_data_len: usize::MAX,
            max_payload_len: usize::MAX,
        });
        match decoder.push(&encoded) {
            Ok(Some(again)) => {
                assert_eq!(again.kind, frame.kind);
                assert_eq!(again.payload, frame.payload);
                assert_eq!(again.data.len(), frame.data.len());
            }
            other => panic!("re-encoded frame does not decode: {other:?}"),
        }
        let _ = super::event::Event::try_from(frame);
    }
}

/// Decodes everything, feeding `step` bytes at a time; returns the frames and the outcome
/// (`None`: clean end, `Some(code)`: the error's code).
fn decode_all(bytes: &[u8], limits: &Limits, step: usize) -> (Vec<Frame>, Option<&'static str>) {
    let mut decoder = Decoder::new(*limits);
    let mut frames = Vec::new();
    for piece in bytes.chunks(step) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.code())),
            }
        }
    }
    let outcome = decoder.finish().err().map(|e| e.code());
    (frames, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small_limits() -> Limits {
        Limits {
            max_header_len: 256,
            max_data_len: 128,
            max_payload_len: 64,
        }
    }

    /// Decodes `input` three ways (all at once, byte by byte, async reader) and checks
    /// that they agree; returns the async reader's result for the first frame.
    fn decode_one(input: &[u8], limits: Limits) -> Result<Option<Frame>, WyomingError> {
        let whole = {
            let mut d = Decoder::new(limits);
            match d.push(input) {
                Ok(None) => d.finish().map(|()| None),
                other => other,
            }
        };
        let bytewise = {
            let mut d = Decoder::new(limits);
            let mut out = Ok(None);
            for b in input {
                match d.push(std::slice::from_ref(b)) {
                    Ok(None) => continue,
                    other => {
                        out = other;
                        break;
                    }
                }
            }
            match out {
                Ok(None) => d.finish().map(|()| None),
                other => other,
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let reader_result = rt.block_on(async {
            // A tiny buffer so that the header crosses fill_buf boundaries.
            let mut reader = tokio::io::BufReader::with_capacity(3, input);
            read_frame(&mut reader, &limits).await
        });
        let show = |r: &Result<Option<Frame>, WyomingError>| match r {
            Ok(f) => format!("{f:?}"),
            Err(e) => format!("error {}", e.code()),
        };
        assert_eq!(show(&whole), show(&bytewise), "one-shot vs byte-wise");
        assert_eq!(show(&whole), show(&reader_result), "decoder vs reader");
        reader_result
    }

    fn expect_frame(input: &[u8]) -> Frame {
        match decode_one(input, small_limits()) {
            Ok(Some(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn expect_error(input: &[u8], code: &str) -> WyomingError {
        match decode_one(input, small_limits()) {
            Err(e) => {
                assert_eq!(e.code(), code, "wrong error: {e}");
                e
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    #[test]
    fn inline_data() {
        let f = expect_frame(b"{\"type\":\"transcript\",\"data\":{\"text\":\"hi\"}}\n");
        assert_eq!(f.kind, "transcript");
        assert_eq!(f.data["text"], "hi");
        assert_eq!(f.payload, None);
    }

    #[test]
    fn no_data_at_all() {
        let f = expect_frame(b"{\"type\":\"describe\"}\n");
        assert_eq!(f, Frame::new("describe"));
        let f = expect_frame(b"{\"type\":\"describe\",\"data\":null,\"data_length\":null}\n");
        assert_eq!(f, Frame::new("describe"));
    }

    #[test]
    fn data_block() {
        let f = expect_frame(b"{\"type\":\"ping\",\"data_length\":13}\n{\"text\":\"yo\"}");
        assert_eq!(f.data["text"], "yo");
    }

    #[test]
    fn inline_and_block_merge_block_wins() {
        let input = b"{\"type\":\"x\",\"data\":{\"a\":1,\"b\":1},\"data_length\":7}\n{\"b\":2}";
        let f = expect_frame(input);
        assert_eq!(f.data["a"], 1);
        assert_eq!(f.data["b"], 2);
    }

    #[test]
    fn payload_follows_data_block() {
        let mut input =
            b"{\"type\":\"audio-chunk\",\"data_length\":37,\"payload_length\":4}\n".to_vec();
        input.extend_from_slice(b"{\"rate\":16000,\"width\":2,\"channels\":1}");
        input.extend_from_slice(&[1, 2, 3, 4]);
        let f = expect_frame(&input);
        assert_eq!(f.data["rate"], 16000);
        assert_eq!(f.payload.as_deref(), Some(&[1u8, 2, 3, 4][..]));
    }

    #[test]
    fn zero_lengths_mean_absent() {
        let f = expect_frame(b"{\"type\":\"x\",\"data_length\":0,\"payload_length\":0}\n");
        assert_eq!(f.payload, None);
        assert!(f.data.is_empty());
    }

    #[test]
    fn crlf_header_is_accepted() {
        let f = expect_frame(b"{\"type\":\"ping\"}\r\n");
        assert_eq!(f.kind, "ping");
    }

    #[test]
    fn several_frames_in_one_push() {
        let mut d = Decoder::new(Limits::default());
        let input =
            b"{\"type\":\"a\"}\n{\"type\":\"b\",\"payload_length\":2}\nxy{\"type\":\"c\"}\n";
        assert_eq!(d.push(input).unwrap().unwrap().kind, "a");
        let b = d.next_frame().unwrap().unwrap();
        assert_eq!(
            (b.kind.as_str(), b.payload.as_deref()),
            ("b", Some(&b"xy"[..]))
        );
        assert_eq!(d.next_frame().unwrap().unwrap().kind, "c");
        assert!(d.next_frame().unwrap().is_none());
        assert_eq!(d.buffered_len(), 0);
        d.finish().unwrap();
    }

    #[test]
    fn oversized_header_is_rejected_without_newline() {
        let mut input = b"{\"type\":\"x\",\"data\":{\"pad\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'a', 300));
        let e = expect_error(&input, "too-large");
        assert!(matches!(
            e,
            WyomingError::TooLarge {
                what: "header line",
                ..
            }
        ));
        // Also with a newline at the end.
        input.extend_from_slice(b"\"}}\n");
        expect_error(&input, "too-large");
    }

    #[test]
    fn header_exactly_at_limit_is_accepted() {
        let limits = Limits {
            max_header_len: 15,
            ..small_limits()
        };
        let line = b"{\"type\":\"ping\"}\n";
        assert_eq!(line.len() - 1, 15);
        assert!(matches!(decode_one(line, limits), Ok(Some(_))));
        let limits = Limits {
            max_header_len: 14,
            ..small_limits()
        };
        assert!(matches!(
            decode_one(line, limits),
            Err(WyomingError::TooLarge { .. })
        ));
    }

    #[test]
    fn negative_length_is_malformed() {
        expect_error(b"{\"type\":\"x\",\"data_length\":-1}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"payload_length\":-1}\n", "malformed");
    }

    #[test]
    fn non_integer_lengths_are_malformed() {
        expect_error(b"{\"type\":\"x\",\"payload_length\":1.5}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"payload_length\":2.0}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"payload_length\":\"2\"}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"payload_length\":[2]}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"payload_length\":true}\n", "malformed");
    }

    #[test]
    fn huge_lengths_are_rejected() {
        let e = expect_error(b"{\"type\":\"x\",\"payload_length\":65}\n", "too-large");
        assert!(matches!(
            e,
            WyomingError::TooLarge {
                what: "payload",
                len: 65,
                max: 64
            }
        ));
        expect_error(b"{\"type\":\"x\",\"data_length\":129}\n", "too-large");
        expect_error(
            b"{\"type\":\"x\",\"payload_length\":18446744073709551615}\n",
            "too-large",
        );
        // Beyond u64: serde_json reads it as a float.
        expect_error(
            b"{\"type\":\"x\",\"payload_length\":99999999999999999999999}\n",
            "malformed",
        );
        expect_error(b"{\"type\":\"x\",\"payload_length\":1e300}\n", "malformed");
    }

    #[test]
    fn truncated_input_is_closed() {
        expect_error(b"{\"type\":\"x\",\"payload_length\":10}\nabc", "closed");
        expect_error(b"{\"type\":\"x\",\"data_length\":10}\n{\"a\"", "closed");
        expect_error(b"{\"type\":\"x\"", "closed");
    }

    #[test]
    fn empty_input_is_a_clean_end() {
        assert!(matches!(decode_one(b"", small_limits()), Ok(None)));
    }

    #[test]
    fn garbage_is_malformed() {
        expect_error(b"hello there\n", "malformed");
        expect_error(b"\n", "malformed");
        expect_error(&[0xff, 0xfe, 0x00, b'\n'], "malformed");
        expect_error(b"[1,2,3]\n", "malformed");
        expect_error(b"\"type\"\n", "malformed");
        // Invalid UTF-8 inside a JSON string.
        expect_error(b"{\"type\":\"\xff\"}\n", "malformed");
    }

    #[test]
    fn missing_or_bad_type_is_malformed() {
        expect_error(b"{\"data\":{}}\n", "malformed");
        expect_error(b"{\"type\":3}\n", "malformed");
        expect_error(b"{\"type\":null}\n", "malformed");
        expect_error(b"{\"type\":\"\"}\n", "malformed");
    }

    #[test]
    fn bad_data_is_malformed() {
        expect_error(b"{\"type\":\"x\",\"data\":[1]}\n", "malformed");
        expect_error(b"{\"type\":\"x\",\"data_length\":3}\n[1]", "malformed");
        expect_error(b"{\"type\":\"x\",\"data_length\":3}\nabc", "malformed");
    }

    #[test]
    fn decoder_stays_failed() {
        let mut d = Decoder::new(Limits::default());
        assert!(d.push(b"nope\n").is_err());
        assert!(d.push(b"{\"type\":\"ping\"}\n").is_err());
        assert!(d.finish().is_err());
    }

    #[test]
    fn encode_matches_reference_layout() {
        let mut data = Map::new();
        data.insert("text".into(), json!("héllo"));
        let frame = Frame {
            kind: "synthesize".into(),
            data,
            payload: Some(vec![9, 8]),
        };
        let bytes = encode_frame(&frame).unwrap();
        let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
        let header: Value = serde_json::from_slice(&bytes[..nl]).unwrap();
        let block = r#"{"text":"héllo"}"#.as_bytes();
        assert_eq!(
            header,
            json!({"type": "synthesize", "version": PROTOCOL_VERSION,
                   "data_length": block.len(), "payload_length": 2})
        );
        assert_eq!(&bytes[nl + 1..nl + 1 + block.len()], block);
        assert_eq!(&bytes[nl + 1 + block.len()..], &[9, 8]);
        // And it decodes back.
        assert_eq!(expect_frame_default(&bytes), frame);
    }

    fn expect_frame_default(bytes: &[u8]) -> Frame {
        match decode_one(bytes, Limits::default()) {
            Ok(Some(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn encode_leaves_out_empty_parts() {
        let frame = Frame {
            kind: "describe".into(),
            data: Map::new(),
            payload: Some(Vec::new()),
        };
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(
            bytes,
            format!("{{\"type\":\"describe\",\"version\":\"{PROTOCOL_VERSION}\"}}\n").as_bytes()
        );
    }

    #[tokio::test]
    async fn write_then_read_round_trip() {
        let (mut a, b) = tokio::io::duplex(64);
        let frame = Frame {
            kind: "audio-chunk".into(),
            data: json!({"rate": 16000, "width": 2, "channels": 1})
                .as_object()
                .cloned()
                .unwrap(),
            payload: Some((0..=255).collect()),
        };
        let sent = frame.clone();
        let writer = tokio::spawn(async move {
            write_frame(&mut a, &sent).await.unwrap();
            write_frame(&mut a, &Frame::new("audio-stop"))
                .await
                .unwrap();
        });
        let mut reader = tokio::io::BufReader::new(b);
        let limits = Limits::default();
        assert_eq!(read_frame(&mut reader, &limits).await.unwrap(), Some(frame));
        assert_eq!(
            read_frame(&mut reader, &limits).await.unwrap(),
            Some(Frame::new("audio-stop"))
        );
        writer.await.unwrap();
        assert_eq!(read_frame(&mut reader, &limits).await.unwrap(), None);
    }

    #[test]
    fn fuzz_entry_handles_samples() {
        fuzz_decode(b"");
        fuzz_decode(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":1},\"payload_length\":2}\nab");
        fuzz_decode(b"\x01{\"type\":\"x\",\"data_length\":2}\n{}");
        fuzz_decode(&[0xff; 5000]);
    }
}
