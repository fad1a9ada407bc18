//! The one way this daemon reads a file: at most a cap of bytes, so that a
//! path pointing at `/dev/zero`, a FIFO's endless writer or a huge file costs a
//! bounded read and a clear error naming the file and the cap, never the
//! daemon's memory. Config files, pynchy's `config.toml` and `.env`, CA files
//! and `/proc` tables all come through here.
use std::io::Read;
use std::path::{Path, PathBuf};

/// A config file, pynchy's `config.toml` or `.env`: a few KB in practice.
pub const CONFIG: u64 = 1024 * 1024;
/// A PEM bundle: Debian's whole system bundle is about 220 KB.
pub const PEM: u64 = 4 * 1024 * 1024;
/// A `/proc` table (`/proc/net/tcp` with 100,000 sockets is about 15 MB).
pub const PROC_TABLE: u64 = 64 * 1024 * 1024;
/// A `/proc/<pid>` file (`stat`, `cmdline`).
pub const PROC_FILE: u64 = 256 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {cap}: not read")]
    TooLarge { path: PathBuf, cap: String },
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
}

impl FileError {
    /// The I/O error's kind, when it is one (`NotFound` is often normal).
    pub fn kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            FileError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// `bytes` for people: "1 MiB", "4 KiB", "300 B".
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// At most `cap` bytes of `path`; a longer file is an error, not a prefix.
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            cap: size_text(cap),
        });
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, cap: u64) -> Result<String, FileError> {
    String::from_utf8(read(path, cap)?).map_err(|_| FileError::NotText {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_an_error_naming_it_and_the_cap() {
        let e = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero is larger than 1 KiB: not read");
    }

    #[test]
    fn a_file_at_the_cap_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abcd").unwrap();
        assert_eq!(read_text(&p, 4).unwrap(), "abcd");
        assert!(matches!(read(&p, 3), Err(FileError::TooLarge { .. })));
        assert_eq!(
            read(&dir.path().join("missing"), 4).unwrap_err().kind(),
            Some(std::io::ErrorKind::NotFound)
        );
    }
}
