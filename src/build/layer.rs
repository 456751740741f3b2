//! The deterministic layer writer: sorted entries, fixed mtime, PAX headers for long names,
//! gzip with fixed settings, streamed to a file while both digests are computed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::BuildError;
use super::rootfs::{Entry, EntryKind};

/// Compression level of every layer houba writes. Changing it changes every rebuilt digest,
/// so it is part of the engine format version.
const GZIP_LEVEL: u32 = 6;

/// A blob written to the work directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    /// The compressed layer on disk; the caller uploads it and removes it.
    pub path: PathBuf,
    /// `sha256:` of the compressed bytes (the blob digest).
    pub digest: String,
    /// Size of the compressed bytes.
    pub size: u64,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
}

/// Counts and hashes what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{:x}", self.hasher.finalize());
        (self.inner, digest, self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One PAX extended-header record: `"<len> <key>=<value>\n"`, where `<len>` counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

fn base_header(mode: u32, uid: u64, gid: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_mode(mode & 0o7777);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(mtime);
    header.set_size(0);
    header
}

/// Truncates a name for the ustar field when a PAX record carries the real one.
fn set_truncated_name(header: &mut tar::Header, name: &str) {
    let bytes = name.as_bytes();
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    entry: &Entry,
    mtime: u64,
) -> io::Result<()> {
    let mut header = base_header(entry.mode, entry.uid, entry.gid, mtime);
    let (name, data): (String, &[u8]) = match &entry.kind {
        EntryKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            (format!("{path}/"), &[])
        }
        EntryKind::File(data) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            (path.to_string(), data)
        }
        EntryKind::Symlink(_) => {
            header.set_entry_type(tar::EntryType::Symlink);
            (path.to_string(), &[])
        }
        EntryKind::Other => {
            return Err(io::Error::other(format!(
                "/{path}: only directories, files and symlinks are written"
            )));
        }
    };
    let mut pax: Vec<u8> = Vec::new();
    if header.set_path(&name).is_err() {
        pax.extend(pax_record("path", name.as_bytes()));
        set_truncated_name(&mut header, &name);
    }
    if let EntryKind::Symlink(target) = &entry.kind
        && header.set_link_name(target).is_err()
    {
        pax.extend(pax_record("linkpath", target.as_bytes()));
    }
    if !pax.is_empty() {
        let mut pax_header = base_header(0o644, 0, 0, mtime);
        pax_header.set_entry_type(tar::EntryType::XHeader);
        pax_header.set_size(pax.len() as u64);
        let short: String = name.chars().rev().take(80).collect::<String>();
        let short: String = short.chars().rev().collect();
        set_truncated_name(&mut pax_header, &format!("PaxHeaders/{short}"));
        pax_header.set_cksum();
        builder.append(&pax_header, pax.as_slice())?;
    }
    header.set_cksum();
    builder.append(&header, data)
}

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Writes `entries` (every path already present with its parents) as a gzip-compressed tar in
/// `workdir`, named after its digest.
pub(crate) fn write_layer(
    image: &str,
    entries: &BTreeMap<String, Entry>,
    mtime: u64,
    workdir: &Path,
) -> Result<NewBlob, BuildError> {
    let io_err = |context: &str, source: io::Error| BuildError::Io {
        image: image.to_string(),
        context: format!("{context} in {}", workdir.display()),
        error: source,
    };
    std::fs::create_dir_all(workdir).map_err(|e| io_err("creating the work directory", e))?;
    let temp = workdir.join(format!(
        "layer-{}-{}.partial",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<(String, u64, String)> {
        let file = File::create(&temp)?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let gzip = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(compressed, flate2::Compression::new(GZIP_LEVEL));
        let mut builder = tar::Builder::new(HashingWriter::new(gzip));
        for (path, entry) in entries {
            append_entry(&mut builder, path, entry, mtime)?;
        }
        let (gzip, diff_id, _) = builder.into_inner()?.finish();
        let (buffered, digest, size) = gzip.finish()?.finish();
        buffered
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok((digest, size, diff_id))
    })();
    let (digest, size, diff_id) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(io_err("writing the new layer", e));
        }
    };
    let path = workdir.join(format!(
        "layer-{}.tar.gz",
        digest.trim_start_matches("sha256:")
    ));
    std::fs::rename(&temp, &path).map_err(|e| io_err("naming the new layer", e))?;
    Ok(NewBlob {
        path,
        digest,
        size,
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let rec = pax_record("path", &[b'a'; 90]);
        let text = String::from_utf8(rec.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rec.len());
        // Crossing a power of ten: the length grows by one digit.
        for n in 85..100 {
            let rec = pax_record("k", &vec![b'v'; n]);
            let text = String::from_utf8(rec.clone()).unwrap();
            assert_eq!(
                text.split_once(' ').unwrap().0.parse::<usize>().unwrap(),
                rec.len()
            );
        }
    }

    #[test]
    fn long_names_round_trip_and_output_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("etc/{}/{}", "d".repeat(120), "f".repeat(150));
        let mut entries = BTreeMap::new();
        entries.insert(
            "etc".to_string(),
            Entry {
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        entries.insert(
            long.clone(),
            Entry {
                kind: EntryKind::File(b"x".to_vec()),
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        );
        entries.insert(
            "etc/link".to_string(),
            Entry {
                kind: EntryKind::Symlink(format!("/{}", "t".repeat(200))),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        let a = write_layer("img", &entries, 42, dir.path()).unwrap();
        let b = write_layer("img", &entries, 42, &dir.path().join("again")).unwrap();
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));

        let gz = std::fs::File::open(&a.path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 42);
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.push((e.path().unwrap().to_string_lossy().into_owned(), link));
        }
        assert_eq!(
            seen,
            vec![
                ("etc/".to_string(), None),
                (long, None),
                (
                    "etc/link".to_string(),
                    Some(format!("/{}", "t".repeat(200)))
                ),
            ]
        );
    }
}
