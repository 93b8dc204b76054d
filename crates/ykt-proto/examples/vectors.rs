//! Prints the test vectors of `docs/protocol.md` §9 as Markdown hex blocks.
//! `cargo run -p ykt-proto --example vectors`

use ykt_proto::Suite;
use ykt_proto::crypto::{key_check_value, wrap_key};
use ykt_proto::test_vectors::{MASTER_KEY, SESSION_KEY, all};

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(" ")
}

fn main() -> Result<(), ykt_proto::EncodeError> {
    for (suite, tag, title) in [
        (Suite::Aes128, "aes", "AES-128 suite"),
        (Suite::Sm4, "sm4", "SM4 suite"),
    ] {
        println!("### 9.{} {title}\n", if tag == "aes" { 2 } else { 3 });
        println!(
            "- E(master, session key) = `{}`",
            hex(&wrap_key(suite, &MASTER_KEY, &SESSION_KEY))
        );
        println!("- KCV = `{}`\n", hex(&key_check_value(suite, &SESSION_KEY)));
        for (name, bytes) in all(suite)? {
            println!("#### `{tag}/{name}` ({} bytes)\n", bytes.len());
            println!("<!-- vector: {tag}/{name} -->");
            println!("```hex");
            for line in bytes.chunks(16) {
                println!("{}", hex(line));
            }
            println!("```\n");
        }
    }
    Ok(())
}
