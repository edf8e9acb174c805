//! `exec` (a process on this machine) and `container.exec` (a process in a container).

use super::{ConfigProblem, StepConfig};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Run a program on this machine.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments (argv). Never passed through a shell.
    pub command: Option<Vec<String>>,
    /// A shell line, run with `sh -c`: the explicit opt-in for pipes and globbing.
    pub shell: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// What the program reads on standard input (default: nothing).
    pub stdin: Option<Stdin>,
    /// Where standard output goes: `capture` (default) or a file.
    #[serde(default)]
    pub stdout: Output,
    /// Where standard error goes: `capture` (default) or a file.
    #[serde(default)]
    pub stderr: Output,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default = "default_ok_codes")]
    pub ok_codes: Vec<i64>,
}

/// Run a program inside a container through the Docker Engine API (never with a TTY).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerExecConfig {
    /// The container's name or id.
    pub container: String,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
    /// User to run as inside the container (`postgres`, `1000:1000`).
    pub user: Option<String>,
    /// Working directory inside the container.
    pub workdir: Option<String>,
    /// The program and its arguments (argv). Never passed through a shell.
    pub command: Option<Vec<String>>,
    /// A shell line, run with `sh -c` inside the container.
    pub shell: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What the program reads on standard input (default: nothing).
    pub stdin: Option<Stdin>,
    /// Where standard output goes: `capture` (default) or a file on this machine.
    #[serde(default)]
    pub stdout: Output,
    /// Where standard error goes: `capture` (default) or a file on this machine.
    #[serde(default)]
    pub stderr: Output,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default = "default_ok_codes")]
    pub ok_codes: Vec<i64>,
}

fn default_ok_codes() -> Vec<i64> {
    vec![0]
}

/// Standard input: `{file: PATH, decompress: true}` or `{text: "..."}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stdin {
    /// Stream this file.
    pub file: Option<String>,
    /// Decompress the file on the fly, by its extension (`.gz`, `.zst`).
    #[serde(default)]
    pub decompress: bool,
    /// This text.
    pub text: Option<String>,
}

/// Standard output or error: `capture` (kept in the step's outputs, capped at 1 MiB) or a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    #[default]
    Capture,
    File(OutputFile),
}

/// A stream written to a file, published atomically when the step succeeds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// Final path of the file.
    pub file: String,
    /// Compress while writing.
    pub compress: Option<Compression>,
    /// Compression level (gzip 1–9, zstd 1–19).
    pub level: Option<i32>,
    /// Hash while writing; the digest is the step's `sha256` output.
    pub checksum: Option<ChecksumAlgo>,
}

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
}

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgo {
    Sha256,
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Output;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`capture` or {file, compress, checksum}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Output, E> {
                match s {
                    "capture" => Ok(Output::Capture),
                    other => Err(E::custom(format_args!(
                        "expected `capture` or a mapping with `file`, found \"{other}\""
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Output, A::Error> {
                OutputFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Output::File)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Output {
    fn schema_name() -> Cow<'static, str> {
        "Output".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let file = g.subschema_for::<OutputFile>();
        json_schema!({
            "description": "`capture` (default; kept as an output, capped at 1 MiB) or a file.",
            "anyOf": [{"const": "capture"}, file]
        })
    }
}

/// Checks shared by both exec types.
fn process_problems(
    command: Option<&Vec<String>>,
    shell: Option<&String>,
    stdin: Option<&Stdin>,
) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    match (command, shell) {
        (None, None) => out.push(ConfigProblem::new(
            "",
            "needs `command` (an argv list) or `shell`",
        )),
        (Some(_), Some(_)) => out.push(ConfigProblem::new(
            "shell",
            "give `command` or `shell`, not both",
        )),
        (Some(c), None) if c.is_empty() => {
            out.push(ConfigProblem::new("command", "`command` is empty"));
        }
        _ => {}
    }
    if let Some(s) = stdin {
        match (&s.file, &s.text) {
            (None, None) => out.push(ConfigProblem::new(
                "stdin",
                "`stdin` needs `file` or `text`",
            )),
            (Some(_), Some(_)) => out.push(ConfigProblem::new(
                "stdin",
                "`stdin` takes `file` or `text`, not both",
            )),
            (None, Some(_)) if s.decompress => {
                out.push(ConfigProblem::new(
                    "stdin.decompress",
                    "`decompress` applies to `file` only",
                ));
            }
            _ => {}
        }
    }
    out
}

impl StepConfig for ExecConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        process_problems(
            self.command.as_ref(),
            self.shell.as_ref(),
            self.stdin.as_ref(),
        )
    }
}

impl StepConfig for ContainerExecConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        process_problems(
            self.command.as_ref(),
            self.shell.as_ref(),
            self.stdin.as_ref(),
        )
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}
