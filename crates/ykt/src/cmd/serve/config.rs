//! The settings of `ykt serve` (#16): each one a flag, a `YKT_*` environment variable and a
//! key of the TOML file `--config` names, in that order of precedence, over the built-in
//! default. One struct, [`Options`], is all three (clap reads flags and environment, serde
//! the file); [`Settings`] is what they resolve to. The table in docs/operations.md lists
//! them (a test keeps it complete).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::builder::BoolishValueParser;

use super::backups::Schedule;
use crate::logging::LogFormat;

/// Every setting, each optional: what one source (flags and environment, or the file) says.
/// Help texts name the default that applies when no source gives the setting.
#[derive(clap::Args, serde::Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// A TOML file of these settings, keys named as the flags (docs/operations.md); flags
    /// and YKT_* variables override it.
    #[arg(long, env = "YKT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database, admin token, demo files. Created on first start.
    /// [default: ykt-data]
    #[arg(long, env = "YKT_DATA")]
    pub data: Option<PathBuf>,
    /// PostgreSQL connection string instead of SQLite, e.g. `host=127.0.0.1 user=postgres dbname=ykt`.
    #[arg(long, env = "YKT_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Where terminals connect (the wire protocol). [default: 0.0.0.0:9000]
    #[arg(long, env = "YKT_TERMINAL_LISTEN")]
    pub terminal_listen: Option<SocketAddr>,
    /// Health, metrics and the admin API. [default: 127.0.0.1:8080]
    #[arg(long, env = "YKT_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// The front-end processor this process serves as (R-H7). [default: 1]
    #[arg(long, env = "YKT_FEP_ID")]
    pub fep_id: Option<u32>,
    /// Seed a demo campus into a fresh data directory (merchants, devices, cards).
    /// [default: false]
    #[arg(long, env = "YKT_DEMO", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub demo: Option<bool>,
    /// The campus's offset from UTC in hours (terminals keep local time). [default: 8]
    #[arg(long, env = "YKT_UTC_OFFSET_HOURS", allow_hyphen_values = true)]
    pub utc_offset_hours: Option<i32>,
    /// Terminal connections at most. [default: 10000]
    #[arg(long, env = "YKT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// System master key file, for the TAC of CPU card records [default: DATA/keys]. Without
    /// it CPU card records are refused (code 99).
    #[arg(long, env = "YKT_KEYS")]
    pub keys: Option<PathBuf>,
    /// PEM certificate chain (leaf first) for the HTTP listener: it then serves HTTPS only.
    /// Required when --http-listen is not a loopback address.
    #[arg(long, env = "YKT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "YKT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Write a backup of the SQLite database here every --backup-every (docs/operations.md).
    #[arg(long, env = "YKT_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How often to back up with --backup-dir: 90s, 30m, 6h, 1d. [default: 1d]
    #[arg(long, env = "YKT_BACKUP_EVERY")]
    pub backup_every: Option<Interval>,
    /// Backups kept in --backup-dir; older ones are deleted. [default: 7]
    #[arg(long, env = "YKT_BACKUP_KEEP")]
    pub backup_keep: Option<usize>,
    /// Log lines on standard error: `text` for people, `json` (one object a line) for log
    /// collectors. [default: text]
    #[arg(long, env = "YKT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

pub const DEFAULT_DATA: &str = "ykt-data";
const DEFAULT_TERMINAL_LISTEN: &str = "0.0.0.0:9000";
const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_FEP_ID: u32 = 1;
const DEFAULT_UTC_OFFSET_HOURS: i32 = 8;
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_BACKUP_EVERY: Interval = Interval(Duration::from_secs(24 * 3600));
const DEFAULT_BACKUP_KEEP: usize = 7;

/// What `ykt serve` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data: PathBuf,
    pub database: Option<String>,
    pub terminal_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub fep_id: u32,
    pub demo: bool,
    pub utc_offset_hours: i32,
    pub max_connections: usize,
    pub keys: Option<PathBuf>,
    /// The HTTP listener's certificate chain and key; `None`: plain HTTP (loopback only).
    pub tls: Option<TlsFiles>,
    pub backups: Option<Schedule>,
    pub log_format: LogFormat,
}

