//! Who the users are: the users file, which pgwire's SCRAM exchange and TAP's HTTP Basic
//! check passwords against, and the tokens file, which TAP's bearer tokens are checked
//! against.
//!
//! The users file holds one line per user, `name:SCRAM-SHA-256:4096:<salt>:<salted
//! password>` (base64), written by `almagest user add` with mode 0600. Like PostgreSQL's
//! verifier it never holds the password itself, but it must be kept as secret as one. The
//! tokens file holds one line per token, `name:<SHA-256 of the token, hex>`, written by
//! `almagest token add`; a token is 32 random bytes, so a fast hash keeps it safe. Both are
//! read at every login, so a user or token added while the server runs works at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use pgwire::api::auth::sasl::scram::{gen_salted_password, SCRAM_ITERATIONS};
use sha2::{Digest, Sha256};

/// The mechanism tag of a users-file line.
const MECHANISM: &str = "SCRAM-SHA-256";

/// The users file (see the module documentation).
#[derive(Debug)]
pub struct UsersFile {
    path: PathBuf,
}

/// One user's SCRAM secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    pub(crate) salt: Vec<u8>,
    pub(crate) salted_password: Vec<u8>,
}

impl UsersFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret of `user`, if the file names them.
    pub(crate) fn secret(&self, user: &str) -> std::io::Result<Option<Secret>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(text.lines().find_map(|line| {
            let (name, secret) = parse_line(line)?;
            (name == user).then_some(secret)
        }))
    }

    /// Whether the file names `user`.
    pub fn contains(&self, user: &str) -> std::io::Result<bool> {
        Ok(self.secret(user)?.is_some())
    }

    /// Adds `user` with `password`, or changes their password; the file is replaced
    /// atomically and readable by its owner only.
    pub fn set_password(&self, user: &str, password: &str) -> std::io::Result<()> {
        check_name(user)?;
        if password.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the password must not be empty",
            ));
        }
        let mut lines: Vec<String> = read_lines(&self.path)?
            .into_iter()
            .filter(|line| parse_line(line).is_none_or(|(name, _)| name != user))
            .collect();
        let salt: [u8; 16] = rand::random();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        lines.push(format!(
            "{user}:{MECHANISM}:{SCRAM_ITERATIONS}:{}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(salted)
        ));
        write_private(&self.path, &lines)
    }

    /// Removes `user`; whether the file named them. Their sessions that are open stay
    /// open; new logins are refused.
    pub fn remove(&self, user: &str) -> std::io::Result<bool> {
        let lines = read_lines(&self.path)?;
        let kept: Vec<String> = lines
            .iter()
            .filter(|line| parse_line(line).is_none_or(|(name, _)| name != user))
            .cloned()
            .collect();
        if kept.len() == lines.len() {
            return Ok(false);
        }
        write_private(&self.path, &kept)?;
        Ok(true)
    }

    /// Whether `password` is `user`'s (HTTP Basic). PBKDF2 over the file's salt, as the
    /// SCRAM exchange computes it; compared in constant time.
    pub fn check_password(&self, user: &str, password: &str) -> std::io::Result<bool> {
        Ok(self.secret(user)?.is_some_and(|secret| {
            let salted = gen_salted_password(password, &secret.salt, SCRAM_ITERATIONS);
            constant_time_eq(&salted, &secret.salted_password)
        }))
    }
}

/// A new random password: 24 letters and digits (about 143 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// `name` and secret of a users-file line; `None` for anything else (blank lines, comments,
/// another mechanism or iteration count).
fn parse_line(line: &str) -> Option<(&str, Secret)> {
    let mut fields = line.trim().split(':');
    let name = fields.next()?;
    if fields.next()? != MECHANISM || fields.next()?.parse::<usize>().ok()? != SCRAM_ITERATIONS {
        return None;
    }
    let salt = STANDARD.decode(fields.next()?).ok()?;
    let salted_password = STANDARD.decode(fields.next()?).ok()?;
    fields.next().is_none().then_some((
        name,
        Secret {
            salt,
            salted_password,
        },
    ))
}

