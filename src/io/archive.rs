//! tar archives, plain or compressed: create from a tree with excludes, and extract safely.
//!
//! Extraction refuses, naming the entry: absolute paths, `..` components, symbolic links
//! whose target (followed through links extracted or already present) leaves the
//! destination, hard links to anything but a file extracted earlier from the same archive,
//! and any entry whose path goes through a symbolic link (the "link, then a file under it"
//! trick). Nothing is ever written outside the destination, even before a refusal. Creation
//! refuses, by the same rule, a symbolic link whose target leaves the archived tree: an
//! archive rb makes is always one it extracts (a backup that cannot be restored is worse
//! than a backup that fails).
//!
//! Entries land in a staging directory first:
//! - when `dest` does not exist, a hidden directory beside it (`.NAME.rb-tmp.PID.RANDOM`)
//!   that is renamed to `dest` once everything is extracted and checked, so `dest` appears
//!   complete or not at all;
//! - when `dest` exists (an empty `PGDATA` made with the right owner and mode, say), a
//!   hidden directory inside it; once all is extracted and checked, each top-level entry is
//!   renamed into `dest`. No top-level name may already exist in `dest`: nothing is merged
//!   into or replaced in an existing tree. `dest` keeps its own mode and owner.
//!
//! On any error the staging directory is removed. Modes (less setuid, setgid and sticky bits)
//! and modification times are restored; owners are those of the extracting user.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, FileTimes, Metadata, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use tar::{EntryType, Header, HeaderMode};
use walkdir::WalkDir;

use super::compress::{Decoder, Format, copy_attributed};
use super::digest::HashingReader;
use super::error::{Error, IoContext, Result};
use super::sink::FileSink;

/// Symbolic links followed while checking one target before giving up, as the kernel does.
const MAX_LINK_FOLLOWS: usize = 40;

/// An archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ArchiveFormat {
    /// Uncompressed tar, `.tar`.
    #[serde(rename = "tar")]
    Tar,
    /// gzip-compressed tar, `.tar.gz` or `.tgz`.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// zstd-compressed tar, `.tar.zst` or `.tzst`.
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl ArchiveFormat {
    /// The format named by the end of `path`'s file name.
    pub fn from_extension(path: impl AsRef<Path>) -> Option<Self> {
        let name = path.as_ref().file_name()?.to_str()?.to_ascii_lowercase();
        let (stem, ext) = name.rsplit_once('.')?;
        let inner_tar = || stem.rsplit_once('.').is_some_and(|(_, e)| e == "tar");
        match ext {
            "tar" => Some(Self::Tar),
            "tgz" => Some(Self::TarGz),
            "tzst" => Some(Self::TarZst),
            "gz" if inner_tar() => Some(Self::TarGz),
            "zst" if inner_tar() => Some(Self::TarZst),
            _ => None,
        }
    }

    /// Like [`ArchiveFormat::from_extension`], with an error naming the file.
    pub fn for_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_extension(path).ok_or_else(|| Error::UnknownFormat {
            what: "archive",
            path: path.to_path_buf(),
        })
    }

    /// The compression around the tar stream, if any.
    pub fn compression(self) -> Option<Format> {
        match self {
            Self::Tar => None,
            Self::TarGz => Some(Format::Gzip),
            Self::TarZst => Some(Format::Zstd),
        }
    }
}

/// What [`create_archive`] wrote: the `file`, `bytes`, `sha256` and `entries` outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The archive.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Entries stored (files, directories, symbolic links).
    pub entries: u64,
}

/// What [`extract_archive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractInfo {
    /// Entries extracted (files, directories, links).
    pub entries: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Size of the archive file.
    pub archive_bytes: u64,
    /// SHA-256 of the archive file, lowercase hex, computed while reading it.
    pub archive_sha256: String,
}

