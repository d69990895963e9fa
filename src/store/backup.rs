//! Backup archives, restore, undo and JSON export.
//!
//! # Archive format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       8     magic "SERENABK"
//! 8       2     format version, u16 BE (= 1)
//! 10      4     header length H, u32 BE (<= 64 KiB)
//! 14      H     header, UTF-8 JSON (see below)
//! 14+H    P     payload: the content, or its XChaCha20-Poly1305 ciphertext
//! 14+H+P  32    SHA-256 of every preceding byte (file integrity)
//! ```
//!
//! The header holds `created_unix_ms`, `serena_version`, `schema_version`,
//! `record_count`, `content_len`, `content_sha256` (hex SHA-256 of the
//! plaintext content), `payload_len` and, for encrypted archives,
//! `encryption`: `{aead: "xchacha20poly1305", nonce, kdf: {alg: "argon2id",
//! version: 19, m_cost_kib, t_cost, p_cost, salt}}` (hex byte strings). The
//! key is Argon2id(passphrase, salt, params) -> 32 bytes; the header bytes
//! are the AEAD's associated data, so they are authenticated too.
//!
//! The content is a sequence of records, one per key of every tree:
//!
//! ```text
//! u8 table-name length, table name, u32 BE key length, key, u32 BE value length, value
//! ```
//!
//! Keys and values are the raw sled bytes (values still carry their version
//! byte), so an archive restores exactly what was stored, at its schema
//! version; older schemas are migrated after restore.
//!
//! # Validation order on restore
//!
//! Magic ([`StoreError::NotAnArchive`]), format version
//! ([`StoreError::UnsupportedVersion`]), lengths ([`StoreError::Truncated`]),
//! file SHA-256 ([`StoreError::ChecksumMismatch`]), schema version
//! ([`StoreError::UnsupportedVersion`]), passphrase
//! ([`StoreError::PassphraseRequired`], [`StoreError::WrongPassphrase`]),
//! content SHA-256, record structure and count ([`StoreError::Corrupt`]),
//! then every record is decoded at the current schema (after migrating a
//! staging copy). Every length read from the file is bounded and checked
//! against the bytes left. Only then is the live store touched.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{Result, StoreError};
use super::layout::{self, NEW_DIR};
use super::migrations::{self, CURRENT_SCHEMA, SCHEMA_KEY};
use super::records::ListInfo;
use super::tables::{self, decode_any, Tables, ALL_TABLES, META};
use super::{now_ms, open_sled, Store};

/// First bytes of every archive.
pub const ARCHIVE_MAGIC: &[u8; 8] = b"SERENABK";
/// Archive format version written (and the newest read) by this build.
pub const ARCHIVE_FORMAT_VERSION: u16 = 1;

const PREFIX_LEN: usize = 14;
const HASH_LEN: usize = 32;
const MAX_HEADER_LEN: usize = 64 * 1024;
/// Archives larger than this are refused (they are read into memory).
const MAX_ARCHIVE_LEN: u64 = 4 << 30;
const MAX_TABLE_NAME_LEN: usize = 64;
const MAX_KEY_LEN: usize = 64 * 1024;
const MAX_VALUE_LEN: usize = 64 << 20;
const AEAD_NAME: &str = "xchacha20poly1305";
const KDF_NAME: &str = "argon2id";
const ARGON2_VERSION: u32 = 0x13;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Upper bounds accepted for KDF parameters read from an archive (so a
/// crafted file cannot make restore allocate or spin without limit).
const MAX_M_COST_KIB: u32 = 1 << 20;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;
/// Records written to the staging database per batch.
const RESTORE_BATCH: usize = 4096;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// Options for [`Store::backup_with`].
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Argon2id parameters used when a passphrase is given.
    pub kdf: KdfParams,
    /// Version recorded in the archive (default: this crate's version).
    pub serena_version: String,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            kdf: KdfParams::default(),
            serena_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What an archive says about itself (readable without the passphrase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Archive format version.
    pub format_version: u16,
    /// Creation time, unix milliseconds.
    pub created_unix_ms: u64,
    /// Serena version that wrote it.
    pub serena_version: String,
    /// Schema version of the data in it.
    pub schema_version: u32,
    /// Number of records (keys of all tables).
    pub record_count: u64,
    /// Whether it is passphrase-encrypted.
    pub encrypted: bool,
    /// Hex SHA-256 of the (plaintext) content.
    pub content_sha256: String,
}

/// Result of [`Store::backup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Where the archive was written.
    pub path: PathBuf,
    /// Archive size in bytes.
    pub size_bytes: u64,
    /// What the archive header says.
    pub archive: ArchiveInfo,
}

