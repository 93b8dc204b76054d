//! The hex vectors of docs/protocol.md §9 are exactly what the code produces, and each one
//! opens on the receiving side in the documented order (R-C6.3).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ykt_proto::test_vectors::{self as tv, DEVICE, MASTER_KEY, NONCE, SESSION_KEY};
use ykt_proto::*;

const DOC: &str = include_str!("../../../docs/protocol.md");

/// Every `<!-- vector: NAME -->` followed by a ```hex block.
fn doc_vectors() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- vector: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines.next(), Some("```hex"), "{name}");
        let mut bytes = Vec::new();
        for l in lines.by_ref().take_while(|l| *l != "```") {
            bytes.extend(hex::decode(l.replace(' ', "")).unwrap());
        }
        assert!(out.insert(name.to_owned(), bytes).is_none(), "{name} twice");
    }
    out
}

fn derived() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (suite, tag) in [(Suite::Aes128, "aes"), (Suite::Sm4, "sm4")] {
        for (name, bytes) in tv::all(suite).unwrap() {
            out.insert(format!("{tag}/{name}"), bytes);
        }
    }
    out
}

// R-C6.3: the document's vectors and the code agree, one for every message of each suite.
#[test]
fn document_vectors_match_the_code() {
    let doc = doc_vectors();
    let code = derived();
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        code.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &code {
        assert_eq!(&doc[name], bytes, "vector {name} differs from the code");
    }
    // Requests and responses of every type, plus the error response, per suite.
    assert_eq!(doc.len(), 2 * (2 * (MsgType::ALL.len() - 1) + 1));
}

// R-C6.3, R-C6.1, R-C6.2, R-B4: replaying the documented conversation through the receiving side's
// checks accepts every frame, with the documented values.
#[test]
fn document_conversation_opens_on_the_receiving_side() {
    let doc = doc_vectors();
    for (suite, tag) in [(Suite::Aes128, "aes"), (Suite::Sm4, "sm4")] {
        let v = |name: &str| &doc[&format!("{tag}/{name}")];
        let master = DeviceKey {
            suite,
            key: MASTER_KEY,
        };
        let (_, req) = open_sign_in(&master, v("sign-in-request")).unwrap();
        assert_eq!(req, tv::sign_in_request(suite));
        let (resp, term) =
            open_sign_in_response(DEVICE, &master, &NONCE, v("sign-in-response")).unwrap();
        assert_eq!(resp.params, Some(tv::params()));
        assert_eq!(resp.merchant_name, "一食堂");
        let mut term = term.unwrap();
        let mut host = Session::new(Role::Host, DEVICE, suite, &SESSION_KEY);

        let names = tv::all(suite).unwrap();
        for (name, _) in names.iter().skip(2) {
            let frame = v(name);
            if *name == "error-response" {
                let e = peek_error(frame).unwrap();
                assert_eq!(
                    (e.code, e.reason),
                    (
                        ReturnCode::FEP_NO_SUCH_FUNCTION,
                        ErrorReason::UnsupportedVersion
                    )
                );
                continue;
            }
            // Terminal requests and host requests alternate with their responses; the
            // header says who sent the frame.
            let to_host = !RawFrame::parse(frame).unwrap().header.from_host();
            let opened = if to_host {
                host.open(frame)
            } else {
                term.open(frame)
            }
            .unwrap_or_else(|e| panic!("{tag}/{name}: {e}"));
            if opened.header.is_response() {
                assert_ne!(opened.header.corr, 0, "{name}");
                assert_eq!(
                    opened.message.codes().unwrap().0,
                    ReturnCode::SUCCESS,
                    "{name}"
                );
            }
            if *name == "debit-request" {
                assert_eq!(opened.message, Message::DebitRequest(tv::debit_request()));
            }
            if *name == "debit-response" {
                assert_eq!(opened.message, Message::DebitResponse(tv::debit_response()));
            }
            // R-B4: the load messages as documented in §6.16–6.17.
            let expected = match *name {
                "load-request" => Some(Message::LoadRequest(tv::load_request())),
                "load-response" => Some(Message::LoadResponse(tv::load_response())),
                "waiting-request" => Some(Message::WaitingRequest(tv::waiting_request())),
                "waiting-response" => Some(Message::WaitingResponse(tv::waiting_response())),
                // R-B11: the authorisation check of §6.18; its PIN block opens to the PIN.
                "auth-check-request" => {
                    Some(Message::AuthCheckRequest(tv::auth_check_request_in(suite)))
                }
                "auth-check-response" => {
                    Some(Message::AuthCheckResponse(tv::auth_check_response()))
                }
                _ => None,
            };
            if let Some(expected) = expected {
                assert_eq!(opened.message, expected, "{name}");
            }
        }
    }
}
