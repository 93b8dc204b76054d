//! The configuration of `ykt serve` (#16) through the real binary: a TOML file, `YKT_*`
//! variables and flags, in that order of precedence; `ykt config check`, its masked
//! secrets and its refusals.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serve_support::{failed, terminate, ykt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` (a `ykt serve`), waits for its ready line, stops it with SIGTERM; returns
/// the ready line.
fn serve_once(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let ready = loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let o = child.wait_with_output().unwrap();
            panic!("ykt serve exited: {}", String::from_utf8_lossy(&o.stderr));
        }
        if line.starts_with("ykt serve ready") {
            break line.clone();
        }
    };
    assert!(terminate(&mut child).success());
    ready
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// #16: a flag wins over the environment, the environment over the file, the file over the
// default; `ykt serve` runs with what each says.
#[test]
fn flags_over_environment_over_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (from_file, from_env, from_flag) = (
        tmp.path().join("from-file"),
        tmp.path().join("from-env"),
        tmp.path().join("from-flag"),
    );
    let (file_port, env_port) = (free_port(), free_port());
    let config = write(
        tmp.path(),
        "ykt.toml",
        &format!(
            "data = {:?}\nterminal-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:{file_port}\"\n\
             demo = true\n",
            from_file.to_str().unwrap()
        ),
    );
    let serve = || {
        let mut c = ykt();
        c.arg("serve").arg("--config").arg(&config);
        c
    };

    // The file alone.
    let ready = serve_once(serve());
    assert!(
        ready.contains(&format!("http://127.0.0.1:{file_port}")),
        "{ready}"
    );
    assert!(from_file.join("demo.json").exists());

    // The environment over the file; the file's other keys still apply (the demo).
    let mut c = serve();
    c.env("YKT_DATA", &from_env)
        .env("YKT_HTTP_LISTEN", format!("127.0.0.1:{env_port}"));
    let ready = serve_once(c);
    assert!(
        ready.contains(&format!("http://127.0.0.1:{env_port}")),
        "{ready}"
    );
    assert!(from_env.join("demo.json").exists());

    // Flags over both; `--demo=false` over the file's `demo = true`.
    let mut c = serve();
    c.env("YKT_DATA", &from_env)
        .env("YKT_HTTP_LISTEN", format!("127.0.0.1:{env_port}"))
        .arg("--data")
        .arg(&from_flag)
        .args(["--http-listen", "127.0.0.1:0", "--demo=false"]);
    let ready = serve_once(c);
    assert!(
        !ready.contains(&format!(":{env_port} ")) && !ready.contains(&format!(":{file_port} ")),
        "{ready}"
    );
    assert!(ready.contains(from_flag.to_str().unwrap()), "{ready}");
    assert!(from_flag.join("admin-token").exists());
    assert!(!from_flag.join("demo.json").exists());
}

// #16: `ykt config check` prints the effective configuration, each setting with its source,
// the database password masked wherever it comes from; key paths are shown.
#[test]
fn config_check_shows_the_effective_configuration_with_secrets_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "ykt.toml",
        "data = \"/var/lib/ykt\"\nfep-id = 3\nkeys = \"/etc/ykt/keys\"\n\
         database = \"postgres://ykt:hunter22@db/ykt\"\n",
    );
    let o = ykt()
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("valid"), "{out}");
    assert!(
        out.contains("database = \"postgres://ykt:***@db/ykt\"  # file"),
        "{out}"
    );
    assert!(out.contains("fep-id = 3  # file"), "{out}");
    assert!(out.contains("keys = \"/etc/ykt/keys\"  # file"), "{out}");
    assert!(out.contains("demo = false  # default"), "{out}");
    assert!(
        out.contains("terminal-listen = \"0.0.0.0:9000\"  # default"),
        "{out}"
    );
    assert!(!out.contains("hunter22"), "{out}");

    let o = ykt()
        .args(["config", "check"])
        .arg(&config)
        .env(
            "YKT_DATABASE",
            "host=db user=ykt password=s3cret dbname=ykt",
        )
        .env("YKT_FEP_ID", "4")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(
            "database = \"host=db user=ykt password=*** dbname=ykt\"  # environment YKT_DATABASE"
        ),
        "{out}"
    );
    assert!(
        out.contains("fep-id = 4  # environment YKT_FEP_ID"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret") && !out.contains("hunter22"),
        "{out}"
    );

    // `--help` does not show the variable's value either.
    let o = ykt()
        .args(["serve", "--help"])
        .env("YKT_DATABASE", "host=db password=s3cret")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("YKT_DATABASE") && !help.contains("s3cret"),
        "{help}"
    );
}

// #16: an unknown key is refused with its name, by `ykt config check` and by `ykt serve`,
// which then creates nothing.
#[test]
fn an_unknown_key_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = write(
        tmp.path(),
        "ykt.toml",
        &format!(
            "data = {:?}\nfep-id = 3\nbackup-evrey = \"1h\"\n",
            data.to_str().unwrap()
        ),
    );
    let err = failed(
        &ykt()
            .args(["config", "check"])
            .arg(&config)
            .output()
            .unwrap(),
    );
    assert!(err.contains("unknown field `backup-evrey`"), "{err}");
    assert!(err.contains("ykt.toml"), "{err}");
    let err = failed(
        &ykt()
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap(),
    );
    assert!(err.contains("unknown field `backup-evrey`"), "{err}");
    assert!(!data.exists());
}

// #16: a bad file (syntax, a value of the wrong type, rules between settings, missing) makes
// `ykt config check` exit non-zero with a message saying what and where.
#[test]
fn config_check_on_a_bad_file_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let f = write(tmp.path(), "bad.toml", text);
        failed(&ykt().args(["config", "check"]).arg(f).output().unwrap())
    };
    let err = check("data = \n");
    assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");
    let err = check("fep-id = \"one\"\n");
    assert!(err.contains("fep-id") && err.contains("line 1"), "{err}");
    let err = check("http-listen = \"localhost\"\n");
    assert!(err.contains("http-listen"), "{err}");
    let err = check("backup-every = \"1h\"\n");
    assert!(err.contains("need backup-dir"), "{err}");
    let err = failed(
        &ykt()
            .args(["config", "check"])
            .arg(tmp.path().join("missing.toml"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("cannot read configuration file"), "{err}");
}