/// The PEM files of the HTTP listener's TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Options {
    /// These options (flags and environment), with the file's where they say nothing.
    pub fn over(self, file: Options) -> Options {
        Options {
            config: self.config,
            data: self.data.or(file.data),
            database: self.database.or(file.database),
            terminal_listen: self.terminal_listen.or(file.terminal_listen),
            http_listen: self.http_listen.or(file.http_listen),
            fep_id: self.fep_id.or(file.fep_id),
            demo: self.demo.or(file.demo),
            utc_offset_hours: self.utc_offset_hours.or(file.utc_offset_hours),
            max_connections: self.max_connections.or(file.max_connections),
            keys: self.keys.or(file.keys),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            backup_dir: self.backup_dir.or(file.backup_dir),
            backup_every: self.backup_every.or(file.backup_every),
            backup_keep: self.backup_keep.or(file.backup_keep),
            log_format: self.log_format.or(file.log_format),
        }
    }

    /// Every key with its value as TOML shows it (database passwords masked), `None` where
    /// this source says nothing.
    pub fn entries(&self) -> Vec<(&'static str, Option<String>)> {
        let quoted = |s: &dyn fmt::Display| format!("{:?}", s.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| quoted(&p.display()));
        vec![
            ("data", path(&self.data)),
            (
                "database",
                self.database.as_ref().map(|d| quoted(&mask_password(d))),
            ),
            ("terminal-listen", self.terminal_listen.map(|a| quoted(&a))),
            ("http-listen", self.http_listen.map(|a| quoted(&a))),
            ("fep-id", self.fep_id.map(|v| v.to_string())),
            ("demo", self.demo.map(|v| v.to_string())),
            (
                "utc-offset-hours",
                self.utc_offset_hours.map(|v| v.to_string()),
            ),
            (
                "max-connections",
                self.max_connections.map(|v| v.to_string()),
            ),
            ("keys", path(&self.keys)),
            ("tls-cert", path(&self.tls_cert)),
            ("tls-key", path(&self.tls_key)),
            ("backup-dir", path(&self.backup_dir)),
            ("backup-every", self.backup_every.map(|v| quoted(&v))),
            ("backup-keep", self.backup_keep.map(|v| v.to_string())),
            ("log-format", self.log_format.map(|v| quoted(&v))),
        ]
    }
}

/// Flags and environment over the file `--config` (or `YKT_CONFIG`) names, if any.
pub fn load(flags: Options) -> anyhow::Result<Settings> {
    let file = match &flags.config {
        Some(path) => read_file(path)?,
        None => Options::default(),
    };
    resolve(flags.over(file))
}

/// Parses a configuration file: unknown keys and values of the wrong type are errors that
/// name the key and its line.
pub fn read_file(path: &Path) -> anyhow::Result<Options> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "configuration file {}: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })
}

/// The built-in defaults where no source gives a setting, and the rules between settings.
pub fn resolve(o: Options) -> anyhow::Result<Settings> {
    let backups = match (o.backup_dir, &o.database) {
        (None, _) => {
            if o.backup_every.is_some() || o.backup_keep.is_some() {
                bail!("backup-every and backup-keep need backup-dir");
            }
            None
        }
        (Some(_), Some(_)) => bail!(
            "backup-dir backs up the SQLite database; on PostgreSQL use pg_dump or \
             point-in-time recovery (docs/operations.md)"
        ),
        (Some(dir), None) => {
            let keep = o.backup_keep.unwrap_or(DEFAULT_BACKUP_KEEP);
            if keep == 0 {
                bail!("backup-keep must be at least 1");
            }
            Some(Schedule {
                dir,
                every: o.backup_every.unwrap_or(DEFAULT_BACKUP_EVERY).0,
                keep,
            })
        }
    };
    let tls = match (o.tls_cert, o.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => bail!("tls-cert and tls-key go together"),
    };
    Ok(Settings {
        data: o.data.unwrap_or_else(|| DEFAULT_DATA.into()),
        database: o.database,
        terminal_listen: o
            .terminal_listen
            .unwrap_or_else(|| addr(DEFAULT_TERMINAL_LISTEN)),
        http_listen: o.http_listen.unwrap_or_else(|| addr(DEFAULT_HTTP_LISTEN)),
        fep_id: o.fep_id.unwrap_or(DEFAULT_FEP_ID),
        demo: o.demo.unwrap_or(false),
        utc_offset_hours: o.utc_offset_hours.unwrap_or(DEFAULT_UTC_OFFSET_HOURS),
        max_connections: o.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        keys: o.keys,
        tls,
        backups,
        log_format: o.log_format.unwrap_or_default(),
    })
}

