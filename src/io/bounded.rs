//! Reading a whole small file (a runbook, a params file, a secret) with its size bounded by
//! the read itself, not by its metadata: `/dev/zero`, a FIFO or a process substitution
//! reports size 0 and never ends.

use std::io::Read;
use std::path::Path;

/// What a bounded read found.
#[derive(Debug)]
pub enum Bounded {
    /// The whole file, at most the limit.
    Read(Vec<u8>),
    /// More than the limit: reading stopped there.
    TooLarge,
}

/// Read `path` whole unless it holds more than `max` bytes.
pub fn read(path: &Path, max: u64) -> std::io::Result<Bounded> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        Ok(Bounded::TooLarge)
    } else {
        Ok(Bounded::Read(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_stops_at_the_limit() {
        assert!(matches!(
            read(Path::new("/dev/zero"), 1024).unwrap(),
            Bounded::TooLarge
        ));
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "abc").unwrap();
        assert!(matches!(read(f.path(), 3).unwrap(), Bounded::Read(b) if b == b"abc"));
    }
}
