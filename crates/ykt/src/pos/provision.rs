//! The device provisioning file (`docs/provisioning.md`): who the terminal is and where its
//! front-end processor listens.

use std::path::Path;

use anyhow::{Context, bail};
use ykt_proto::{DeviceKey, Key, PhysicalId, Suite};
use ykt_terminal::TerminalRole;

/// A provisioning file is a few hundred bytes; refuse anything absurd before reading it.
const MAX_FILE: u64 = 16 * 1024;

#[derive(Clone, Debug)]
pub struct Provision {
    pub device: PhysicalId,
    pub master: DeviceKey,
    /// `host:port` of the FEP's terminal listener.
    pub host: String,
    pub terminal_no: u32,
    pub merchant_no: u32,
    /// A POS or a top-up terminal (充值机, R-B4); a terminal-local setting.
    pub role: TerminalRole,
}

#[derive(serde::Deserialize)]
struct File {
    physical_id: String,
    master_key: String,
    mac_suite: String,
    host: String,
    terminal_no: u32,
    merchant_no: u32,
    /// `"pos"` (the default) or `"top_up"`.
    #[serde(default)]
    role: Option<String>,
}

impl Provision {
    pub fn load(path: &Path) -> anyhow::Result<Provision> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.len() > MAX_FILE {
            bail!("{} is too large for a provisioning file", path.display());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Provision::parse(&text).with_context(|| format!("bad provisioning file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Provision> {
        let f: File = serde_json::from_str(text)?;
        let device: PhysicalId = f
            .physical_id
            .parse()
            .map_err(|e: &str| anyhow::anyhow!("physical_id: {e}"))?;
        let key = ykt_proto::hexstr::parse::<16>(f.master_key.trim())
            .context("master_key must be 32 hex digits")?;
        let suite = match f.mac_suite.as_str() {
            "aes128" => Suite::Aes128,
            "sm4" => Suite::Sm4,
            other => bail!("mac_suite {other:?}: expected aes128 or sm4"),
        };
        if f.host.trim().is_empty() {
            bail!("host is empty");
        }
        let role = match f.role.as_deref() {
            None | Some("pos") => TerminalRole::Pos,
            Some("top_up") => TerminalRole::TopUp,
            Some(other) => bail!("role {other:?}: expected pos or top_up"),
        };
        Ok(Provision {
            device,
            master: DeviceKey {
                suite,
                key: Key(key),
            },
            host: f.host,
            terminal_no: f.terminal_no,
            merchant_no: f.merchant_no,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_demo_format_and_refuses_bad_keys() {
        let good = r#"{"physical_id":"10000001","master_key":"00112233445566778899AABBCCDDEEFF",
            "mac_suite":"sm4","host":"127.0.0.1:9000","terminal_no":1,"merchant_no":1001}"#;
        let p = Provision::parse(good).unwrap();
        assert_eq!(p.device, PhysicalId([0x10, 0, 0, 1]));
        assert_eq!(p.master.suite, Suite::Sm4);
        assert_eq!(p.host, "127.0.0.1:9000");
        let short = good.replace("EEFF\"", "EE\"");
        assert!(Provision::parse(&short).is_err());
        let suite = good.replace("sm4", "des");
        assert!(Provision::parse(&suite).is_err());
        assert_eq!(p.role, TerminalRole::Pos);
    }

    // R-B4: a provisioning file makes the terminal a top-up terminal (充值机).
    #[test]
    fn role_top_up_or_pos() {
        let base = r#"{"physical_id":"10000001","master_key":"00112233445566778899AABBCCDDEEFF",
            "mac_suite":"sm4","host":"127.0.0.1:9000","terminal_no":1,"merchant_no":1001"#;
        let with = |role: &str| format!("{base},\"role\":\"{role}\"}}");
        assert_eq!(
            Provision::parse(&with("top_up")).unwrap().role,
            TerminalRole::TopUp
        );
        assert_eq!(
            Provision::parse(&with("pos")).unwrap().role,
            TerminalRole::Pos
        );
        assert!(Provision::parse(&with("bank")).is_err());
    }
}
