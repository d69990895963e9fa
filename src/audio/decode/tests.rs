//! Tests for [`super`]: every supported format against the fixtures, agreement between
//! encodings of the same speech, hostile inputs, and a deterministic mutation stress test.

use super::*;
use std::time::Instant;

const RATE: usize = WHISPER_SAMPLE_RATE as usize;

/// Path of a test fixture. The directory is `$SERENA_AUDIO_FIXTURES` if set, else the crate's
/// `audio-fixtures/`. A missing fixture fails the test (it is never skipped).
fn fixture(name: &str) -> PathBuf {
    let root = std::env::var_os("SERENA_AUDIO_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/audio-fixtures")));
    let path = root.join(name);
    assert!(
        path.is_file(),
        "missing test fixture {name}: expected {} (set SERENA_AUDIO_FIXTURES to the fixture directory)",
        path.display()
    );
    path
}

fn decode(name: &str) -> Vec<f32> {
    decode_file_16k_mono(&fixture(name)).unwrap_or_else(|e| panic!("decoding {name}: {e}"))
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

fn decode_bytes(bytes: &[u8], name: &str) -> Result<(Vec<f32>, DecodeStats), DecodeError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = temp_file(&dir, name, bytes);
    let mut decoder = Decoder::open(&path)?;
    let mut out = Vec::new();
    while decoder.read_16k_mono(&mut out, 4096)? > 0 {}
    Ok((out, decoder.stats().clone()))
}

/// Pearson correlation of two equally long slices.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt().max(f64::MIN_POSITIVE)
}

/// The lag (in samples, within ±`max_lag`) at which `x[lag..]` best matches `reference`,
/// judged over `window` samples starting at `start`. Searches coarsely on 8× block-averaged
/// signals, then refines at full rate, so it stays fast in debug builds.
fn best_lag(reference: &[f32], x: &[f32], start: usize, window: usize, max_lag: usize) -> isize {
    const STEP: usize = 8;
    let decimate = |v: &[f32]| -> Vec<f32> {
        v.chunks(STEP)
            .map(|c| c.iter().sum::<f32>() / c.len() as f32)
            .collect()
    };
    let (rd, xd) = (decimate(reference), decimate(x));
    let coarse = search_lag(
        &rd,
        &xd,
        start / STEP,
        window / STEP,
        -((max_lag / STEP) as isize)..=(max_lag / STEP) as isize,
    );
    let centre = coarse * STEP as isize;
    search_lag(
        reference,
        x,
        start,
        window,
        centre - 2 * STEP as isize..=centre + 2 * STEP as isize,
    )
}

/// The lag in `lags` maximising the dot product of `reference[start..start + window]` with
/// `x[start + lag..]`.
fn search_lag(
    reference: &[f32],
    x: &[f32],
    start: usize,
    window: usize,
    lags: std::ops::RangeInclusive<isize>,
) -> isize {
    let r = &reference[start..start + window];
    let mut best = (f32::MIN, 0isize);
    for lag in lags {
        let from = start as isize + lag;
        let Some(seg) = usize::try_from(from)
            .ok()
            .and_then(|f| x.get(f..f + window))
        else {
            continue;
        };
        let dot: f32 = r.iter().zip(seg).map(|(a, b)| a * b).sum();
        if dot > best.0 {
            best = (dot, lag);
        }
    }
    best.1
}

/// Aligns `x` to `reference` and returns (lag, correlation over the overlap).
fn align(reference: &[f32], x: &[f32]) -> (isize, f64) {
    let window = (3 * RATE).min(reference.len() / 2);
    let lag = best_lag(reference, x, reference.len() / 8, window, RATE / 10);
    let (r, y) = if lag >= 0 {
        (reference, x.get(lag as usize..).unwrap_or_default())
    } else {
        (reference.get((-lag) as usize..).unwrap_or_default(), x)
    };
    let n = r.len().min(y.len());
    (lag, correlation(&r[..n], &y[..n]))
}

// ---------------------------------------------------------------------------------------------
// Formats and lengths

