//! Reading what a user names (a request, a plugin, a params file, an ndjson stream) with a
//! bound: anything larger is refused with one sentence before it is read whole, and a named
//! pipe with no writer reads as empty instead of hanging.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::Path;

/// Largest request (a 10-million-nonce list is about 120 MiB).
pub const MAX_REQUEST_BYTES: u64 = 1 << 30;
/// Largest plugin component (the built-in ones are a few hundred KiB).
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;
/// Largest params file.
pub const MAX_PARAMS_BYTES: u64 = 1 << 20;

/// Open `path` for reading. A FIFO is opened without waiting for a writer (a plain open
/// would block until one comes): with no writer it reads as empty.
pub fn open(path: &Path) -> std::io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        // Back to blocking reads: a writer that is there is waited for, as usual.
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let fd = file.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    File::open(path)
}

/// All of `reader`, at most `max` bytes; `what` names it in the error.
pub fn read_bounded(reader: impl Read, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > max {
        bail!(
            "{what} is larger than {}: refused before reading it whole",
            size(max)
        );
    }
    Ok(bytes)
}

/// The file at `path`, at most `max` bytes.
pub fn read_file_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = open(path).with_context(|| format!("cannot open {what} {}", path.display()))?;
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > max
    {
        bail!(
            "{what} {} is {} bytes, larger than the {} allowed",
            path.display(),
            meta.len(),
            size(max)
        );
    }
    read_bounded(file, max, &format!("{what} {}", path.display()))
}

/// One line of `reader` (without its newline), at most `max` bytes: `Ok(None)` at the end.
/// A longer line is an error; the reader is then left inside it.
pub fn read_line_bounded(reader: &mut impl BufRead, max: u64) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(max + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() as u64 > max {
        bail!(
            "a line is longer than {}: refused before reading it whole",
            size(max)
        );
    }
    Ok(Some(line))
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        assert_eq!(read_bounded(&b"abc"[..], 3, "x").unwrap(), b"abc");
        let e = read_bounded(std::io::repeat(0), 1000, "the request").unwrap_err();
        assert!(e.to_string().contains("larger than 1000 bytes"), "{e}");
        let mut r = std::io::BufReader::new(&b"one\r\ntwo\nthree"[..]);
        assert_eq!(read_line_bounded(&mut r, 10).unwrap().unwrap(), b"one");
        assert_eq!(read_line_bounded(&mut r, 10).unwrap().unwrap(), b"two");
        assert_eq!(read_line_bounded(&mut r, 10).unwrap().unwrap(), b"three");
        assert!(read_line_bounded(&mut r, 10).unwrap().is_none());
        let mut endless = std::io::BufReader::new(std::io::repeat(b'x'));
        assert!(read_line_bounded(&mut endless, 1000).is_err());
    }
}
