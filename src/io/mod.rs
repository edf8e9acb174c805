//! Streaming file I/O: atomic publish, hashing and compression while copying, archives.