/// Replaces `path` atomically with `lines`, readable by its owner only.
fn write_private(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        for line in lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The file's lines, none when it does not exist.
fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tokens file (see the module documentation).
#[derive(Debug)]
pub struct TokensFile {
    path: PathBuf,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TokensFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// A new token for `user`, added to the file (the user's other tokens stay valid).
    pub fn add(&self, user: &str) -> std::io::Result<String> {
        check_name(user)?;
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let mut lines = read_lines(&self.path)?;
        lines.push(format!("{user}:{}", token_hash(&token)));
        write_private(&self.path, &lines)?;
        Ok(token)
    }

    /// Revokes every token of `user`; how many there were.
    pub fn revoke(&self, user: &str) -> std::io::Result<usize> {
        let lines = read_lines(&self.path)?;
        let kept: Vec<String> = lines
            .iter()
            .filter(|line| line.trim().rsplit_once(':').is_none_or(|(u, _)| u != user))
            .cloned()
            .collect();
        let revoked = lines.len() - kept.len();
        if revoked > 0 {
            write_private(&self.path, &kept)?;
        }
        Ok(revoked)
    }

    /// The user `token` belongs to.
    pub fn user_of(&self, token: &str) -> std::io::Result<Option<String>> {
        let hash = token_hash(token);
        Ok(read_lines(&self.path)?.iter().find_map(|line| {
            let (user, h) = line.trim().rsplit_once(':')?;
            constant_time_eq(h.as_bytes(), hash.as_bytes()).then(|| user.to_string())
        }))
    }
}

/// A user name the files can hold.
fn check_name(user: &str) -> std::io::Result<()> {
    if user.is_empty() || user.contains([':', '\n', '\r']) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid user name {user:?}: it must be non-empty, without ':' or newlines"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_users_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let users = UsersFile::new(dir.path().join("users"));
        assert_eq!(users.secret("ann").unwrap(), None);
        users.set_password("ann", "first").unwrap();
        users.set_password("bob", "other").unwrap();
        let ann = users.secret("ann").unwrap().unwrap();
        assert_eq!(
            ann.salted_password,
            gen_salted_password("first", &ann.salt, SCRAM_ITERATIONS)
        );
        users.set_password("ann", "second").unwrap();
        let again = users.secret("ann").unwrap().unwrap();
        assert_eq!(
            again.salted_password,
            gen_salted_password("second", &again.salt, SCRAM_ITERATIONS)
        );
        assert!(users.secret("bob").unwrap().is_some());
        let text = std::fs::read_to_string(users.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("second") && !text.contains("other"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(users.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(users.remove("ann").unwrap());
        assert!(!users.remove("ann").unwrap());
        assert_eq!(users.secret("ann").unwrap(), None);
        assert!(users.secret("bob").unwrap().is_some());
        assert!(users.set_password("a:b", "x").is_err());
        assert!(users.set_password("", "x").is_err());
        assert!(users.set_password("c", "").is_err());
    }

    #[test]
    fn t20_passwords_checked_as_basic_auth_does() {
        let dir = tempfile::tempdir().unwrap();
        let users = UsersFile::new(dir.path().join("users"));
        users.set_password("ann", "pa:ss word").unwrap();
        assert!(users.check_password("ann", "pa:ss word").unwrap());
        assert!(!users.check_password("ann", "pa:ss").unwrap());
        assert!(!users.check_password("bob", "pa:ss word").unwrap());
    }

    #[test]
    fn t30_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokensFile::new(dir.path().join("tokens"));
        assert_eq!(tokens.user_of("x").unwrap(), None);
        let a = tokens.add("ann").unwrap();
        let b = tokens.add("bob").unwrap();
        let a2 = tokens.add("ann").unwrap();
        assert!(a.len() >= 40 && a != a2 && a != b);
        assert_eq!(tokens.user_of(&a).unwrap().as_deref(), Some("ann"));
        assert_eq!(tokens.user_of(&a2).unwrap().as_deref(), Some("ann"));
        assert_eq!(tokens.user_of(&b).unwrap().as_deref(), Some("bob"));
        assert_eq!(tokens.user_of(&format!("{a}x")).unwrap(), None);
        let text = std::fs::read_to_string(&tokens.path).unwrap();
        assert!(!text.contains(&a) && !text.contains(&b));
        assert!(tokens.add("a:b").is_err());
        assert_eq!(tokens.revoke("ann").unwrap(), 2);
        assert_eq!(tokens.revoke("ann").unwrap(), 0);
        assert_eq!(tokens.user_of(&a).unwrap(), None);
        assert_eq!(tokens.user_of(&a2).unwrap(), None);
        assert_eq!(tokens.user_of(&b).unwrap().as_deref(), Some("bob"));
    }
}
