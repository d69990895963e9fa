//! Model file verification by format, without handing the file to an engine.
//!
//! whisper.cpp and llama.cpp trust their inputs: a truncated file can crash them or make
//! them allocate wildly. Every model path goes through [`inspect`] first, which walks the
//! file's structure with bounds checks and reports what the file is or why it is unusable.
//!
//! - whisper.cpp ggml (`lmgg`): header, hyper-parameters, mel filters, vocabulary, then
//!   every tensor header and its data size, to the last byte.
//! - whisper.cpp's Silero VAD (`lmgg` followed by a `silero` model name).
//! - GGUF v2/v3: header, metadata, tensor infos, and the data section's extent. GGUF v1 and
//!   vocabulary-only files (no tensors) are refused with their own reasons.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What a model file holds, as far as its structure tells.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum ModelFormat {
    /// A whisper.cpp speech model.
    Whisper {
        /// Vocabulary size (51864 for English-only models).
        n_vocab: u32,
        /// Audio encoder layers (4 tiny, 6 base, 12 small, 24 medium, 32 large).
        n_audio_layer: u32,
        /// Number of tensors.
        n_tensors: u32,
    },
    /// A Silero voice-activity model in whisper.cpp's format.
    Vad {
        /// The model name in the header, e.g. `silero-16k`.
        name: String,
    },
    /// A GGUF language model.
    Gguf {
        /// GGUF version (2 or 3).
        version: u32,
        /// `general.architecture`, e.g. `llama`.
        architecture: String,
        /// Number of tensors.
        n_tensors: u64,
        /// Whether the file carries a chat template.
        chat_template: bool,
    },
}

impl ModelFormat {
    /// The kind of engine this file is for.
    pub fn kind(&self) -> super::ModelKind {
        match self {
            ModelFormat::Whisper { .. } => super::ModelKind::Whisper,
            ModelFormat::Vad { .. } => super::ModelKind::Vad,
            ModelFormat::Gguf { .. } => super::ModelKind::Llm,
        }
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            ModelFormat::Whisper {
                n_vocab,
                n_audio_layer,
                n_tensors,
            } => {
                let size = match n_audio_layer {
                    4 => "tiny",
                    6 => "base",
                    12 => "small",
                    24 => "medium",
                    32 => "large",
                    _ => "unknown size",
                };
                let lang = if *n_vocab == 51864 {
                    ", English-only"
                } else {
                    ", multilingual"
                };
                if *n_tensors == 0 {
                    format!(
                        "whisper.cpp test model ({size}{lang}, no weights: transcribes nothing)"
                    )
                } else {
                    format!("whisper.cpp model ({size}{lang})")
                }
            }
            ModelFormat::Vad { name } => format!("whisper.cpp VAD model ({name})"),
            ModelFormat::Gguf {
                version,
                architecture,
                n_tensors,
                ..
            } => format!("GGUF v{version} {architecture} model, {n_tensors} tensors"),
        }
    }
}

/// Why a file is not a usable model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatProblem {
    /// The file is empty.
    Empty,
    /// The first bytes match no known model format.
    UnknownFormat,
    /// The file ends before its structure does.
    Truncated(String),
    /// A header field holds an impossible value.
    Corrupt(String),
    /// GGUF version 1, no longer supported by llama.cpp.
    GgufV1,
    /// A GGUF with a vocabulary but no weights.
    VocabOnly,
    /// A GGUF version newer than this build understands.
    UnsupportedVersion(u32),
    /// Extra bytes after the last tensor.
    TrailingData(u64),
}

impl fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatProblem::Empty => f.write_str("the file is empty"),
            FormatProblem::UnknownFormat => {
                f.write_str("not a model file: expected a whisper.cpp ggml model or a GGUF file")
            }
            FormatProblem::Truncated(what) => {
                write!(f, "the file is truncated ({what}); download it again")
            }
            FormatProblem::Corrupt(what) => write!(f, "the file is corrupt ({what})"),
            FormatProblem::GgufV1 => f.write_str(
                "GGUF version 1 is no longer supported by llama.cpp; get a current GGUF file",
            ),
            FormatProblem::VocabOnly => {
                f.write_str("a vocabulary-only GGUF (no weights): it cannot generate text")
            }
            FormatProblem::UnsupportedVersion(v) => {
                write!(f, "GGUF version {v} is newer than this build understands")
            }
            FormatProblem::TrailingData(n) => {
                write!(
                    f,
                    "{n} unexpected bytes after the last tensor (wrong or damaged file)"
                )
            }
        }
    }
}

