//! The Debian package (#16): `cargo deb` metadata in crates/ykt/Cargo.toml, the systemd
//! unit deploy/systemd/ykt.service and the packaged /etc/ykt/ykt.toml. The tests need no
//! cargo-deb: they check what it would package.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serve_support::Serve;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit() -> String {
    std::fs::read_to_string(root().join("deploy/systemd/ykt.service")).unwrap()
}

// #16 (packaging): systemd accepts the unit (its binary replaced by the one built here,
// since /usr/bin/ykt exists only once the package is installed).
#[test]
fn systemd_analyze_verifies_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ykt.service");
    let exe = env!("CARGO_BIN_EXE_ykt");
    std::fs::write(&path, unit().replace("/usr/bin/ykt", exe)).unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("systemd-analyze not runnable ({e}); unit not verified here");
            return;
        }
        Err(e) => panic!("systemd-analyze is required in CI: {e}"),
    };
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(&*path.to_string_lossy()), "warnings: {said}");
}

// #16: the unit runs the packaged configuration as the unprivileged user, sandboxed.
#[test]
fn unit_runs_serve_as_ykt_sandboxed() {
    let u = unit();
    let lines: Vec<&str> = u.lines().map(str::trim).collect();
    for want in [
        "ExecStart=/usr/bin/ykt serve --config /etc/ykt/ykt.toml",
        "User=ykt",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/ykt",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            lines.contains(&want),
            "deploy/systemd/ykt.service lacks `{want}`"
        );
    }
}

// #16: `ykt serve --config /etc/ykt/ykt.toml` starts from the packaged file: `ykt config
// check` accepts it, with the data in /var/lib/ykt.
#[test]
fn packaged_configuration_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args(["config", "check"])
        .arg(root().join("deploy/debian/ykt.toml"))
        .env_remove("YKT_DATA")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("data = \"/var/lib/ykt\"  # file"), "{said}");
}

/// `[package.metadata.deb]` of crates/ykt/Cargo.toml.
fn deb_metadata() -> toml::Value {
    let text = std::fs::read_to_string(root().join("crates/ykt/Cargo.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    manifest["package"]["metadata"]["deb"].clone()
}

// #16: every file the package names exists; the configuration is a conffile; the
// maintainer scripts that create the user are there and are shell scripts.
#[test]
fn deb_metadata_names_existing_files() {
    let deb = deb_metadata();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = deb["assets"].as_array().unwrap();
    let targets: Vec<&str> = assets.iter().map(|a| a[1].as_str().unwrap()).collect();
    assert!(targets.contains(&"usr/bin/"), "{targets:?}");
    assert!(targets.contains(&"etc/ykt/ykt.toml"), "{targets:?}");
    for a in assets {
        let source = a[0].as_str().unwrap();
        // The binary is built by `cargo deb` itself.
        if source != "target/release/ykt" {
            assert!(
                crate_dir.join(source).is_file(),
                "asset {source} is missing"
            );
        }
    }
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(conf, ["/etc/ykt/ykt.toml"]);
    let scripts = crate_dir.join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.starts_with("#!/bin/sh"));
    assert!(postinst.contains("adduser --system --ingroup ykt"));
    let units = crate_dir.join(deb["systemd-units"]["unit-scripts"].as_str().unwrap());
    assert!(units.join("ykt.service").is_file());
    for script in ["postinst", "postrm"] {
        let status = Command::new("sh")
            .arg("-n")
            .arg(scripts.join(script))
            .status()
            .unwrap();
        assert!(status.success(), "{script} is not valid sh");
    }
}

// #16: `ykt serve` starts from the packaged file (its data directory and listeners moved by
// flags to a temporary directory and free ports), logging JSON as the file says.
#[test]
fn serve_starts_from_the_packaged_configuration() {
    let file = root().join("deploy/debian/ykt.toml");
    let s = Serve::start_with(None, &["--config", file.to_str().unwrap()]);
    let log = s.log();
    s.stop();
    let first = log
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no log: {log}"));
    let event: serde_json::Value = serde_json::from_str(first).unwrap();
    assert!(event["fields"]["message"].is_string(), "{first}");
}