/// Archives `sources` (relative to `base_dir`, or absolute under it; directories are walked,
/// symbolic links stored as links) into `dest`, published atomically.
///
/// Entry names are relative to `base_dir`. `exclude` globs work like GNU tar's `--exclude`:
/// a pattern matches the whole relative name or any tail of it starting at a component
/// (`*.log` and `pg_wal` match at any depth), `*` also matches `/`, and an excluded directory
/// is not descended. Modes, owners' ids and modification times are kept. A file that
/// shrinks while being read is an error; growth past the size seen at its start is ignored.
pub fn create_archive(
    sources: &[PathBuf],
    base_dir: &Path,
    dest: &Path,
    exclude: &[String],
    format: ArchiveFormat,
) -> Result<ArchiveInfo> {
    let excludes = build_excludes(exclude)?;
    let mut builder = tar::Builder::new(FileSink::create(dest, format.compression(), None)?);
    // The archive may be inside the tree being archived: never read it back.
    let own = fs::metadata(builder.get_ref().temp_path())
        .map(|m| (m.dev(), m.ino()))
        .ctx("stat", dest)?;
    let mut entries = 0;
    let base_dir = &lexical(base_dir);
    let mut names: Vec<PathBuf> = Vec::new();
    for source in sources {
        let (root, rel) = source_entry(base_dir, source)?;
        if names.contains(&rel) {
            return Err(Error::Invalid(format!(
                "two sources would both be archived as `{}`",
                rel.display()
            )));
        }
        names.push(rel.clone());
        let mut walk = WalkDir::new(&root)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = walk.next() {
            let item = item.map_err(|e| walk_error(e, &root))?;
            let name = rel.join(item.path().strip_prefix(&root).unwrap_or(Path::new("")));
            let name = normalize(&name);
            if name.as_os_str().is_empty() {
                continue;
            }
            if is_excluded(&excludes, &name) {
                if item.file_type().is_dir() {
                    walk.skip_current_dir();
                }
                continue;
            }
            let meta = item.metadata().map_err(|e| walk_error(e, &root))?;
            if (meta.dev(), meta.ino()) == own {
                continue;
            }
            if append_entry(&mut builder, item.path(), &name, &meta)? {
                entries += 1;
            }
        }
    }
    let sink = builder.into_inner().ctx("write", dest)?;
    let digest = sink.finish()?;
    Ok(ArchiveInfo {
        file: digest.path,
        bytes: digest.bytes,
        sha256: digest.sha256,
        entries,
    })
}

fn walk_error(e: walkdir::Error, root: &Path) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    Error::io("read", path, e.into())
}

/// Where a source is read and the name its entries get. A source under `base_dir` is named
/// relative to it (`data/uploads`); one outside it (an absolute path elsewhere, or `..`
/// leading out) is archived under its own name, as `tar -C PARENT NAME` does. Paths are
/// normalised lexically (`a/./b/../c` is `a/c`), so an entry name never holds `..`.
fn source_entry(base_dir: &Path, source: &Path) -> Result<(PathBuf, PathBuf)> {
    let full = lexical(&base_dir.join(source));
    if let Ok(rel) = full.strip_prefix(base_dir) {
        return Ok((full.clone(), rel.to_path_buf()));
    }
    match full.file_name() {
        Some(name) => Ok((full.clone(), PathBuf::from(name))),
        None => Err(Error::Invalid(format!(
            "source `{}` names no file or directory to archive",
            source.display()
        ))),
    }
}

/// `.` dropped and `..` applied to the component before it, without asking the file system
/// (as `tar` and `realpath -ms` read names); `..` at the root stays at the root.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let up = matches!(
                    out.components().next_back(),
                    None | Some(Component::ParentDir)
                );
                if up && !path.is_absolute() {
                    out.push("..");
                } else {
                    out.pop();
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Drops `.` components (and a trailing slash).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

fn build_excludes(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p.trim_end_matches('/'))
            .literal_separator(false)
            .build()
            .map_err(|e| Error::Invalid(format!("exclude pattern `{p}`: {e}")))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))
}

/// GNU tar's unanchored matching: the name or any of its tails at a `/`.
fn is_excluded(set: &GlobSet, name: &Path) -> bool {
    if set.is_empty() {
        return false;
    }
    let comps: Vec<_> = name.components().collect();
    (0..comps.len()).any(|i| set.is_match(comps[i..].iter().collect::<PathBuf>()))
}

