//! Atomic publish: write under a hidden temporary name beside the final path, then fsync and
//! rename, so a file appears under its final name only when complete.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::error::{Error, IoContext, Result};

/// Writes are batched to this size before reaching the kernel; large enough to keep syscall
/// overhead far below hashing and compression costs.
const BUFFER: usize = 256 * 1024;

/// How an [`AtomicFile`] is created and published.
#[derive(Debug, Clone)]
pub struct AtomicOptions {
    /// Create missing parent directories (like `mkdir -p`).
    pub create_dirs: bool,
    /// Replace an existing final file. When false, creation fails early if the final file
    /// exists, and the commit is a no-clobber link, so a file created meanwhile is kept too.
    pub overwrite: bool,
    /// Permission bits of the new file, before the umask. The default is `0o600`: what rb
    /// writes (dumps with role password hashes, archives of `.env` files, reports with step
    /// outputs) is for its owner only, as `pg_basebackup` and restic create their files.
    pub mode: u32,
}

impl Default for AtomicOptions {
    fn default() -> Self {
        Self {
            create_dirs: false,
            overwrite: true,
            mode: 0o600,
        }
    }
}

/// A file being written under a temporary name, published by [`AtomicFile::commit`].
///
/// The temporary file is `.NAME.rb-tmp.PID.RANDOM` in the same directory as the final path,
/// so the rename never crosses a file system. Dropping an `AtomicFile` without committing
/// (after an error, a panic, a cancelled step) removes the temporary file: nothing half
/// written survives under any name, short of the process being killed.
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` only while committing.
    writer: Option<BufWriter<NamedTempFile>>,
    path: PathBuf,
    overwrite: bool,
}

impl AtomicFile {
    /// Starts writing `path` with the default options (overwrite, no parent creation).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_options(path, &AtomicOptions::default())
    }

    /// Starts writing `path` with `options`.
    pub fn with_options(path: impl AsRef<Path>, options: &AtomicOptions) -> Result<Self> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("`{}` is not a file name", path.display())))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if options.create_dirs {
            fs::create_dir_all(dir).ctx("create directory", dir)?;
        }
        // Checked here as well as at commit so a long compression does not run for nothing.
        if !options.overwrite && fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        remove_stale_temps(dir, &name.to_string_lossy());
        let prefix = format!(".{}.rb-tmp.{}.", name.to_string_lossy(), std::process::id());
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .rand_bytes(8)
            .permissions(Permissions::from_mode(options.mode))
            .tempfile_in(dir)
            .ctx("create a temporary file in", dir)?;
        Ok(Self {
            writer: Some(BufWriter::with_capacity(BUFFER, file)),
            path: path.to_path_buf(),
            overwrite: options.overwrite,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        self.temp().path()
    }

    /// The open temporary file, to set permissions or times before the commit.
    pub fn file(&self) -> &File {
        self.temp().as_file()
    }

    fn temp(&self) -> &NamedTempFile {
        self.writer
            .as_ref()
            .expect("writer present until commit")
            .get_ref()
    }

    /// Flushes, fsyncs the file, renames it to the final name and fsyncs the directory, so
    /// the publish survives a crash. Returns the final path.
    ///
    /// # Panics
    ///
    /// Never: `commit` consumes the file, which holds its writer until then.
    pub fn commit(mut self) -> Result<PathBuf> {
        let writer = self.writer.take().expect("writer present until commit");
        let temp = writer
            .into_inner()
            .map_err(|e| Error::io("write", &self.path, e.into_error()))?;
        temp.as_file().sync_all().ctx("fsync", temp.path())?;
        let persisted = if self.overwrite {
            temp.persist(&self.path)
        } else {
            temp.persist_noclobber(&self.path)
        };
        if let Err(e) = persisted {
            // `e.file` drops here, removing the temporary file.
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                return Err(Error::AlreadyExists {
                    path: self.path.clone(),
                });
            }
            return Err(Error::io("rename to", &self.path, e.error));
        }
        sync_parent(&self.path)?;
        Ok(self.path.clone())
    }
}

/// Removes the temporary files of `name` left in `dir` by writers that died (a `kill -9`, a
/// power cut): their process id is in the name and that process is gone. A resumed run
/// writes the same final names again, so this is where the leftovers of a crash go.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.rb-tmp.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Fsyncs the directory holding `path`, making a rename or creation in it durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("writer present").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.as_mut().expect("writer present").write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("writer present").flush()
    }
}

/// Whether process `pid` exists (on this machine).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM still means the process exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}