/// Errors from [`inspect`].
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable model.
    #[error("{path}: {problem}")]
    Bad {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: FormatProblem,
    },
}

/// Walk the structure of the model file at `path`.
///
/// # Errors
/// [`InspectError::Io`] if the file cannot be read; [`InspectError::Bad`] naming the
/// problem if it is not a complete, supported model.
pub fn inspect(path: &Path) -> Result<ModelFormat, InspectError> {
    let io = |source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
    };
    let bad = |problem| InspectError::Bad {
        path: path.to_path_buf(),
        problem,
    };
    if len == 0 {
        return Err(bad(FormatProblem::Empty));
    }
    let magic = match r.bytes(4) {
        Ok(m) => m,
        Err(Walk::Problem(_)) => return Err(bad(FormatProblem::UnknownFormat)),
        Err(Walk::Io(e)) => return Err(io(e)),
    };
    let result = match magic.as_slice() {
        b"lmgg" => walk_ggml(&mut r),
        b"GGUF" => walk_gguf(&mut r),
        _ => return Err(bad(FormatProblem::UnknownFormat)),
    };
    match result {
        Ok(format) => Ok(format),
        Err(Walk::Problem(p)) => Err(bad(p)),
        Err(Walk::Io(e)) => Err(io(e)),
    }
}

enum Walk {
    Problem(FormatProblem),
    Io(std::io::Error),
}

impl From<std::io::Error> for Walk {
    fn from(e: std::io::Error) -> Self {
        Walk::Io(e)
    }
}

fn corrupt(what: impl Into<String>) -> Walk {
    Walk::Problem(FormatProblem::Corrupt(what.into()))
}

struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &str) -> Result<(), Walk> {
        if n > self.remaining() {
            return Err(Walk::Problem(FormatProblem::Truncated(format!(
                "{what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            ))));
        }
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Walk> {
        self.need(n as u64, "header")?;
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf)?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, Walk> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32, Walk> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Result<u64, Walk> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), Walk> {
        self.need(n, what)?;
        if n <= 1 << 16 {
            // Small skips (vocabulary words) read through the buffer: a seek would throw
            // the buffer away and cost a read per word (51,864 of them in a whisper model).
            std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())?;
        } else {
            let n_i64 = i64::try_from(n).map_err(|_| corrupt(format!("{what}: size {n}")))?;
            self.inner.seek(SeekFrom::Current(n_i64))?;
        }
        self.pos += n;
        Ok(())
    }
}

/// Bytes per element (or per block, divided) of ggml tensor types, as (block size, bytes per block).
fn ggml_type_size(ttype: u32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),      // f32
        1 => (1, 2),      // f16
        2 => (32, 18),    // q4_0
        3 => (32, 20),    // q4_1
        6 => (32, 22),    // q5_0
        7 => (32, 24),    // q5_1
        8 => (32, 34),    // q8_0
        9 => (32, 36),    // q8_1
        10 => (256, 84),  // q2_k
        11 => (256, 110), // q3_k
        12 => (256, 144), // q4_k
        13 => (256, 176), // q5_k
        14 => (256, 210), // q6_k
        15 => (256, 292), // q8_k
        24 => (1, 1),     // i8
        25 => (1, 2),     // i16
        26 => (1, 4),     // i32
        27 => (1, 8),     // i64
        28 => (1, 8),     // f64
        30 => (1, 2),     // bf16
        _ => return None,
    })
}