/// Appends one file, directory or symbolic link; returns false for a skipped socket.
fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    meta: &Metadata,
) -> Result<bool> {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    let ft = meta.file_type();
    if ft.is_file() {
        let file = File::open(path).ctx("open", path)?;
        let reader = ExactSize {
            inner: file,
            left: meta.len(),
        };
        builder
            .append_data(&mut header, name, reader)
            .ctx("archive", path)?;
    } else if ft.is_dir() {
        header.set_size(0);
        builder
            .append_data(&mut header, name, io::empty())
            .ctx("archive", path)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(path).ctx("read link", path)?;
        header.set_size(0);
        let base = base_of(path, name);
        if !link_stays_inside(name, &target, |rel| fs::read_link(base.join(rel)).ok()) {
            return Err(Error::Invalid(format!(
                "symbolic link `{}` → `{}` leaves the archived tree: rb's extract would refuse \
                 the archive, so it is not made (exclude the link, or make it relative and \
                 inside the tree)",
                name.display(),
                target.display()
            )));
        }
        builder
            .append_link(&mut header, name, &target)
            .ctx("archive", path)?;
    } else if ft.is_socket() {
        // Sockets cannot be archived meaningfully; GNU tar skips them too.
        return Ok(false);
    } else {
        return Err(Error::Invalid(format!(
            "`{}` is a device or FIFO, which rb does not archive",
            path.display()
        )));
    }
    Ok(true)
}

/// The directory entry names are relative to: `path` less the components of `name`.
fn base_of(path: &Path, name: &Path) -> PathBuf {
    let mut base = path.to_path_buf();
    for _ in name.components() {
        base.pop();
    }
    base
}

/// Reads exactly the size recorded in the header: stops at it if the file grew, fails if it
/// shrank (padding with zeros, as GNU tar does, would store a corrupt file silently).
struct ExactSize<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The tar stream of an archive file, decompressed as needed, hashing the raw file.
#[expect(
    clippy::large_enum_variant,
    reason = "one per extraction; boxing would buy nothing"
)]
enum TarStream {
    Plain(BufReader<HashingReader<File>>),
    Compressed(Decoder<HashingReader<File>>),
}

impl Read for TarStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(buf),
            Self::Compressed(r) => r.read(buf),
        }
    }
}

impl TarStream {
    /// Reads to the end (checking the compressed stream's trailer), then returns the raw
    /// file's digest.
    fn finish(mut self) -> io::Result<super::digest::StreamDigest> {
        io::copy(&mut self, &mut io::sink())?;
        let raw = match self {
            Self::Plain(r) => r.into_inner(),
            Self::Compressed(r) => r.into_inner(),
        };
        Ok(raw.finish()?.1)
    }
}

/// Extracts `src` into `dest_dir`; see the module documentation for where entries land
/// and what is refused.
pub fn extract_archive(src: &Path, dest_dir: &Path, format: ArchiveFormat) -> Result<ExtractInfo> {
    let raw = HashingReader::new(File::open(src).ctx("open", src)?);
    let stream = match format.compression() {
        None => TarStream::Plain(BufReader::with_capacity(super::compress::COPY_BUFFER, raw)),
        Some(f) => TarStream::Compressed(Decoder::new(raw, f).ctx("read", src)?),
    };
    extract_tar(stream, src, dest_dir, false, TarStream::finish)
}

/// Extracts an uncompressed tar stream into `dest_dir` as [`extract_archive`] does; `name`
/// names the stream in errors. With `strip_top` the first component of every entry's path
/// (and hard link target) is dropped: the archives of `docker cp` start every entry with the
/// copied directory's name. The digest is of the whole stream.
pub fn extract_stream(
    reader: impl Read,
    name: &Path,
    dest_dir: &Path,
    strip_top: bool,
) -> Result<ExtractInfo> {
    extract_tar(HashingReader::new(reader), name, dest_dir, strip_top, |r| {
        r.finish().map(|(_, digest)| digest)
    })
}