/// Result of [`restore_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// What the archive header says.
    pub archive: ArchiveInfo,
    /// Schema the restored data was migrated from, if it was older.
    pub migrated_from: Option<u32>,
    /// Whether the replaced data was kept for [`undo_restore_dir`].
    pub undo_available: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    created_unix_ms: u64,
    serena_version: String,
    schema_version: u32,
    record_count: u64,
    content_len: u64,
    content_sha256: String,
    payload_len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<Encryption>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Encryption {
    aead: String,
    nonce: String,
    kdf: KdfHeader,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KdfHeader {
    alg: String,
    version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

impl Header {
    fn info(&self) -> ArchiveInfo {
        ArchiveInfo {
            format_version: ARCHIVE_FORMAT_VERSION,
            created_unix_ms: self.created_unix_ms,
            serena_version: self.serena_version.clone(),
            schema_version: self.schema_version,
            record_count: self.record_count,
            encrypted: self.encryption.is_some(),
            content_sha256: self.content_sha256.clone(),
        }
    }
}

/// One record of the content: (table, key, value).
pub(crate) type Record<'a> = (&'static str, &'a [u8], &'a [u8]);

fn derive_key(passphrase: &str, salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| StoreError::Corrupt(format!("invalid KDF parameters: {e}")))?;
    let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    kdf.hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|e| StoreError::Corrupt(format!("key derivation failed: {e}")))?;
    Ok(key)
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| StoreError::Io {
        path: PathBuf::from("<os random>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(b)
}

fn cipher(key: &[u8; 32]) -> Result<XChaCha20Poly1305> {
    XChaCha20Poly1305::new_from_slice(key).map_err(|_| StoreError::Corrupt("bad key length".into()))
}

fn nonce_from(bytes: &[u8]) -> Result<XNonce> {
    XNonce::try_from(bytes).map_err(|_| StoreError::Corrupt("bad nonce length".into()))
}

/// Serialises records as the archive content.
fn encode_content(records: &[Record<'_>]) -> Vec<u8> {
    let size: usize = records
        .iter()
        .map(|(t, k, v)| 1 + t.len() + 8 + k.len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for (t, k, v) in records {
        // Table names are our constants (< 64 bytes); keys and values come
        // from sled and are bounded by what sled accepts.
        out.push(t.len() as u8);
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Builds a complete archive from records. Exposed to the module for tests
/// (fixtures at older schema versions).
pub(crate) fn encode_archive(
    records: &[Record<'_>],
    schema_version: u32,
    passphrase: Option<&str>,
    opts: &BackupOptions,
) -> Result<(Vec<u8>, ArchiveInfo)> {
    for (_, k, v) in records {
        if k.len() > MAX_KEY_LEN || v.len() > MAX_VALUE_LEN {
            return Err(StoreError::InvalidInput(
                "record too large for the archive format".into(),
            ));
        }
    }
    let content = encode_content(records);
    let mut header = Header {
        created_unix_ms: now_ms(),
        serena_version: opts.serena_version.clone(),
        schema_version,
        record_count: records.len() as u64,
        content_len: content.len() as u64,
        content_sha256: hex::encode(Sha256::digest(&content)),
        payload_len: content.len() as u64,
        encryption: None,
    };
    let mut key = None;
    if let Some(pass) = passphrase {
        let salt = random_bytes::<SALT_LEN>()?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        key = Some((derive_key(pass, &salt, opts.kdf)?, nonce));
        header.payload_len = (content.len() + TAG_LEN) as u64;
        header.encryption = Some(Encryption {
            aead: AEAD_NAME.into(),
            nonce: hex::encode(nonce),
            kdf: KdfHeader {
                alg: KDF_NAME.into(),
                version: ARGON2_VERSION,
                m_cost_kib: opts.kdf.m_cost_kib,
                t_cost: opts.kdf.t_cost,
                p_cost: opts.kdf.p_cost,
                salt: hex::encode(salt),
            },
        });
    }
    let header_bytes = serde_json::to_vec(&header)
        .map_err(|e| StoreError::InvalidInput(format!("cannot encode header: {e}")))?;
    let payload = match &key {
        Some((key, nonce)) => cipher(key)?
            .encrypt(
                &nonce_from(nonce)?,
                Payload {
                    msg: &content,
                    aad: &header_bytes,
                },
            )
            .map_err(|_| StoreError::InvalidInput("encryption failed".into()))?,
        None => content,
    };
    let mut out = Vec::with_capacity(PREFIX_LEN + header_bytes.len() + payload.len() + HASH_LEN);
    out.extend_from_slice(ARCHIVE_MAGIC);
    out.extend_from_slice(&ARCHIVE_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&payload);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok((out, header.info()))
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn trailer_ok(bytes: &[u8]) -> bool {
    bytes.len() >= PREFIX_LEN + HASH_LEN && {
        let (body, tail) = bytes.split_at(bytes.len() - HASH_LEN);
        Sha256::digest(body).as_slice() == tail
    }
}

/// A validated archive container: header and the byte range of the payload.
struct Container<'a> {
    header: Header,
    header_bytes: &'a [u8],
    payload: &'a [u8],
}

/// Checks magic, version, lengths and the file checksum.
fn parse_container<'a>(bytes: &'a [u8], path: &Path) -> Result<Container<'a>> {
    let len = bytes.len() as u64;
    if bytes.len() < ARCHIVE_MAGIC.len() {
        return if ARCHIVE_MAGIC.starts_with(bytes) {
            Err(StoreError::Truncated {
                offset: len,
                needed: PREFIX_LEN as u64 - len,
            })
        } else {
            Err(StoreError::NotAnArchive {
                path: path.to_path_buf(),
            })
        };
    }
    if &bytes[..8] != ARCHIVE_MAGIC {
        return Err(StoreError::NotAnArchive {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < PREFIX_LEN {
        return Err(StoreError::Truncated {
            offset: len,
            needed: PREFIX_LEN as u64 - len,
        });
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != ARCHIVE_FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            what: "format",
            found: u32::from(version),
            supported: u32::from(ARCHIVE_FORMAT_VERSION),
        });
    }
    let hlen = be_u32(&bytes[10..14]) as usize;
    let damaged = |what: &str| {
        if trailer_ok(bytes) {
            StoreError::Corrupt(what.to_string())
        } else {
            StoreError::ChecksumMismatch("archive")
        }
    };
    if hlen > MAX_HEADER_LEN {
        return Err(damaged("header too large"));
    }
    let header_end = PREFIX_LEN + hlen;
    if bytes.len() < header_end {
        return Err(StoreError::Truncated {
            offset: len,
            needed: (header_end - bytes.len()) as u64,
        });
    }
    let header_bytes = &bytes[PREFIX_LEN..header_end];
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|_| damaged("header is not valid"))?;
    let total = usize::try_from(header.payload_len)
        .ok()
        .and_then(|p| header_end.checked_add(p))
        .and_then(|n| n.checked_add(HASH_LEN))
        .filter(|&n| n as u64 <= MAX_ARCHIVE_LEN)
        .ok_or_else(|| damaged("payload length out of range"))?;
    if bytes.len() < total {
        return Err(StoreError::Truncated {
            offset: len,
            needed: (total - bytes.len()) as u64,
        });
    }
    if bytes.len() > total {
        return Err(StoreError::Corrupt(format!(
            "{} unexpected bytes after the end of the archive",
            bytes.len() - total
        )));
    }
    if !trailer_ok(bytes) {
        return Err(StoreError::ChecksumMismatch("archive"));
    }
    Ok(Container {
        header,
        header_bytes,
        payload: &bytes[header_end..total - HASH_LEN],
    })
}

fn unhex(field: &str, s: &str, want: std::ops::RangeInclusive<usize>) -> Result<Vec<u8>> {
    let b = hex::decode(s).map_err(|_| StoreError::Corrupt(format!("{field} is not hex")))?;
    if !want.contains(&b.len()) {
        return Err(StoreError::Corrupt(format!("{field} has a bad length")));
    }
    Ok(b)
}

/// Decrypts / checks the payload and returns the plaintext content.
fn open_payload(c: &Container<'_>, passphrase: Option<&str>) -> Result<Zeroizing<Vec<u8>>> {
    let h = &c.header;
    if h.schema_version > CURRENT_SCHEMA {
        return Err(StoreError::UnsupportedVersion {
            what: "schema",
            found: h.schema_version,
            supported: CURRENT_SCHEMA,
        });
    }
    if h.schema_version == 0 {
        return Err(StoreError::Corrupt("schema version 0".into()));
    }
    let content = match &h.encryption {
        None => {
            if passphrase.is_some() {
                tracing::debug!("archive is not encrypted; ignoring the passphrase");
            }
            Zeroizing::new(c.payload.to_vec())
        }
        Some(enc) => {
            let pass = passphrase.ok_or(StoreError::PassphraseRequired)?;
            if enc.aead != AEAD_NAME {
                return Err(StoreError::Corrupt(format!(
                    "unknown cipher {:?}",
                    enc.aead
                )));
            }
            let k = &enc.kdf;
            if k.alg != KDF_NAME || k.version != ARGON2_VERSION {
                return Err(StoreError::Corrupt(format!("unknown KDF {:?}", k.alg)));
            }
            if k.m_cost_kib > MAX_M_COST_KIB
                || k.t_cost == 0
                || k.t_cost > MAX_T_COST
                || k.p_cost == 0
                || k.p_cost > MAX_P_COST
            {
                return Err(StoreError::Corrupt("KDF parameters out of range".into()));
            }
            let salt = unhex("salt", &k.salt, 8..=64)?;
            let nonce = unhex("nonce", &enc.nonce, NONCE_LEN..=NONCE_LEN)?;
            let params = KdfParams {
                m_cost_kib: k.m_cost_kib,
                t_cost: k.t_cost,
                p_cost: k.p_cost,
            };
            let key = derive_key(pass, &salt, params)?;
            let plain = cipher(&key)?
                .decrypt(
                    &nonce_from(&nonce)?,
                    Payload {
                        msg: c.payload,
                        aad: c.header_bytes,
                    },
                )
                .map_err(|_| StoreError::WrongPassphrase)?;
            Zeroizing::new(plain)
        }
    };
    if content.len() as u64 != h.content_len {
        return Err(StoreError::Corrupt("content length mismatch".into()));
    }
    if hex::encode(Sha256::digest(content.as_slice())) != h.content_sha256 {
        return Err(StoreError::ChecksumMismatch("content"));
    }
    Ok(content)
}

/// Cursor over the content with bounded reads.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{what} runs past the end of the content"))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len_field(&mut self, width: usize, max: usize, what: &str) -> Result<usize> {
        let b = self.take(width, what)?;
        let n = if width == 1 {
            b[0] as usize
        } else {
            be_u32(b) as usize
        };
        if n > max {
            return Err(StoreError::Corrupt(format!(
                "{what} length {n} exceeds {max}"
            )));
        }
        Ok(n)
    }
}

/// Parses every record of the content, bounded; checks table names and the
/// record count.
pub(crate) fn parse_records<'a>(content: &'a [u8], expected: u64) -> Result<Vec<Record<'a>>> {
    let mut r = Reader {
        buf: content,
        pos: 0,
    };
    let mut out = Vec::new();
    while r.pos < content.len() {
        if out.len() as u64 >= expected {
            return Err(StoreError::Corrupt("more records than declared".into()));
        }
        let n = r.len_field(1, MAX_TABLE_NAME_LEN, "table name")?;
        let name = r.take(n, "table name")?;
        let table = std::str::from_utf8(name)
            .ok()
            .and_then(tables::table_name)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("unknown table {:?}", String::from_utf8_lossy(name)))
            })?;
        let n = r.len_field(4, MAX_KEY_LEN, "key")?;
        let key = r.take(n, "key")?;
        let n = r.len_field(4, MAX_VALUE_LEN, "value")?;
        let value = r.take(n, "value")?;
        out.push((table, key, value));
    }
    if out.len() as u64 != expected {
        return Err(StoreError::Corrupt(format!(
            "{} records found, {expected} declared",
            out.len()
        )));
    }
    Ok(out)
}