fn walk_ggml<R: Read + Seek>(r: &mut Reader<R>) -> Result<ModelFormat, Walk> {
    // whisper.cpp's VAD models put a length-prefixed model name right after the magic.
    let first = r.u32()?;
    if (1..=64).contains(&first) {
        let name = r.bytes(first as usize)?;
        if let Ok(name) = String::from_utf8(name) {
            if name.starts_with("silero") {
                return walk_vad(r, name);
            }
        }
        return Err(corrupt("unexpected model name in header"));
    }
    // Speech model: n_vocab was `first`; then 10 more hyper-parameters.
    let n_vocab = first;
    let mut hp = [0i32; 10];
    for v in hp.iter_mut() {
        *v = r.i32()?;
    }
    let n_audio_layer = hp[3];
    if !(50_000..=60_000).contains(&n_vocab) || !(1..=64).contains(&n_audio_layer) {
        return Err(corrupt(format!(
            "implausible hyper-parameters (n_vocab {n_vocab}, n_audio_layer {n_audio_layer})"
        )));
    }
    // Mel filters.
    let n_mel = r.i32()?;
    let n_fft = r.i32()?;
    if !(1..=512).contains(&n_mel) || !(1..=4096).contains(&n_fft) {
        return Err(corrupt("implausible mel filter size"));
    }
    r.skip(4 * n_mel as u64 * n_fft as u64, "mel filters")?;
    // Vocabulary.
    let words = r.u32()?;
    if words > 1_000_000 {
        return Err(corrupt(format!("vocabulary of {words} words")));
    }
    for _ in 0..words {
        let len = r.u32()?;
        if len > 1 << 16 {
            return Err(corrupt(format!("vocabulary entry of {len} bytes")));
        }
        r.skip(u64::from(len), "vocabulary")?;
    }
    // whisper.cpp's own test models stop after the vocabulary: they load and produce no
    // text. They are accepted and described as such.
    let n_tensors = walk_ggml_tensors(r)?;
    Ok(ModelFormat::Whisper {
        n_vocab,
        n_audio_layer: n_audio_layer as u32,
        n_tensors,
    })
}

fn walk_ggml_tensors<R: Read + Seek>(r: &mut Reader<R>) -> Result<u32, Walk> {
    let mut n = 0u32;
    while r.remaining() > 0 {
        let n_dims = r.i32()?;
        let name_len = r.i32()?;
        let ttype = r.u32()?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(corrupt(format!("tensor {n} has a bad header")));
        }
        let mut elems: u64 = 1;
        for _ in 0..n_dims {
            let d = r.i32()?;
            if d <= 0 {
                return Err(corrupt(format!("tensor {n} has dimension {d}")));
            }
            elems = elems
                .checked_mul(d as u64)
                .ok_or_else(|| corrupt(format!("tensor {n} is too large")))?;
        }
        let name = r.bytes(name_len as usize)?;
        let (block, bytes) = ggml_type_size(ttype)
            .ok_or_else(|| corrupt(format!("tensor {n} has unknown type {ttype}")))?;
        let size = elems.div_ceil(block) * bytes;
        let label = format!("data of tensor {}", String::from_utf8_lossy(&name));
        r.skip(size, &label)?;
        n += 1;
    }
    Ok(n)
}

fn walk_vad<R: Read + Seek>(r: &mut Reader<R>, name: String) -> Result<ModelFormat, Walk> {
    // The VAD header's layout belongs to whisper.cpp; check it is followed by tensors of
    // plausible size by reading the rest in bounds. A truncated file fails the engine's
    // own size checks, which whisper.cpp reports as an error rather than a crash.
    if r.remaining() < 1024 {
        return Err(Walk::Problem(FormatProblem::Truncated(
            "VAD model shorter than its header".into(),
        )));
    }
    Ok(ModelFormat::Vad { name })
}