/// The frame of both extractions: staging, entries, end of stream, checks, publish.
fn extract_tar<R: Read>(
    stream: R,
    src: &Path,
    dest_dir: &Path,
    strip_top: bool,
    finish: impl FnOnce(R) -> io::Result<super::digest::StreamDigest>,
) -> Result<ExtractInfo> {
    let merge = match fs::metadata(dest_dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "`{}` exists and is not a directory",
                dest_dir.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("stat", dest_dir, e)),
    };
    let staging = if merge {
        tempfile::Builder::new()
            .prefix(&format!(".rb-extract.{}.", std::process::id()))
            .tempdir_in(dest_dir)
            .ctx("create a staging directory in", dest_dir)?
    } else {
        let name = dest_dir.file_name().ok_or_else(|| {
            Error::Invalid(format!("`{}` is not a directory name", dest_dir.display()))
        })?;
        let parent = match dest_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent).ctx("create directory", parent)?;
        tempfile::Builder::new()
            .prefix(&format!(
                ".{}.rb-tmp.{}.",
                name.to_string_lossy(),
                std::process::id()
            ))
            .tempdir_in(parent)
            .ctx("create a staging directory in", parent)?
    };
    let mut ex = Extractor {
        archive: src.to_path_buf(),
        root: staging.path().to_path_buf(),
        existing: merge.then(|| dest_dir.to_path_buf()),
        known_dirs: HashSet::new(),
        dirs: Vec::new(),
        links: Vec::new(),
        root_mode: None,
        strip_top,
        entries: 0,
        bytes: 0,
    };
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().ctx("read", src)? {
        let mut entry = entry.ctx("read", src)?;
        ex.extract(&mut entry)?;
    }
    let digest = finish(archive.into_inner()).ctx("read", src)?;
    ex.recheck_links()?;
    ex.publish(staging, dest_dir)?;
    Ok(ExtractInfo {
        entries: ex.entries,
        bytes: ex.bytes,
        archive_bytes: digest.bytes,
        archive_sha256: digest.sha256,
    })
}

/// The state of one extraction into a staging directory.
struct Extractor {
    archive: PathBuf,
    /// The staging directory.
    root: PathBuf,
    /// The existing destination that staged entries will join, if any.
    existing: Option<PathBuf>,
    /// Staged directories already known to be real directories.
    known_dirs: HashSet<PathBuf>,
    /// Directories whose mode and mtime are set last, once nothing more is written in them.
    dirs: Vec<(PathBuf, u32, u64)>,
    /// Symbolic links made: relative path, target, entry name; checked again at the end
    /// because a later entry can change what an earlier target resolves through.
    links: Vec<(PathBuf, PathBuf, String)>,
    /// The mode of a `./` entry, given to a new destination.
    root_mode: Option<u32>,
    /// Drop the first component of entry paths and hard link targets.
    strip_top: bool,
    entries: u64,
    bytes: u64,
}