/// The environment variable of a setting: `backup-dir` is `YKT_BACKUP_DIR`.
pub fn env_name(key: &str) -> String {
    format!("YKT_{}", key.replace('-', "_").to_uppercase())
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("default address {s}"))
}

impl Settings {
    /// The settings as options, every one given: their [`Options::entries`] are the
    /// effective configuration.
    pub fn as_options(&self) -> Options {
        let backups = self.backups.as_ref();
        Options {
            config: None,
            data: Some(self.data.clone()),
            database: self.database.clone(),
            terminal_listen: Some(self.terminal_listen),
            http_listen: Some(self.http_listen),
            fep_id: Some(self.fep_id),
            demo: Some(self.demo),
            utc_offset_hours: Some(self.utc_offset_hours),
            max_connections: Some(self.max_connections),
            keys: Some(self.keys.clone().unwrap_or_else(|| self.data.join("keys"))),
            tls_cert: self.tls.as_ref().map(|t| t.cert.clone()),
            tls_key: self.tls.as_ref().map(|t| t.key.clone()),
            backup_dir: backups.map(|b| b.dir.clone()),
            backup_every: backups.map(|b| Interval(b.every)),
            backup_keep: backups.map(|b| b.keep),
            log_format: Some(self.log_format),
        }
    }
}

/// A period written `<n><unit>`, unit `s`, `m`, `h` or `d`: `90s`, `30m`, `6h`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl<'de> serde::Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Interval, String> {
        let bad = || format!("`{s}` is not a period like 90s, 30m, 6h or 1d");
        let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = s.split_at(unit_at);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let secs = match unit {
            "s" => Some(n),
            "m" => n.checked_mul(60),
            "h" => n.checked_mul(3_600),
            "d" => n.checked_mul(86_400),
            _ => None,
        }
        .ok_or_else(bad)?;
        if secs == 0 {
            return Err(format!("`{s}`: the period must be at least 1s"));
        }
        Ok(Interval(Duration::from_secs(secs)))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (n, unit) = [(86_400, "d"), (3_600, "h"), (60, "m")]
            .into_iter()
            .find(|(u, _)| secs.is_multiple_of(*u))
            .map_or((secs, "s"), |(u, name)| (secs / u, name));
        write!(f, "{n}{unit}")
    }
}

/// A PostgreSQL connection string with its password replaced by `***`, in either form:
/// `postgres://user:secret@host/db` or `host=h user=u password=secret`.
pub fn mask_password(url: &str) -> String {
    let masked = if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        format!("{scheme}://{authority}{tail}")
    } else {
        url.to_owned()
    };
    mask_password_parameter(&masked)
}

/// Masks the value of every `password` parameter: `password = 'x y'` in a key-value string,
/// `password=x` in a URL's query.
fn mask_password_parameter(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("password") {
        let key_end = at + "password".len();
        let after = &rest[key_end..];
        let value_at = after.trim_start();
        let Some(value) = value_at.strip_prefix('=') else {
            out.push_str(&rest[..key_end]);
            rest = after;
            continue;
        };
        let value = value.trim_start();
        let consumed = value_len(value);
        out.push_str(&rest[..key_end]);
        out.push_str("=***");
        rest = &value[consumed..];
    }
    out.push_str(rest);
    out
}

