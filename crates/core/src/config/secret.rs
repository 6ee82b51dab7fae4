//! Secret references (`env:NAME`, `file:PATH`) and the resolved secret, which never prints itself.

use std::fmt;
use std::path::PathBuf;

/// Where a secret lives. The config holds only this reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`; anything else is refused so that no literal key is
    /// ever written into a config file.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{name}` is not an environment variable name"));
            }
            Ok(SecretRef::Env(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path".to_owned());
            }
            Ok(SecretRef::File(PathBuf::from(path)))
        } else {
            Err("a secret must be a reference, `env:NAME` or `file:PATH`, never the value itself".to_owned())
        }
    }

    /// Reads the secret. The error names the reference, never a value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
                Ok(_) => Err(format!("secret file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
            },
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// A resolved secret. `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_keys_are_refused_and_secrets_do_not_print() {
        assert!(SecretRef::parse("sk-live-123").is_err());
        assert_eq!(SecretRef::parse("env:OPENAI_API_KEY"), Ok(SecretRef::Env("OPENAI_API_KEY".into())));
        assert!(SecretRef::parse("env:BAD NAME").is_err());
        let s = Secret::new("sk-very-secret".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn resolve_reads_files_and_names_missing_variables() {
        let dir = std::env::temp_dir().join(format!("gardefou-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "sk-from-file\n").unwrap();
        let r = SecretRef::File(file.clone());
        assert_eq!(r.resolve().unwrap().expose(), "sk-from-file");
        let missing = SecretRef::Env("GARDEFOU_TEST_SURELY_UNSET_VAR".into()).resolve().unwrap_err();
        assert!(missing.contains("GARDEFOU_TEST_SURELY_UNSET_VAR"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