impl Extractor {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            archive: self.archive.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn extract<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) || kind == EntryType::GNULongLink
        {
            return Ok(());
        }
        let raw_path = self.strip(&entry.path().ctx("read", &self.archive)?);
        let rel = entry_path(&raw_path).map_err(|r| self.refuse(&name, format!("its path {r}")))?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mtime = entry.header().mtime().unwrap_or(0);
        self.entries += 1;
        let Some(rel) = rel else {
            // `./`: the destination itself.
            if kind == EntryType::Directory {
                self.root_mode = Some(mode);
            }
            return Ok(());
        };
        self.prepare_parent(&rel, &name)?;
        let full = self.root.join(&rel);
        match kind {
            EntryType::Directory => self.make_dir(&rel, &full, &name, mode, mtime),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.clear(&full, &name)?;
                self.make_file(entry, &full, mode, mtime)
            }
            EntryType::Symlink => {
                let target = self.link_target(entry, &name)?;
                self.check_link(&rel, &target)
                    .map_err(|r| self.refuse(&name, r))?;
                self.clear(&full, &name)?;
                std::os::unix::fs::symlink(&target, &full).ctx("create symlink", &full)?;
                let t = filetime::FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(0), 0);
                filetime::set_symlink_file_times(&full, t, t).ctx("set times of", &full)?;
                self.links.push((rel, target, name));
                Ok(())
            }
            EntryType::Link => {
                let target = self.strip(&self.link_target(entry, &name)?);
                let source = self.hardlink_source(&target, &name)?;
                self.clear(&full, &name)?;
                fs::hard_link(&source, &full).ctx("create hard link", &full)
            }
            other => Err(self.refuse(&name, format!("unsupported entry type {other:?}"))),
        }
    }

    /// `path` without its first component when stripping (and when that is a name: `..`
    /// or `/` stay, to be refused).
    fn strip(&self, path: &Path) -> PathBuf {
        let parts = path.components().skip_while(|c| *c == Component::CurDir);
        match parts.clone().next() {
            Some(Component::Normal(_)) if self.strip_top => parts.skip(1).collect(),
            _ => path.to_path_buf(),
        }
    }

    fn link_target<R: Read>(&self, entry: &tar::Entry<'_, R>, name: &str) -> Result<PathBuf> {
        entry
            .link_name()
            .ctx("read", &self.archive)?
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| self.refuse(name, "the link has no target"))
    }

    /// Makes sure every parent of `rel` is a real directory in staging, creating missing
    /// ones; a symbolic link on the way is refused, so nothing is written through one.
    fn prepare_parent(&mut self, rel: &Path, name: &str) -> Result<()> {
        let mut cur = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            cur.push(c);
            if self.known_dirs.contains(&cur) {
                continue;
            }
            let full = self.root.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.refuse(
                        name,
                        format!(
                            "its parent `{}` is a symbolic link made by an earlier entry",
                            cur.display()
                        ),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.refuse(
                        name,
                        format!("its parent `{}` is not a directory", cur.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).ctx("create directory", &full)?;
                }
                Err(e) => return Err(Error::io("stat", &full, e)),
            }
            self.known_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Removes a file or link left by an earlier entry of the same name (a later entry
    /// wins, as in tar); a directory is never replaced.
    fn clear(&self, full: &Path, name: &str) -> Result<()> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => Err(self.refuse(name, "it would replace a directory")),
            Ok(_) => fs::remove_file(full).ctx("remove", full),
            Err(_) => Ok(()),
        }
    }

    fn make_dir(
        &mut self,
        rel: &Path,
        full: &Path,
        name: &str,
        mode: u32,
        mtime: u64,
    ) -> Result<()> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(self.refuse(name, "a symbolic link of that name exists"));
            }
            Ok(_) => return Err(self.refuse(name, "a file of that name exists")),
            Err(_) => fs::create_dir(full).ctx("create directory", full)?,
        }
        self.known_dirs.insert(rel.to_path_buf());
        self.dirs.push((full.to_path_buf(), mode, mtime));
        Ok(())
    }

    fn make_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        full: &Path,
        mode: u32,
        mtime: u64,
    ) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(full)
            .ctx("create", full)?;
        self.bytes += copy_attributed(entry, &mut file, &self.archive, full)?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .ctx("set permissions of", full)?;
        file.set_times(FileTimes::new().set_modified(unix_time(mtime)))
            .ctx("set times of", full)
    }

    /// The staged file a hard link points to: it must be a regular file extracted earlier.
    fn hardlink_source(&self, target: &Path, name: &str) -> Result<PathBuf> {
        let rel = entry_path(target)
            .map_err(|r| self.refuse(name, format!("its hard link target {r}")))?
            .ok_or_else(|| self.refuse(name, "its hard link target is the destination"))?;
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            let m = fs::symlink_metadata(self.root.join(&cur));
            if m.as_ref().is_ok_and(|m| m.file_type().is_symlink()) || m.is_err() {
                return Err(self.refuse(
                    name,
                    format!(
                        "its hard link target `{}` is not a file extracted earlier",
                        target.display()
                    ),
                ));
            }
        }
        let full = self.root.join(&rel);
        if fs::symlink_metadata(&full).is_ok_and(|m| m.is_file()) {
            Ok(full)
        } else {
            Err(self.refuse(
                name,
                format!("its hard link target `{}` is not a file", target.display()),
            ))
        }
    }

    /// The symbolic link `rel` → `target` must resolve inside the destination, following
    /// links already staged (or present in an existing destination) like the kernel would.
    fn check_link(&self, rel: &Path, target: &Path) -> std::result::Result<(), String> {
        if link_stays_inside(rel, target, |p| self.symlink_at(p)) {
            Ok(())
        } else {
            Err(format!(
                "its target `{}` leaves the destination",
                target.display()
            ))
        }
    }

    /// The target of the symbolic link at `rel` in the view the destination will have.
    fn symlink_at(&self, rel: &Path) -> Option<PathBuf> {
        let first = rel.components().next()?;
        let in_staging = fs::symlink_metadata(self.root.join(first)).is_ok();
        let base = match (&self.existing, in_staging) {
            (Some(existing), false) => existing,
            _ => &self.root,
        };
        let full = base.join(rel);
        let m = fs::symlink_metadata(&full).ok()?;
        if m.file_type().is_symlink() {
            fs::read_link(&full).ok()
        } else {
            None
        }
    }

    fn recheck_links(&self) -> Result<()> {
        for (rel, target, name) in &self.links {
            self.check_link(rel, target)
                .map_err(|r| self.refuse(name, r))?;
        }
        Ok(())
    }

    /// Moves the staged tree into place (see the module documentation).
    fn publish(&self, staging: tempfile::TempDir, dest: &Path) -> Result<()> {
        let mut top = Vec::new();
        if self.existing.is_some() {
            for item in fs::read_dir(staging.path()).ctx("read", staging.path())? {
                let name = item.ctx("read", staging.path())?.file_name();
                let target = dest.join(&name);
                if fs::symlink_metadata(&target).is_ok() {
                    return Err(Error::AlreadyExists { path: target });
                }
                top.push(name);
            }
        }
        for (path, mode, mtime) in self.dirs.iter().rev() {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .ctx("set permissions of", path)?;
            let t = filetime::FileTime::from_unix_time(i64::try_from(*mtime).unwrap_or(0), 0);
            filetime::set_file_mtime(path, t).ctx("set times of", path)?;
        }
        if self.existing.is_some() {
            for name in top {
                let to = dest.join(&name);
                fs::rename(staging.path().join(&name), &to).ctx("rename to", &to)?;
            }
            fs::File::open(dest)
                .and_then(|d| d.sync_all())
                .ctx("fsync directory", dest)?;
            // `staging` is empty now; its drop removes it.
            return Ok(());
        }
        let mode = self.root_mode.unwrap_or(0o755);
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(mode))
            .ctx("set permissions of", staging.path())?;
        let path = staging.keep();
        if let Err(e) = fs::rename(&path, dest) {
            let _ = fs::remove_dir_all(&path);
            return Err(Error::io("rename to", dest, e));
        }
        super::atomic::sync_parent(dest)
    }
}