fn gguf_string<R: Read + Seek>(r: &mut Reader<R>, what: &str) -> Result<String, Walk> {
    let len = r.u64()?;
    if len > 1 << 26 {
        return Err(corrupt(format!("{what}: string of {len} bytes")));
    }
    r.need(len, what)?;
    let bytes = r.bytes(len as usize)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn gguf_scalar_size(vtype: u32) -> Option<u64> {
    Some(match vtype {
        0 | 1 | 7 => 1, // u8, i8, bool
        2 | 3 => 2,     // u16, i16
        4..=6 => 4,     // u32, i32, f32
        10..=12 => 8,   // u64, i64, f64
        _ => return None,
    })
}

/// Skip a metadata value of type `vtype`; return it if it is a string.
fn gguf_value<R: Read + Seek>(
    r: &mut Reader<R>,
    vtype: u32,
    depth: u32,
) -> Result<Option<String>, Walk> {
    match vtype {
        8 => gguf_string(r, "metadata string").map(Some),
        9 => {
            if depth > 4 {
                return Err(corrupt("nested metadata arrays"));
            }
            let etype = r.u32()?;
            let count = r.u64()?;
            if let Some(size) = gguf_scalar_size(etype) {
                let total = count
                    .checked_mul(size)
                    .ok_or_else(|| corrupt("metadata array too large"))?;
                r.skip(total, "metadata array")?;
            } else {
                if count > r.remaining() {
                    return Err(Walk::Problem(FormatProblem::Truncated(
                        "metadata array".into(),
                    )));
                }
                for _ in 0..count {
                    gguf_value(r, etype, depth + 1)?;
                }
            }
            Ok(None)
        }
        t => {
            let size =
                gguf_scalar_size(t).ok_or_else(|| corrupt(format!("unknown metadata type {t}")))?;
            r.skip(size, "metadata value")?;
            Ok(None)
        }
    }
}

fn walk_gguf<R: Read + Seek>(r: &mut Reader<R>) -> Result<ModelFormat, Walk> {
    let version = r.u32()?;
    match version {
        1 => return Err(Walk::Problem(FormatProblem::GgufV1)),
        2 | 3 => {}
        v => return Err(Walk::Problem(FormatProblem::UnsupportedVersion(v))),
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_kv > 1 << 20 || n_tensors > 1 << 24 {
        return Err(corrupt(format!(
            "{n_kv} metadata entries, {n_tensors} tensors"
        )));
    }
    let mut architecture = String::new();
    let mut alignment: u64 = 32;
    let mut chat_template = false;
    for _ in 0..n_kv {
        let key = gguf_string(r, "metadata key")?;
        let vtype = r.u32()?;
        if key == "general.alignment" && vtype == 4 {
            alignment = u64::from(r.u32()?);
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(corrupt(format!("alignment {alignment}")));
            }
            continue;
        }
        let value = gguf_value(r, vtype, 0)?;
        match key.as_str() {
            "general.architecture" => architecture = value.unwrap_or_default(),
            "tokenizer.chat_template" => chat_template = true,
            _ => {}
        }
    }
    if n_tensors == 0 {
        return Err(Walk::Problem(FormatProblem::VocabOnly));
    }
    let mut data_end: u64 = 0;
    for i in 0..n_tensors {
        let _name = gguf_string(r, "tensor name")?;
        let n_dims = r.u32()?;
        if !(1..=8).contains(&n_dims) {
            return Err(corrupt(format!("tensor {i} has {n_dims} dimensions")));
        }
        let mut elems: u64 = 1;
        for _ in 0..n_dims {
            let d = r.u64()?;
            elems = elems
                .checked_mul(d)
                .ok_or_else(|| corrupt(format!("tensor {i} is too large")))?;
        }
        let ttype = r.u32()?;
        let offset = r.u64()?;
        // Unknown (newer) types cannot be sized; trust the offsets for those.
        let size = ggml_type_size(ttype)
            .map(|(block, bytes)| elems.div_ceil(block) * bytes)
            .unwrap_or(0);
        let end = offset
            .checked_add(size)
            .ok_or_else(|| corrupt(format!("tensor {i} offset {offset}")))?;
        data_end = data_end.max(end);
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let needed = data_start
        .checked_add(data_end)
        .ok_or_else(|| corrupt("tensor data extent"))?;
    if needed > r.len {
        return Err(Walk::Problem(FormatProblem::Truncated(format!(
            "tensor data needs {needed} bytes, the file has {}",
            r.len
        ))));
    }
    Ok(ModelFormat::Gguf {
        version,
        architecture,
        n_tensors,
        chat_template,
    })
}