/// A fully checked archive in memory.
struct Validated {
    header: Header,
    content: Zeroizing<Vec<u8>>,
}

fn read_archive_file(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_ARCHIVE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(path, e))?;
    if bytes.len() as u64 > MAX_ARCHIVE_LEN {
        return Err(StoreError::Corrupt("archive larger than 4 GiB".into()));
    }
    Ok(bytes)
}

/// Validates archive bytes completely: container, checksum, decryption,
/// record structure; at the current schema also every record's value.
fn validate(bytes: &[u8], path: &Path, passphrase: Option<&str>) -> Result<Validated> {
    let c = parse_container(bytes, path)?;
    let content = open_payload(&c, passphrase)?;
    let records = parse_records(&content, c.header.record_count)?;
    let mut schema_seen = None;
    for (table, key, value) in &records {
        if *table == META && *key == SCHEMA_KEY {
            schema_seen = Some(value.to_vec());
        }
        if c.header.schema_version == CURRENT_SCHEMA {
            tables::check_record(table, key, value)
                .map_err(|e| StoreError::Corrupt(format!("record in {table}: {e}")))?;
        }
    }
    if let Some(v) = schema_seen {
        if v != c.header.schema_version.to_be_bytes() {
            return Err(StoreError::Corrupt(
                "schema version in header and data differ".into(),
            ));
        }
    }
    drop(records);
    Ok(Validated {
        header: c.header,
        content,
    })
}