/// Whether the symbolic link at `rel` (relative to a root) pointing to `target` resolves
/// inside the root, following the links `symlink_at` names (relative path → target) like the
/// kernel would. The same rule decides at archive time and at extraction, so an archive rb
/// makes is one rb extracts.
fn link_stays_inside(
    rel: &Path,
    target: &Path,
    symlink_at: impl Fn(&Path) -> Option<PathBuf>,
) -> bool {
    let mut stack: Vec<OsString> = rel
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .map(|c| c.as_os_str().to_owned())
        .collect();
    // `None` stands for `..`; `.` components are dropped.
    let mut pending: VecDeque<Option<OsString>> = VecDeque::new();
    let push_front = |pending: &mut VecDeque<Option<OsString>>, path: &Path| {
        for c in path.components().rev() {
            match c {
                Component::ParentDir => pending.push_front(None),
                Component::Normal(n) => pending.push_front(Some(n.to_owned())),
                _ => {}
            }
        }
    };
    if target.has_root() {
        return false;
    }
    push_front(&mut pending, target);
    let mut follows = 0;
    while let Some(c) = pending.pop_front() {
        let Some(n) = c else {
            if stack.pop().is_none() {
                return false;
            }
            continue;
        };
        let here: PathBuf = stack.iter().chain([&n]).collect();
        match symlink_at(&here) {
            Some(next) => {
                follows += 1;
                if follows > MAX_LINK_FOLLOWS || next.has_root() {
                    return false;
                }
                push_front(&mut pending, &next);
            }
            None => stack.push(n),
        }
    }
    true
}

/// The relative path of an entry, `None` for the archive root (`./`), or why it is refused.
fn entry_path(path: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("has a `..` component".to_owned()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute".to_owned());
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn unix_time(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}