/// The length of a parameter's value at the start of `s`: quoted (`'…'` with `\'`
/// escapes), or up to a space or `&`.
fn value_len(s: &str) -> usize {
    if let Some(quoted) = s.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return i + 2,
                _ => escaped = false,
            }
        }
        return s.len();
    }
    s.find([' ', '\t', '\n', '&']).unwrap_or(s.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::Args as _;

    fn file(text: &str) -> Result<Options, toml::de::Error> {
        toml::from_str(text)
    }

    // #16: flags (and environment, which clap folds into them) over the file over defaults.
    #[test]
    fn flags_over_file_over_defaults() {
        let from_file = file(
            "data = \"/var/lib/ykt\"\nfep-id = 3\nhttp-listen = \"127.0.0.1:81\"\ndemo = true\n",
        )
        .unwrap();
        let flags = Options {
            fep_id: Some(9),
            ..Options::default()
        };
        let s = resolve(flags.over(from_file)).unwrap();
        assert_eq!(s.fep_id, 9);
        assert_eq!(s.data, PathBuf::from("/var/lib/ykt"));
        assert_eq!(s.http_listen, "127.0.0.1:81".parse().unwrap());
        assert!(s.demo);
        assert_eq!(s.terminal_listen, addr(DEFAULT_TERMINAL_LISTEN));
        assert_eq!(s.utc_offset_hours, 8);
        assert!(s.backups.is_none());
    }

    // #16: an unknown key is an error naming it; so is a value of the wrong type.
    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = file("data = \"d\"\nbackup-evrey = \"1h\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `backup-evrey`"), "{e}");
        let e = file("fep-id = \"one\"\n").unwrap_err().to_string();
        assert!(e.contains("fep-id"), "{e}");
        let e = file("backup-every = \"soon\"\n").unwrap_err().to_string();
        assert!(e.contains("`soon` is not a period"), "{e}");
        // `config` names the file; it is no key of it.
        assert!(file("config = \"other.toml\"\n").is_err());
    }

    // #16: the rules between settings.
    #[test]
    fn backup_settings_need_a_directory_and_sqlite() {
        let o = |text: &str| resolve(file(text).unwrap());
        let e = o("backup-every = \"1h\"").unwrap_err().to_string();
        assert!(e.contains("need backup-dir"), "{e}");
        let e = o("backup-dir = \"b\"\ndatabase = \"host=db\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pg_dump"), "{e}");
        let e = o("backup-dir = \"b\"\nbackup-keep = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 1"), "{e}");
        let s = o("backup-dir = \"b\"").unwrap();
        assert_eq!(
            s.backups,
            Some(Schedule {
                dir: "b".into(),
                every: Duration::from_secs(86_400),
                keep: 7
            })
        );
    }

    // #16: periods.
    #[test]
    fn intervals_parse_and_print() {
        for (text, secs) in [("90s", 90), ("30m", 1_800), ("6h", 21_600), ("1d", 86_400)] {
            let i: Interval = text.parse().unwrap();
            assert_eq!(i.0.as_secs(), secs);
            assert_eq!(i.to_string(), text);
        }
        assert_eq!(Interval(Duration::from_secs(120)).to_string(), "2m");
        for bad in [
            "",
            "h",
            "5",
            "5w",
            "0s",
            "-1h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    // #16: passwords are masked in both forms of a connection string; the rest stays.
    #[test]
    fn database_passwords_are_masked() {
        for (url, masked) in [
            (
                "host=db user=ykt password=s3cret dbname=ykt",
                "host=db user=ykt password=*** dbname=ykt",
            ),
            (
                "host=db password = s3cret dbname=ykt",
                "host=db password=*** dbname=ykt",
            ),
            (
                "host=db password='a b\\' c' dbname=ykt",
                "host=db password=*** dbname=ykt",
            ),
            (
                "postgres://ykt:s3cret@db:5432/ykt?sslmode=require",
                "postgres://ykt:***@db:5432/ykt?sslmode=require",
            ),
            (
                "postgresql://ykt@db/ykt?password=s3cret&sslmode=require",
                "postgresql://ykt@db/ykt?password=***&sslmode=require",
            ),
            ("host=db user=passwordless", "host=db user=passwordless"),
        ] {
            assert_eq!(mask_password(url), masked, "{url}");
        }
    }

    // #16: every setting has its flag, its YKT_* variable, its key in `entries`, and its
    // row in the table of docs/operations.md.
    #[test]
    fn every_setting_is_a_flag_a_variable_a_key_and_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/operations.md"
        ))
        .unwrap();
        let cmd = Options::augment_args(clap::Command::new("serve"));
        let keys: Vec<&str> = Options::default().entries().iter().map(|e| e.0).collect();
        let mut flags = Vec::new();
        for arg in cmd.get_arguments() {
            let long = arg.get_long().unwrap();
            let env = arg.get_env().unwrap().to_str().unwrap();
            assert_eq!(env, env_name(long), "--{long}");
            let row = format!("| `--{long}");
            let line = doc
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("docs/operations.md has no row {row}"));
            assert!(line.contains(&format!("`{env}`")), "{line}");
            if long != "config" {
                assert!(line.contains(&format!("`{long}`")), "{line}");
                flags.push(long);
            }
        }
        assert_eq!(flags, keys);
    }
}