/// Reads and checks an archive's container (magic, version, lengths, file
/// checksum) and returns its header, without decrypting it.
///
/// # Errors
/// [`StoreError::Io`] if it cannot be read; [`StoreError::NotAnArchive`],
/// [`StoreError::UnsupportedVersion`], [`StoreError::Truncated`],
/// [`StoreError::ChecksumMismatch`], [`StoreError::Corrupt`].
pub fn read_archive_info(path: &Path) -> Result<ArchiveInfo> {
    let bytes = read_archive_file(path)?;
    Ok(parse_container(&bytes, path)?.header.info())
}

/// Validates the archive bytes as [`restore_dir`] would, without touching
/// any store. Exposed to the module for tests.
#[cfg(test)]
pub(crate) fn check_archive_bytes(bytes: &[u8], passphrase: Option<&str>) -> Result<ArchiveInfo> {
    Ok(validate(bytes, Path::new("<memory>"), passphrase)?
        .header
        .info())
}

impl Store {
    /// Writes a backup of the whole store to `out` (see [`Store::backup_with`]).
    ///
    /// # Errors
    /// As [`Store::backup_with`].
    pub fn backup(&self, out: &Path, passphrase: Option<&str>) -> Result<BackupInfo> {
        self.backup_with(out, passphrase, &BackupOptions::default())
    }