#[test]
fn every_fixture_decodes_to_the_expected_16k_length() {
    // (fixture, duration in seconds at the native rate, native rate, channels)
    let table: &[(&str, f64, u32, u16)] = &[
        ("asr/jfk.wav", 11.0, 16_000, 1),
        ("asr/jfk.mp3", 11.0, 16_000, 1),
        ("asr/jfk.flac", 11.0, 16_000, 1),
        ("asr/jfk.ogg", 11.0, 16_000, 1),
        ("asr/jfk.m4a", 11.0, 16_000, 1),
        ("asr/jfk_8k.wav", 4.0, 8_000, 1),
        ("asr/jfk_44k_stereo.wav", 1.0, 44_100, 2),
        ("asr/jfk_48k_stereo.flac", 2.5, 48_000, 2),
        (
            "asr/librispeech/1089-134686-0000.flac",
            166_960.0 / 16e3,
            16_000,
            1,
        ),
        (
            "asr/librispeech/1089-134691-0000.flac",
            33_360.0 / 16e3,
            16_000,
            1,
        ),
        ("asr/librispeech/1272-128104-0004-8k.wav", 29.4, 8_000, 1),
        ("commands/rhasspy3_set_timer.wav", 3.0, 16_000, 1),
        ("commands/rhasspy3_what_time_is_it.wav", 2.0, 16_000, 1),
        ("commands/rhasspy3_whats_the_date_today.wav", 2.0, 16_000, 1),
        ("commands/rhasspy3_this_is_a_test.wav", 5.0, 16_000, 1),
        (
            "commands/rhino_test_out_of_context.wav",
            133_571.0 / 16e3,
            16_000,
            1,
        ),
        (
            "keywords/speech_commands_silence_1000ms.wav",
            1.0,
            16_000,
            1,
        ),
        ("keywords/speech_commands_noise_1000ms.wav", 1.0, 16_000, 1),
        ("vad/leopard_empty.wav", 131_392.0 / 16e3, 16_000, 1),
        (
            "wakeword/porcupine_porcupine.wav",
            63_102.0 / 16e3,
            16_000,
            1,
        ),
        ("wakeword/rhasspy3_porcupine.wav", 3.0, 16_000, 1),
    ];
    for &(name, secs, rate, channels) in table {
        let mut decoder = Decoder::open(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while decoder.read_16k_mono(&mut out, 1 << 15).unwrap() > 0 {}
        let expected = secs * RATE as f64;
        let ratio = out.len() as f64 / expected;
        assert!(
            (0.99..=1.01).contains(&ratio),
            "{name}: {} samples, expected {expected:.0}",
            out.len()
        );
        let info = decoder.info();
        assert_eq!(
            (info.sample_rate, info.channels),
            (rate, channels),
            "{name}"
        );
        let stats = decoder.stats();
        assert_eq!(stats.packets_skipped, 0, "{name}: {stats:?}");
        assert!(
            !stats.truncated && stats.ended_early.is_none(),
            "{name}: {stats:?}"
        );
        assert!(
            out.iter().all(|v| v.is_finite() && v.abs() <= 1.5),
            "{name}"
        );
    }
}

#[test]
fn info_reports_codec_and_duration() {
    let cases = [
        ("asr/jfk.wav", "pcm_s16le"),
        ("asr/jfk.mp3", "mp3"),
        ("asr/jfk.flac", "flac"),
        ("asr/jfk.ogg", "vorbis"),
        ("asr/jfk.m4a", "aac"),
    ];
    for (name, codec) in cases {
        let decoder = Decoder::open(&fixture(name)).unwrap();
        let info = decoder.info();
        assert_eq!(info.codec, codec, "{name}");
        let duration = info
            .duration_s
            .unwrap_or_else(|| panic!("{name}: no duration"));
        assert!((duration - 11.0).abs() < 0.2, "{name}: {duration}");
    }
}

#[test]
fn wav_16k_is_bit_exact() {
    // 16 kHz mono input must pass through untouched: compare with hound's reading.
    let path = fixture("asr/jfk.wav");
    let reference: Vec<f32> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    assert_eq!(decode("asr/jfk.wav"), reference);
}

#[test]
fn encodings_of_jfk_agree() {
    let reference = decode("asr/jfk.wav");
    // (fixture, allowed |lag| in samples). MP3: symphonia trims the LAME-declared encoder delay,
    // so it lines up. AAC in MP4: symphonia 0.6 ignores the MP4 edit list, so the encoder's
    // 1024 priming samples (64 ms here) stay at the start; we measure rather than guess it.
    let cases = [
        ("asr/jfk.flac", 0),
        ("asr/jfk.mp3", 2),
        ("asr/jfk.ogg", 2),
        ("asr/jfk.m4a", 1100),
    ];
    for (name, max_lag) in cases {
        let x = decode(name);
        let (lag, corr) = align(&reference, &x);
        assert!(lag.unsigned_abs() <= max_lag, "{name}: lag {lag}");
        assert!(corr > 0.95, "{name}: correlation {corr:.4} at lag {lag}");
        // Length, once the measured start offset is accounted for, within 60 ms.
        let len_diff = x.len() as isize - lag - reference.len() as isize;
        assert!(
            len_diff.abs() <= 960,
            "{name}: length {} (lag {lag})",
            x.len()
        );
        eprintln!(
            "{name}: lag {lag} samples, correlation {corr:.4}, length {}",
            x.len()
        );
    }
}

#[test]
fn other_rates_and_stereo_resample_in_place() {
    let reference = decode("asr/jfk.wav");
    for (name, secs) in [
        ("asr/jfk_8k.wav", 4.0),
        ("asr/jfk_44k_stereo.wav", 1.0),
        ("asr/jfk_48k_stereo.flac", 2.5),
    ] {
        let x = decode(name);
        assert_eq!(x.len(), (secs * RATE as f64) as usize, "{name}");
        let r = &reference[..x.len()];
        // No time shift: both resamplers (ffmpeg's and ours) compensate their delay.
        let lag = best_lag(r, &x, RATE / 4, RATE / 2, 160);
        assert!(lag.abs() <= 1, "{name}: shifted by {lag} samples");
        let corr = correlation(r, &x);
        assert!(corr > 0.95, "{name}: correlation {corr:.4}");
        eprintln!("{name}: correlation {corr:.4}");
    }
}

#[test]
fn stereo_is_averaged_to_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..16_000 {
        let left = if i % 2 == 0 { 0.5f32 } else { -0.5 };
        w.write_sample(left).unwrap();
        w.write_sample(0.25f32).unwrap();
    }
    w.finalize().unwrap();
    let mono = decode_file_16k_mono(&path).unwrap();
    assert_eq!(mono.len(), 16_000);
    for (i, v) in mono.iter().enumerate() {
        let expected = if i % 2 == 0 { 0.375 } else { -0.125 };
        assert!((v - expected).abs() < 1e-6, "sample {i}: {v}");
    }
}

