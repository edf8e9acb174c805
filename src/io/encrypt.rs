//! age encryption on the way out and decryption on the way in (the `age` file format, so the
//! `age` command reads what rb writes and the other way round).
//!
//! Recipients are public (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`); an identity (the private
//! half) only ever comes from a secret, and nothing here prints it: errors name recipients
//! and the public half of an identity.

use std::io::{self, Read, Write};
use std::str::FromStr;

/// Parsed recipients, with their text for manifests and errors.
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send + Sync>>,
    /// The recipients as written (public keys).
    pub text: Vec<String>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.text).finish()
    }
}

/// One recipient's problem, for validation: `None` when `text` is a recipient.
pub fn recipient_problem(text: &str) -> Option<String> {
    parse_recipient(text).err()
}

fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send + Sync>, String> {
    let t = text.trim();
    if t.starts_with("age1") {
        return age::x25519::Recipient::from_str(t)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send + Sync>)
            .map_err(|e| format!("`{t}` is not an age recipient: {e}"));
    }
    if t.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(t)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send + Sync>)
            .map_err(|e| format!("`{}` is not an ssh recipient: {e:?}", short(t)));
    }
    if t.starts_with("AGE-SECRET-KEY-") || t.contains("PRIVATE KEY") {
        return Err(
            "a private key was given as a recipient: give its public half (`age-keygen -y`)".into(),
        );
    }
    Err(format!(
        "`{}` is not a recipient (`age1…` or `ssh-ed25519 …`)",
        short(t)
    ))
}

/// At most the first 40 characters, for errors about long keys.
fn short(t: &str) -> String {
    let s: String = t.chars().take(40).collect();
    if s.len() < t.len() {
        format!("{s}…")
    } else {
        s
    }
}

impl Recipients {
    /// Parses every recipient; the error names the first that is not one.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        if list.is_empty() {
            return Err("`encrypt.recipients` is empty".into());
        }
        let keys = list
            .iter()
            .map(|t| parse_recipient(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            keys,
            text: list.iter().map(|t| t.trim().to_owned()).collect(),
        })
    }

    /// Starts an age stream to these recipients over `inner`.
    pub fn encrypt<W: Write>(&self, inner: W) -> io::Result<age::stream::StreamWriter<W>> {
        let encryptor = age::Encryptor::with_recipients(self.keys.iter().map(|k| k.as_ref() as _))
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
        encryptor.wrap_output(inner)
    }
}

/// An identity read from a secret: an age identity file (`AGE-SECRET-KEY-1…` lines, comments
/// allowed) or an unencrypted OpenSSH private key.
pub struct Identity {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// The public halves, where they can be derived (age keys), for error messages.
    pub public: Vec<String>,
    /// The secret's name.
    pub secret: String,
}

impl Identity {
    /// Parses the secret `secret`'s value. The error never holds the value.
    pub fn parse(secret: &str, value: &str) -> Result<Self, String> {
        if value.contains("-----BEGIN") {
            return Self::parse_ssh(secret, value);
        }
        let file = age::IdentityFile::from_buffer(value.as_bytes()).map_err(|_| {
            format!(
                "secret `{secret}` is not an age identity or an unencrypted OpenSSH private key"
            )
        })?;
        let keys = file.into_identities().map_err(|_| {
            format!("secret `{secret}` holds a key age cannot use (an encrypted SSH key?)")
        })?;
        if keys.is_empty() {
            return Err(format!("secret `{secret}` holds no age identity"));
        }
        let public = value
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .filter_map(|l| age::x25519::Identity::from_str(l).ok())
            .map(|i| i.to_public().to_string())
            .collect();
        Ok(Self {
            keys,
            public,
            secret: secret.to_owned(),
        })
    }

    /// An OpenSSH private key (the secret's trailing newline was removed when it was read).
    fn parse_ssh(secret: &str, value: &str) -> Result<Self, String> {
        let text = format!("{}\n", value.trim_end());
        let key = age::ssh::Identity::from_buffer(text.as_bytes(), None)
            .map_err(|_| format!("secret `{secret}` is not an SSH private key age can read"))?;
        match key {
            age::ssh::Identity::Unencrypted(_) => Ok(Self {
                keys: vec![Box::new(key)],
                public: Vec::new(),
                secret: secret.to_owned(),
            }),
            age::ssh::Identity::Encrypted(_) => Err(format!(
                "secret `{secret}` is a passphrase-protected SSH key: give an unencrypted copy"
            )),
            age::ssh::Identity::Unsupported(_) => Err(format!(
                "secret `{secret}` is an SSH key of a type age does not support (ed25519 and RSA are)"
            )),
        }
    }

    /// Which key this is, for errors: its public half(s), else the secret's name.
    pub fn describe(&self) -> String {
        if self.public.is_empty() {
            format!("the SSH key in secret `{}`", self.secret)
        } else {
            format!(
                "the key `{}` (secret `{}`)",
                self.public.join("`, `"),
                self.secret
            )
        }
    }

    /// Opens an age stream. `recipients` (from the manifest) name who it was encrypted to
    /// when this identity is not one of them.
    pub fn decrypt<R: Read>(
        &self,
        input: R,
        recipients: &[String],
    ) -> Result<age::stream::StreamReader<R>, String> {
        let decryptor = age::Decryptor::new(input).map_err(|e| match e {
            age::DecryptError::Io(e) => format!("reading the encrypted stream: {e}"),
            other => format!("not an age-encrypted stream ({other})"),
        })?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as _))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => {
                    let to = if recipients.is_empty() {
                        "recipients this manifest does not list".to_owned()
                    } else {
                        format!("`{}`", recipients.join("`, `"))
                    };
                    format!(
                        "{} cannot decrypt it: it was encrypted to {to}",
                        self.describe()
                    )
                }
                other => format!("decryption failed: {other}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn what_is_encrypted_decrypts_with_the_identity_and_not_another() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[id.to_public().to_string()]).unwrap();
        let mut w = recipients.encrypt(Vec::new()).unwrap();
        w.write_all(b"hello backup").unwrap();
        let sealed = w.finish().unwrap();
        let secret = format!("# key\n{}\n", id.to_string().expose_secret());
        let ident = Identity::parse("k", &secret).unwrap();
        let mut out = String::new();
        ident
            .decrypt(&sealed[..], &recipients.text)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello backup");
        let wrong = Identity::parse("other", other.to_string().expose_secret()).unwrap();
        let err = wrong.decrypt(&sealed[..], &recipients.text).err().unwrap();
        assert!(err.contains(&other.to_public().to_string()), "{err}");
        assert!(err.contains(&id.to_public().to_string()), "{err}");
        assert!(!err.contains("AGE-SECRET-KEY"), "{err}");
    }

    #[test]
    fn bad_recipients_are_named() {
        assert!(recipient_problem("age1nope").unwrap().contains("age1nope"));
        assert!(
            recipient_problem("AGE-SECRET-KEY-1XYZ")
                .unwrap()
                .contains("public half")
        );
        assert!(recipient_problem("hello").is_some());
        let id = age::x25519::Identity::generate();
        assert!(recipient_problem(&id.to_public().to_string()).is_none());
    }
}