    /// Writes a backup archive to `out`, encrypted if `passphrase` is given.
    ///
    /// The snapshot is consistent across all tables: writers wait while the
    /// data is copied into memory (readers do not); the store stays usable.
    /// The file is written to a temp file, fsynced and renamed, so `out`
    /// never holds a partial archive.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty passphrase or a record too
    /// large for the format; [`StoreError::Io`] if the file cannot be
    /// written (retryable); database errors.
    pub fn backup_with(
        &self,
        out: &Path,
        passphrase: Option<&str>,
        opts: &BackupOptions,
    ) -> Result<BackupInfo> {
        if passphrase.is_some_and(str::is_empty) {
            return Err(StoreError::InvalidInput("empty passphrase".into()));
        }
        let snapshot = {
            let _g = self.snapshot_guard();
            let mut snap = Vec::new();
            for name in ALL_TABLES {
                let tree = self
                    .t
                    .by_name(name)
                    .ok_or_else(|| StoreError::Db(format!("table {name} missing")))?;
                for kv in tree.iter() {
                    let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                    snap.push((name, k, v));
                }
            }
            snap
        };
        let schema = migrations::schema_version(&self.t.meta)?.unwrap_or(CURRENT_SCHEMA);
        let records: Vec<Record<'_>> = snapshot
            .iter()
            .map(|(t, k, v)| (*t, k.as_ref(), v.as_ref()))
            .collect();
        let (bytes, archive) = encode_archive(&records, schema, passphrase, opts)?;
        drop(records);
        drop(snapshot);
        layout::write_file_atomic(out, &bytes)?;
        tracing::info!(
            path = %out.display(),
            records = archive.record_count,
            bytes = bytes.len(),
            encrypted = archive.encrypted,
            "backup written"
        );
        Ok(BackupInfo {
            path: out.to_path_buf(),
            size_bytes: bytes.len() as u64,
            archive,
        })
    }

