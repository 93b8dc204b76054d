//! Prints the test vectors of `docs/protocol.md` §9 as Markdown hex blocks.
//! `cargo run -p ykt-proto --example vectors`

use ykt_proto::Suite;
use ykt_proto::test_vectors::all;

fn main() -> Result<(), ykt_proto::EncodeError> {
    for (suite, tag) in [(Suite::Aes128, "aes"), (Suite::Sm4, "sm4")] {
        for (name, bytes) in all(suite)? {
            println!("<!-- vector: {tag}/{name} -->");
            println!("```hex");
            for line in bytes.chunks(16) {
                let hex: Vec<String> = line.iter().map(|b| format!("{b:02X}")).collect();
                println!("{}", hex.join(" "));
            }
            println!("```");
        }
    }
    Ok(())
}