#[test]
fn streaming_reads_match_whole_file_decode() {
    for name in ["asr/jfk.mp3", "asr/jfk_48k_stereo.flac"] {
        let whole = decode(name);
        let mut decoder = Decoder::open(&fixture(name)).unwrap();
        assert_eq!(decoder.read_16k_mono(&mut Vec::new(), 0).unwrap(), 0);
        let mut pieces = Vec::new();
        let mut sizes = [1usize, 17, 160, 999, 4096].iter().cycle();
        loop {
            let max = *sizes.next().unwrap();
            let before = pieces.len();
            let n = decoder.read_16k_mono(&mut pieces, max).unwrap();
            assert_eq!(pieces.len() - before, n);
            assert!(n <= max);
            if n == 0 {
                break;
            }
        }
        assert_eq!(pieces, whole, "{name}");
        // Stays at end of stream.
        assert_eq!(decoder.read_16k_mono(&mut pieces, 10).unwrap(), 0);
    }
}

#[test]
fn from_reader_matches_open() {
    for (name, ext) in [
        ("asr/jfk.mp3", None),
        ("asr/jfk.ogg", Some("ogg")),
        ("asr/jfk.flac", None),
        ("asr/jfk.wav", None),
        ("asr/jfk.m4a", None), // spooled to a temporary file: MP4 needs seeking
        ("asr/jfk_48k_stereo.flac", Some("flac")),
    ] {
        let file = File::open(fixture(name)).unwrap();
        let mut decoder = Decoder::from_reader(Box::new(file), ext).unwrap();
        let mut out = Vec::new();
        while decoder.read_16k_mono(&mut out, 8192).unwrap() > 0 {}
        assert_eq!(out, decode(name), "{name}");
    }
    let err = Decoder::from_reader(Box::new(io::empty()), None).unwrap_err();
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("<stdin>"), "{err}");
}

