//! Retention decisions with the semantics of `restic forget --keep-*` / `--keep-within-*`.
