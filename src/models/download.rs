//! Resumable, verified downloads.
//!
//! A download goes to `<dest>.part`. If that file exists, the request asks for the rest
//! with an HTTP `Range` header; a server that ignores it gets the file from the start.
//! The SHA-256 is computed over the whole file (the part already on disk, then the
//! stream) and checked before the file is renamed to its final name, so a model that
//! fails verification is never used. A progress bar is drawn on standard error when it is
//! a terminal.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Download failures.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The host could not be reached at all (no network, DNS failure, refused).
    #[error(
        "cannot reach {host} ({reason}). This machine seems to be offline or the host is blocked. \
         Download {url} elsewhere and run `serena models add FILE`, or put the file in a \
         directory named by SERENA_MODELS"
    )]
    Unreachable {
        /// The host part of the URL.
        host: String,
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The connection broke off; running the same command again resumes.
    #[error("download of {url} broke off after {received} bytes ({reason}); run the command again to resume")]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes on disk so far.
        received: u64,
        /// Why.
        reason: String,
    },
    /// The finished file does not have the expected checksum. The partial file is removed.
    #[error(
        "{url}: checksum mismatch (expected {expected}, got {actual}); the file was discarded"
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The catalog's SHA-256.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The server sent more than the expected size.
    #[error(
        "{url}: the server sent more than the expected {expected} bytes; the file was discarded"
    )]
    TooLarge {
        /// The URL.
        url: String,
        /// The catalog size.
        expected: u64,
    },
    /// Local file I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What to fetch.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Where from.
    pub url: &'a str,
    /// Where to (final name).
    pub dest: &'a Path,
    /// Expected SHA-256 (hex).
    pub sha256: &'a str,
    /// Expected size, if known (for the progress bar and to stop runaway servers).
    pub size: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url)
        .to_string()
}

/// Download `req.url` to `req.dest`, resuming a previous partial download.
///
/// # Errors
/// [`DownloadError::Unreachable`] fast when offline; `Status`, `Interrupted` (resumable),
/// `Checksum`, `TooLarge` and `Io` otherwise.
pub fn fetch(req: &Request<'_>) -> Result<PathBuf, DownloadError> {
    let part = req.dest.with_extension(format!(
        "{}.part",
        req.dest.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    if let Some(dir) = req.dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&part)
        .map_err(io(&part))?;
    let mut have = file.metadata().map_err(io(&part))?.len();
    if req.size.is_some_and(|size| have > size) {
        file.set_len(0).map_err(io(&part))?;
        have = 0;
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(req.url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| DownloadError::Unreachable {
        host: host_of(req.url),
        url: req.url.to_string(),
        reason: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let resumed = match status {
        206 if have > 0 => true,
        200 => false,
        416 if req.size == Some(have) => true, // already complete
        _ => {
            return Err(DownloadError::Status {
                url: req.url.to_string(),
                status,
            })
        }
    };
    let mut hasher = Sha256::new();
    if resumed {
        // Hash what is already on disk.
        let mut reader = std::fs::File::open(&part).map_err(io(&part))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(io(&part))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    } else {
        file.set_len(0).map_err(io(&part))?;
        file.seek(SeekFrom::Start(0)).map_err(io(&part))?;
        have = 0;
    }

    let bar = if req.progress {
        let bar = indicatif::ProgressBar::new(req.size.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(
            req.dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        bar.set_position(have);
        Some(bar)
    } else {
        None
    };

    if status != 416 {
        let mut body = response.into_body();
        let mut reader = body.as_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.flush();
                    return Err(DownloadError::Interrupted {
                        url: req.url.to_string(),
                        received: have,
                        reason: e.to_string(),
                    });
                }
            };
            have += n as u64;
            if req.size.is_some_and(|size| have > size) {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(DownloadError::TooLarge {
                    url: req.url.to_string(),
                    expected: req.size.unwrap_or(0),
                });
            }
            file.write_all(&buf[..n]).map_err(io(&part))?;
            hasher.update(&buf[..n]);
            if let Some(bar) = &bar {
                bar.set_position(have);
            }
        }
    }
    file.sync_all().map_err(io(&part))?;
    drop(file);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(size) = req.size {
        if have < size {
            return Err(DownloadError::Interrupted {
                url: req.url.to_string(),
                received: have,
                reason: format!("expected {size} bytes"),
            });
        }
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(req.sha256) {
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::Checksum {
            url: req.url.to_string(),
            expected: req.sha256.to_string(),
            actual,
        });
    }
    std::fs::rename(&part, req.dest).map_err(io(req.dest))?;
    Ok(req.dest.to_path_buf())
}