#[test]
fn decoder_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Decoder>();
    assert_send_sync::<DecodeError>();
    let mut decoder = Decoder::open(&fixture("asr/jfk.ogg")).unwrap();
    let samples = std::thread::spawn(move || drain(&mut decoder).unwrap())
        .join()
        .unwrap();
    assert_eq!(samples, 176_000);
}

// ---------------------------------------------------------------------------------------------
// Hostile input

fn jfk_wav_bytes() -> Vec<u8> {
    std::fs::read(fixture("asr/jfk.wav")).unwrap()
}

/// Byte offset of the `data` chunk's size field in a RIFF/WAVE file.
fn wav_data_size_offset(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk")
        + 4
}

#[test]
fn missing_file_is_not_found() {
    let err = Decoder::open(Path::new("/no/such/dir/clip.wav")).unwrap_err();
    assert!(matches!(err, DecodeError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/dir/clip.wav"), "{err}");
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn directory_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let err = Decoder::open(dir.path()).unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
}

#[test]
fn empty_file_is_empty() {
    let err = decode_bytes(b"", "empty.wav").unwrap_err();
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty.wav"), "{err}");
    assert!(err.to_string().contains("0 bytes"), "{err}");
}

#[test]
fn text_file_is_unsupported() {
    let text = "WEBVTT\n\nThis is not audio, just some text in a file.\n".repeat(50);
    for name in ["notes.txt", "notes.mp3", "notes"] {
        let err = decode_bytes(text.as_bytes(), name).unwrap_err();
        assert!(
            matches!(err, DecodeError::Unsupported { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn random_bytes_are_unsupported() {
    let mut rng = Rng(0x5eed);
    let bytes: Vec<u8> = (0..100_000).map(|_| rng.next() as u8).collect();
    let err = decode_bytes(&bytes, "noise.wav").unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
}

#[test]
fn wav_without_samples_is_empty() {
    let bytes = jfk_wav_bytes();
    let data_at = wav_data_size_offset(&bytes);
    let mut header = bytes[..data_at + 4].to_vec();
    header[data_at..data_at + 4].copy_from_slice(&0u32.to_le_bytes());
    let riff_size = (header.len() - 8) as u32;
    header[4..8].copy_from_slice(&riff_size.to_le_bytes());
    let err = decode_bytes(&header, "silent.wav").unwrap_err();
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");
}

#[test]
fn wav_cut_inside_header_is_truncated() {
    let bytes = jfk_wav_bytes();
    for cut in [12, 30, 40] {
        let err = decode_bytes(&bytes[..cut], "cut.wav").unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("cut.wav"), "{err}");
    }
    // Four bytes ("RIFF") are too few to tell what the file was meant to be.
    let err = decode_bytes(&bytes[..4], "cut.wav").unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
}

/// Policy: a file cut short decodes what is there and reports `truncated`.
#[test]
fn wav_cut_halfway_decodes_first_half() {
    let bytes = jfk_wav_bytes();
    let (samples, stats) = decode_bytes(&bytes[..bytes.len() / 2], "half.wav").unwrap();
    let expected = (bytes.len() / 2 - 44) / 2;
    assert!(
        samples.len().abs_diff(expected) <= 1024,
        "{} samples, expected about {expected}",
        samples.len()
    );
    assert!(stats.truncated, "{stats:?}");
    assert_eq!(samples[..1000], decode("asr/jfk.wav")[..1000]);
}

fn with_wav_sizes(riff: u32, data: u32) -> Vec<u8> {
    let mut bytes = jfk_wav_bytes();
    let data_at = wav_data_size_offset(&bytes);
    bytes[data_at..data_at + 4].copy_from_slice(&data.to_le_bytes());
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    bytes
}

#[test]
fn wav_claiming_huge_data_size_decodes_what_is_there() {
    // A consistent header that claims about 2 GiB of samples: no huge allocation, the real
    // audio comes out, and the shortfall is reported.
    let bytes = jfk_wav_bytes();
    let header_len = wav_data_size_offset(&bytes) as u32 + 4;
    let data = 0x7FFF_FFF0u32;
    let (samples, stats) =
        decode_bytes(&with_wav_sizes(data + header_len - 8, data), "huge.wav").unwrap();
    assert_eq!(samples.len(), 176_000);
    assert!(stats.truncated, "{stats:?}");

    // 0xFFFFFFFF is the "unknown length" convention of streaming writers (arecord, ffmpeg
    // pipes): not an error and not truncation.
    let (samples, stats) = decode_bytes(&with_wav_sizes(u32::MAX, u32::MAX), "stream.wav").unwrap();
    assert_eq!(samples.len(), 176_000);
    assert!(!stats.truncated, "{stats:?}");

    // A data chunk larger than the RIFF chunk holding it is a malformed header.
    let err = decode_bytes(&with_wav_sizes(0x1000, 0xFFFF_FFF0), "bad.wav").unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err}");
}

#[test]
fn flac_with_garbage_in_the_middle_skips_the_damage() {
    let mut bytes = std::fs::read(fixture("asr/jfk.flac")).unwrap();
    let mid = bytes.len() / 2;
    let mut rng = Rng(7);
    for b in &mut bytes[mid..mid + 4000] {
        *b = rng.next() as u8;
    }
    let (samples, stats) = decode_bytes(&bytes, "damaged.flac").unwrap();
    let reference = decode("asr/jfk.flac");
    // Audio on both sides of the damage survives; the damaged stretch is dropped or skipped.
    assert!(
        samples.len() > reference.len() * 8 / 10,
        "{} samples",
        samples.len()
    );
    assert!(
        samples.len() <= reference.len(),
        "{} samples",
        samples.len()
    );
    assert_eq!(samples[..16_000], reference[..16_000]);
    eprintln!(
        "damaged FLAC: {} of {} samples, {stats:?}",
        samples.len(),
        reference.len()
    );
}

#[test]
fn mp3_that_is_all_garbage_after_the_header_is_corrupt_or_unsupported() {
    let mut bytes = std::fs::read(fixture("asr/jfk.mp3")).unwrap();
    let mut rng = Rng(11);
    let keep = 600; // ID3/Xing header plus a frame or so
    for b in &mut bytes[keep..] {
        *b = rng.next() as u8;
    }
    match decode_bytes(&bytes, "garbage.mp3") {
        Err(DecodeError::Corrupt { .. } | DecodeError::Unsupported { .. }) => {}
        // A valid frame or two before the garbage may survive.
        Ok((samples, _)) => assert!(samples.len() < 16_000, "{} samples", samples.len()),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// A WAVE_FORMAT_EXTENSIBLE header with 40 channels and an empty channel mask makes symphonia
/// 0.6.1 shift by 40 bits (`fix_wave_channel_mask`), which panics when overflow checks are on
/// (debug builds). Found by `cargo fuzz`; the decoder must contain it.
#[test]
fn symphonia_panic_on_bad_channel_mask_is_contained() {
    let channels: u16 = 40;
    let block_align = channels * 2;
    let data = vec![0u8; usize::from(block_align) * 100];
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(4 + 8 + 40 + 8 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&40u32.to_le_bytes());
    wav.extend_from_slice(&0xFFFEu16.to_le_bytes()); // WAVE_FORMAT_EXTENSIBLE
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&(16_000 * u32::from(block_align)).to_le_bytes());
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(&22u16.to_le_bytes()); // extension size
    wav.extend_from_slice(&16u16.to_le_bytes()); // valid bits
    wav.extend_from_slice(&0u32.to_le_bytes()); // channel mask: none
    wav.extend_from_slice(&[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B,
        0x71,
    ]); // KSDATAFORMAT_SUBTYPE_PCM
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    match decode_bytes(&wav, "forty_channels.wav") {
        // Release builds: no overflow check; symphonia carries on with a wrong channel layout.
        Ok(_) => {}
        Err(DecodeError::Corrupt { .. } | DecodeError::Unsupported { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic mutation stress test (the offline stand-in for `cargo fuzz run decode`).

/// xorshift64*: small, fixed-seed, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(data.len());
                    if let Some(b) = data.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
            }
            1 => data.truncate(rng.below(data.len() + 1)),
            2 => {
                let at = rng.below(data.len() + 1);
                let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, junk);
            }
            3 => {
                let at = rng.below(data.len());
                let end = (at + 1 + rng.below(256)).min(data.len());
                for b in data.get_mut(at..end).unwrap_or_default() {
                    *b = rng.next() as u8;
                }
            }
            4 => {
                // Header fields are where sizes live: hit the first 64 bytes with extremes.
                let i = rng.below(data.len().min(64));
                if let Some(b) = data.get_mut(i) {
                    *b = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
                }
            }
            _ => {
                let at = rng.below(data.len());
                let end = (at + rng.below(512)).min(data.len());
                let copy = data.get(at..end).unwrap_or_default().to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
        }
    }
    data
}

fn drain(decoder: &mut Decoder) -> Result<usize, DecodeError> {
    let mut out = Vec::with_capacity(8192);
    let mut total = 0;
    loop {
        out.clear();
        match decoder.read_16k_mono(&mut out, 8192)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

#[test]
fn mutated_inputs_never_panic() {
    // Small prefixes of real files keep each case fast; mutations reach deep into them.
    let seeds: Vec<(&str, Vec<u8>)> = [
        ("asr/jfk.wav", 6_000),
        ("asr/jfk.mp3", 6_000),
        ("asr/jfk.flac", 12_000),
        ("asr/jfk.ogg", 8_000),
        ("asr/jfk.m4a", 8_000),
        ("asr/jfk_48k_stereo.flac", 12_000),
    ]
    .iter()
    .map(|&(name, len)| {
        let bytes = std::fs::read(fixture(name)).unwrap();
        (name, bytes[..len.min(bytes.len())].to_vec())
    })
    .collect();
    let cases_per_seed = if cfg!(debug_assertions) { 120 } else { 700 };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x00C0_FFEE);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    for (name, seed) in &seeds {
        let ext = Path::new(name).extension().and_then(|e| e.to_str());
        for case in 0..cases_per_seed {
            let data = mutate(seed, &mut rng);
            // Alternate between a seekable file and a non-seekable stream.
            let result = if case % 2 == 0 {
                let path = temp_file(&dir, &format!("case.{}", ext.unwrap_or("bin")), &data);
                Decoder::open(&path).and_then(|mut d| drain(&mut d))
            } else {
                let reader = Box::new(Cursor::new(data));
                Decoder::from_reader(reader, if case % 4 == 1 { ext } else { None })
                    .and_then(|mut d| drain(&mut d))
            };
            let label = match &result {
                Ok(_) => "ok".to_string(),
                Err(e @ DecodeError::Corrupt { reason, .. })
                    if reason.contains("decoder failed on malformed data") =>
                {
                    eprintln!("symphonia panicked (caught) on a mutation of {name}: {e}");
                    "caught symphonia panic".to_string()
                }
                Err(e) => format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_string(),
            };
            *outcomes.entry(label).or_default() += 1;
        }
    }
    eprintln!(
        "{} mutated inputs in {:.1?}: {outcomes:?}",
        seeds.len() * cases_per_seed,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Measurements (run with `--ignored --nocapture` in release).
