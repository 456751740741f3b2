//! rpm's SQLite database (rpm ≥ 4.16: RHEL/UBI 9, Fedora): table `Packages`, one rpm header
//! blob per installed package. A header blob is `il` (entry count) and `dl` (data length) as
//! big-endian `u32`, then `il` index entries of 16 bytes (tag, type, offset, count), then the
//! data store the offsets point into.

use std::io::Write;

use super::packages::{Ecosystem, Package};

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_VENDOR: u32 = 1011;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// Upper bounds rpm itself enforces on a header (`hdrchkTags`, `hdrchkData`).
const MAX_TAGS: usize = 0x0000_ffff;
const MAX_DATA: usize = 0x0fff_ffff;

/// The packages of an `rpmdb.sqlite` file's bytes.
pub fn read_sqlite(db: &[u8]) -> Result<Vec<Package>, String> {
    // SQLite opens files, not buffers: a private temporary copy, opened read-only.
    let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    file.write_all(db)
        .map_err(|e| format!("temporary file: {e}"))?;
    let connection = rusqlite::Connection::open_with_flags(
        file.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("not an SQLite database: {e}"))?;
    let mut statement = connection
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(|e| format!("no Packages table: {e}"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(|e| format!("reading Packages: {e}"))?;
    let mut packages = Vec::new();
    for row in rows {
        let (hnum, blob) = row.map_err(|e| format!("reading Packages: {e}"))?;
        let header = Header::parse(&blob).map_err(|e| format!("package #{hnum}: {e}"))?;
        if let Some(package) = header.package() {
            packages.push(package);
        }
    }
    Ok(packages)
}

struct Header<'a> {
    entries: Vec<(u32, u32, usize, usize)>,
    data: &'a [u8],
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Header<'a>, String> {
        let il = be32(blob, 0).ok_or("header shorter than 8 bytes")? as usize;
        let dl = be32(blob, 4).ok_or("header shorter than 8 bytes")? as usize;
        if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
            return Err(format!("implausible header ({il} tags, {dl} data bytes)"));
        }
        let data_start = 8 + il * 16;
        let data = blob
            .get(data_start..data_start + dl)
            .ok_or("header data runs past the blob")?;
        let entries = (0..il)
            .map(|i| {
                let at = 8 + i * 16;
                let field = |k: usize| be32(blob, at + 4 * k).unwrap_or(0);
                (field(0), field(1), field(2) as usize, field(3) as usize)
            })
            .collect();
        Ok(Header { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<(u32, usize, usize)> {
        self.entries
            .iter()
            .find(|(t, ..)| *t == tag)
            .map(|&(_, kind, offset, count)| (kind, offset, count))
    }

    fn string(&self, tag: u32) -> Option<String> {
        let (kind, offset, _) = self.entry(tag)?;
        if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
            return None;
        }
        let rest = self.data.get(offset..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn int32(&self, tag: u32) -> Option<u64> {
        let (kind, offset, count) = self.entry(tag)?;
        (kind == TYPE_INT32 && count >= 1).then_some(())?;
        be32(self.data, offset).map(u64::from)
    }

    fn package(&self) -> Option<Package> {
        // Imported signing keys (`gpg-pubkey`) are listed too, as `rpm -qa` and syft list them.
        let name = self.string(TAG_NAME)?;
        let version = self.string(TAG_VERSION)?;
        let release = self.string(TAG_RELEASE)?;
        let epoch = self.int32(TAG_EPOCH);
        let full = match epoch {
            Some(e) => format!("{e}:{version}-{release}"),
            None => format!("{version}-{release}"),
        };
        Some(Package {
            ecosystem: Ecosystem::Rpm,
            name,
            version: full,
            arch: self.string(TAG_ARCH),
            license: self.string(TAG_LICENSE),
            source: self.string(TAG_SOURCERPM),
            supplier: self.string(TAG_VENDOR),
            epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob with string tags and an optional epoch, laid out as rpm does.
    fn header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        let mut tags: Vec<(u32, u32, Vec<u8>)> = strings
            .iter()
            .map(|(t, s)| (*t, TYPE_STRING, [s.as_bytes(), &[0]].concat()))
            .collect();
        if let Some(e) = epoch {
            tags.push((TAG_EPOCH, TYPE_INT32, e.to_be_bytes().to_vec()));
        }
        tags.sort_by_key(|(t, ..)| *t);
        for (tag, kind, bytes) in &tags {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *kind, data.len() as u32, 1] {
                index.extend(v.to_be_bytes());
            }
            data.extend(bytes);
        }
        let mut blob = Vec::new();
        blob.extend((tags.len() as u32).to_be_bytes());
        blob.extend((data.len() as u32).to_be_bytes());
        blob.extend(index);
        blob.extend(data);
        blob
    }

    #[test]
    fn headers_give_name_epoch_version_release_arch_and_licence() {
        let blob = header(
            &[
                (TAG_NAME, "bash"),
                (TAG_VERSION, "5.1.8"),
                (TAG_RELEASE, "9.el9"),
                (TAG_ARCH, "x86_64"),
                (TAG_LICENSE, "GPLv3+"),
            ],
            Some(1),
        );
        let package = Header::parse(&blob).unwrap().package().unwrap();
        assert_eq!(package.name, "bash");
        assert_eq!(package.version, "1:5.1.8-9.el9");
        assert_eq!(package.epoch, Some(1));
        assert_eq!(package.license.as_deref(), Some("GPLv3+"));
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        assert!(Header::parse(&[0, 0, 0, 9]).is_err());
        assert!(Header::parse(&[0, 0, 0, 1, 0, 0, 0, 4, 0]).is_err());
        let mut blob = header(&[(TAG_NAME, "x")], None);
        blob.truncate(blob.len() - 1);
        assert!(Header::parse(&blob).is_err());
    }

    #[test]
    fn a_sqlite_database_is_read_in_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpmdb.sqlite");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        for (name, version) in [("gpg-pubkey", "fd431d51"), ("zlib", "1.2.11")] {
            let blob = header(
                &[
                    (TAG_NAME, name),
                    (TAG_VERSION, version),
                    (TAG_RELEASE, "1.el9"),
                ],
                None,
            );
            db.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
                .unwrap();
        }
        drop(db);
        let packages = read_sqlite(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "gpg-pubkey");
        assert_eq!(packages[1].version, "1.2.11-1.el9");
        assert!(read_sqlite(b"not sqlite").is_err());
    }
}