    /// Writes every table, decoded, as one JSON document to `w`:
    /// `{"format":"serena-export", "schema_version", "exported_unix_ms",
    /// "history": [...], "notes": [...], "lists": [{name, created_ms,
    /// items: [...]}], "timers": [...], "settings": {...}, "metrics": [...]}`.
    /// Not a backup format (restore reads archives only), and not a
    /// snapshot: tables are read one after the other while writes go on.
    ///
    /// # Errors
    /// [`StoreError::Io`] if writing fails; [`StoreError::CorruptRecord`] if
    /// a record cannot be decoded; database errors.
    pub fn export_json(&self, w: &mut dyn Write) -> Result<()> {
        let io = |e: std::io::Error| StoreError::io(Path::new("<export>"), e);
        let js = |e: serde_json::Error| {
            if e.is_io() {
                StoreError::io(Path::new("<export>"), std::io::Error::other(e))
            } else {
                StoreError::Db(format!("json: {e}"))
            }
        };
        write!(
            w,
            "{{\"format\":\"serena-export\",\"schema_version\":{},\"exported_unix_ms\":{}",
            CURRENT_SCHEMA,
            now_ms()
        )
        .map_err(io)?;
        for name in ["history", "notes", "timers", "metrics"] {
            let tree = self
                .t
                .by_name(name)
                .ok_or_else(|| StoreError::Db(format!("table {name} missing")))?;
            let table = tables::table_name(name).unwrap_or(META);
            write!(w, ",\"{name}\":[").map_err(io)?;
            for (i, kv) in tree.iter().enumerate() {
                let (k, v) = kv?;
                if i > 0 {
                    w.write_all(b",").map_err(io)?;
                }
                serde_json::to_writer(&mut *w, &decode_any(table, &k, &v)?).map_err(js)?;
            }
            w.write_all(b"]").map_err(io)?;
        }
        w.write_all(b",\"lists\":[").map_err(io)?;
        for (i, list) in self.list_names()?.into_iter().enumerate() {
            if i > 0 {
                w.write_all(b",").map_err(io)?;
            }
            let ListInfo { name, created_ms } = list;
            let items = self.list_items(&name)?;
            serde_json::to_writer(
                &mut *w,
                &serde_json::json!({ "name": name, "created_ms": created_ms, "items": items }),
            )
            .map_err(js)?;
        }
        w.write_all(b"],\"settings\":").map_err(io)?;
        serde_json::to_writer(&mut *w, &self.settings()?).map_err(js)?;
        w.write_all(b"}\n").map_err(io)?;
        w.flush().map_err(io)
    }
}

/// Restores `archive` into the (closed) store directory `dir`.
///
/// Everything is validated before the live data is touched: the archive
/// container, checksums, decryption, every record's structure; then the
/// data is written to a staging database `dir/db.new`, migrated if the
/// archive's schema is older, and every record is decoded. Only then is the
/// staging copy swapped in (crash-safe, see the `layout` module docs); the
/// replaced data is kept in `dir/db.undo` for [`undo_restore_dir`] (replacing
/// what an earlier restore kept there). On any error the live data is left
/// exactly as it was.
///
/// # Errors
/// [`StoreError::Locked`] if a `Store` is open on `dir`;
/// [`StoreError::NotAnArchive`], [`StoreError::UnsupportedVersion`],
/// [`StoreError::Truncated`], [`StoreError::ChecksumMismatch`],
/// [`StoreError::Corrupt`], [`StoreError::PassphraseRequired`],
/// [`StoreError::WrongPassphrase`] for unusable archives;
/// [`StoreError::Migration`] if the archive's data cannot be migrated;
/// [`StoreError::Io`] / [`StoreError::Db`] for file system failures.
pub fn restore_dir(dir: &Path, archive: &Path, passphrase: Option<&str>) -> Result<RestoreInfo> {
    let _lock = layout::lock_dir(dir)?;
    layout::recover(dir)?;
    let bytes = read_archive_file(archive)?;
    let validated = validate(&bytes, archive, passphrase)?;
    drop(bytes);
    let info = validated.header.info();
    let migrated_from = match build_staging(dir, &validated) {
        Ok(m) => m,
        Err(e) => {
            if let Err(cleanup) = layout::remove_staging(dir) {
                tracing::warn!(error = %cleanup, "could not remove the restore staging copy");
            }
            return Err(e);
        }
    };
    let had_data = dir.join(layout::DB_DIR).exists();
    layout::install_new(dir)?;
    tracing::info!(
        dir = %dir.display(),
        records = info.record_count,
        schema = info.schema_version,
        "backup restored"
    );
    Ok(RestoreInfo {
        archive: info,
        migrated_from,
        undo_available: had_data,
    })
}

/// Writes the validated records into `dir/db.new`, migrates and verifies
/// them, flushes and closes it.
fn build_staging(dir: &Path, v: &Validated) -> Result<Option<u32>> {
    layout::remove_staging(dir)?;
    let path = dir.join(NEW_DIR);
    let db = open_sled(&path, 16 * 1024 * 1024)?;
    let t = Tables::open(&db)?;
    let records = parse_records(&v.content, v.header.record_count)?;
    let mut batches: Vec<(&'static str, sled::Batch, usize)> = Vec::new();
    for (table, key, value) in records {
        let needs_new = match batches.last() {
            Some((t, _, n)) => *t != table || *n >= RESTORE_BATCH,
            None => true,
        };
        if needs_new {
            if let Some((name, batch, _)) = batches.pop() {
                apply(&t, name, batch)?;
            }
            batches.push((table, sled::Batch::default(), 0));
        }
        if let Some((_, batch, n)) = batches.last_mut() {
            batch.insert(key, value);
            *n += 1;
        }
    }
    if let Some((name, batch, _)) = batches.pop() {
        apply(&t, name, batch)?;
    }
    t.meta
        .insert(SCHEMA_KEY, &v.header.schema_version.to_be_bytes())?;
    db.flush()?;
    let migrated = migrations::migrate(&db)?;
    // Records at the current schema were decoded by `validate` already;
    // migrated ones are decoded here, before anything goes live.
    if migrated.is_some() {
        for name in ALL_TABLES {
            let tree = t
                .by_name(name)
                .ok_or_else(|| StoreError::Db(format!("table {name} missing")))?;
            for kv in tree.iter() {
                let (k, val) = kv?;
                tables::check_record(name, &k, &val)
                    .map_err(|e| StoreError::Corrupt(format!("restored record in {name}: {e}")))?;
            }
        }
    }
    db.flush()?;
    drop(t);
    drop(db);
    layout::restrict_tree(&path)?;
    layout::fsync_dir(dir)?;
    Ok(migrated)
}

fn apply(t: &Tables, name: &'static str, batch: sled::Batch) -> Result<()> {
    t.by_name(name)
        .ok_or_else(|| StoreError::Db(format!("table {name} missing")))?
        .apply_batch(batch)?;
    Ok(())
}

/// Puts back the data replaced by the last [`restore_dir`] on the (closed)
/// store directory `dir`. The restored data takes its place in `db.undo`,
/// so calling it again redoes the restore. Crash-safe like restore.
///
/// # Errors
/// [`StoreError::Locked`] if a `Store` is open on `dir`;
/// [`StoreError::NothingToUndo`] if no replaced data is kept;
/// [`StoreError::Io`] for file system failures.
pub fn undo_restore_dir(dir: &Path) -> Result<()> {
    let _lock = layout::lock_dir(dir)?;
    layout::recover(dir)?;
    layout::install_undo(dir)?;
    tracing::info!(dir = %dir.display(), "restore undone");
    Ok(())
}
