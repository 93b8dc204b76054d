//! Terminal requests inside a session: each becomes a store job; refusals become the
//! response's return code (business refusals are never protocol errors, §7).

use std::sync::Arc;
use std::time::Instant;

use ykt_proto::{
    BlacklistBulkRequest, BlacklistBulkResponse, BlacklistDeltaRequest, BlacklistDeltaResponse,
    BlacklistEntry, BlacklistOp, CARDS_PER_SEGMENT, CardNo, DebitRequest, DebitResponse,
    HeartbeatRequest, HeartbeatResponse, InfoCode, MAX_DELTA_ENTRIES, MAX_SEGMENTS, Message,
    ParamsRequest, ParamsResponse, PhysicalId, Record, RecordKind, RecordResult, RecordStatus,
    ReturnCode, Segment, TerminalSerial, UploadRequest, UploadResponse,
};

use super::{Shared, authcards, jobs, loads, metrics};
use crate::domain::checks::{self, Origin};
use crate::domain::{blacklist, records};
use crate::error::{HostError, Result};
use crate::model::{DeviceReport, Functions};
use crate::repo;

/// Answers one terminal request; `None` for messages a terminal must not send.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    device: PhysicalId,
    msg: Message,
    pin: Option<ykt_proto::Pin>,
) -> Option<Message> {
    Some(match msg {
        Message::HeartbeatRequest(r) => {
            Message::HeartbeatResponse(heartbeat(&shared, device, r).await)
        }
        Message::DebitRequest(r) => Message::DebitResponse(debit(&shared, device, r).await),
        Message::UploadRequest(r) => Message::UploadResponse(upload(&shared, device, r).await),
        Message::BlacklistDeltaRequest(r) => {
            Message::BlacklistDeltaResponse(blacklist_delta(&shared, device, r).await)
        }
        Message::BlacklistBulkRequest(r) => {
            Message::BlacklistBulkResponse(blacklist_bulk(&shared, device, r).await)
        }
        Message::ParamsRequest(r) => Message::ParamsResponse(params(&shared, device, r).await),
        Message::LoadRequest(r) => Message::LoadResponse(loads::load(&shared, device, r).await),
        Message::WaitingRequest(r) => {
            Message::WaitingResponse(loads::waiting(&shared, device, r).await)
        }
        Message::AuthCheckRequest(r) => {
            Message::AuthCheckResponse(authcards::check(&shared, device, r, pin).await)
        }
        _ => return None,
    })
}

/// What a refused request was about: a request of the device, or one of its records.
#[derive(Clone, Copy)]
enum Subject {
    Request(&'static str),
    Record {
        what: &'static str,
        serial: TerminalSerial,
        card: CardNo,
    },
}

/// The one place a terminal request's refusal is logged (#16): device, serial, card and
/// code, so a cashier's complaint can be found by any of them. Held records are refusals
/// too (`held`): their money left the card and waits in the exception queue (R-B3).
fn log_refusal(device: PhysicalId, about: Subject, e: &HostError) {
    let (what, serial, card) = match about {
        Subject::Request(what) => (what, None, None),
        Subject::Record { what, serial, card } => (what, Some(serial), Some(card.get())),
    };
    let code = e.return_code().0;
    match e {
        HostError::Refused(_) => {
            tracing::info!(%device, what, serial, card, code, "refused")
        }
        // A bug: rolled back, the terminal retries (code 1).
        HostError::Invariant(m) => {
            tracing::error!(%device, what, serial, card, code, error = %m, "broken invariant")
        }
        other => tracing::warn!(%device, what, serial, card, code, error = %other, "failed"),
    }
}

/// A record refused for good and held in the exception queue (R-B3).
fn log_held(device: PhysicalId, serial: TerminalSerial, card: CardNo, code: ReturnCode) {
    tracing::warn!(%device, what = "upload", serial, card = card.get(), code = code.0, "refused and held");
}

/// The device as checked on every request (codes 10–13, 20–29).
fn origin_of(tx: &mut crate::ledger::Tx<'_>, fep: u32, device: PhysicalId) -> Result<Origin> {
    let d = repo::device_get(tx.conn, device)?
        .ok_or(HostError::Refused(ReturnCode::POS_NOT_REGISTERED))?;
    Ok(Origin {
        fep,
        device,
        terminal_no: d.terminal_no,
    })
}

async fn heartbeat(shared: &Shared, device: PhysicalId, r: HeartbeatRequest) -> HeartbeatResponse {
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    let result = jobs::write(&shared.store, move |tx| {
        let origin = origin_of(tx, fep, device)?;
        let d = checks::device(tx, &origin, Functions::NONE)?;
        // The heartbeat doubles as a status report (R-F4.20) for monitoring.
        repo::device_report(
            tx.conn,
            device,
            &DeviceReport {
                at: now,
                pending_records: r.pending_records,
                terminal_clock: r.clock,
                blacklist_version: r.blacklist_version,
            },
        )?;
        Ok((blacklist::version(tx)?, d.params.version))
    })
    .await;
    let (code, (bl, pv)) = match result {
        Ok(v) => (ReturnCode::SUCCESS, v),
        Err(e) => {
            log_refusal(device, Subject::Request("heartbeat"), &e);
            (e.return_code(), (0, 0))
        }
    };
    HeartbeatResponse {
        code,
        info: InfoCode::NONE,
        blacklist_version: bl,
        params_version: pv,
        clock: now,
    }
}

/// The record the terminal journalled as "initiated" (R-P5.2), rebuilt from the request.
fn debit_record(device: PhysicalId, r: &DebitRequest, merchant_no: u32) -> Record {
    Record {
        device,
        serial: r.serial,
        kind: RecordKind::Purchase,
        status: RecordStatus::Initiated,
        online: true,
        card_type: r.card_type,
        card_no: r.card_no,
        card_counter: r.card_counter,
        wallet_no: r.wallet_no,
        balance_before: r.balance_before,
        amount: r.amount,
        fee: r.fee,
        // Derived, never wrapped: where it would leave i64 the checks refuse the amounts
        // (34) or the balance before (67) first, and i64::MIN is out of range for them too.
        balance_after: r
            .balance_before
            .checked_sub(r.amount)
            .and_then(|b| b.checked_sub(r.fee))
            .unwrap_or(i64::MIN),
        time: r.time,
        merchant_no,
        original_serial: None,
        item_code: r.item_code,
        tac: 0,
    }
}

async fn debit(shared: &Shared, device: PhysicalId, r: DebitRequest) -> DebitResponse {
    let started = Instant::now();
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    let req = r.clone();
    let result = jobs::write(&shared.store, move |tx| {
        // Read once: the device row gives the terminal number and the merchant, and the
        // domain checks the same row.
        let d = checks::device_row(tx, fep, device)?;
        let origin = Origin {
            fep,
            device,
            terminal_no: d.terminal_no,
        };
        let merchant_no = d.merchant_no.unwrap_or(0);
        // The wire carries no card data beyond the number: the system's own view stands in
        // (info code 6 comes from uploads, which carry what the card said).
        let request = records::DebitRequest {
            origin,
            record: debit_record(device, &req, merchant_no),
            card_view: None,
        };
        records::authorize_on(tx, &request, &d, now)
    })
    .await;
    metrics::debit_latency(started.elapsed().as_secs_f64());
    match result {
        Ok(o) => DebitResponse {
            code: ReturnCode::SUCCESS,
            info: o.info(),
            serial: r.serial,
            card_no: r.card_no,
            amount: r.amount,
            fee: r.fee,
            balance: o.balance,
            collect_last: o.collect,
        },
        Err(e) => {
            let about = Subject::Record {
                what: "debit",
                serial: r.serial,
                card: r.card_no,
            };
            log_refusal(device, about, &e);
            DebitResponse {
                code: e.return_code(),
                info: InfoCode::NONE,
                serial: r.serial,
                card_no: r.card_no,
                amount: 0,
                fee: 0,
                balance: 0,
                collect_last: 0,
            }
        }
    }
}

async fn upload(shared: &Shared, device: PhysicalId, r: UploadRequest) -> UploadResponse {
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    // (serial, card, whether the record is this device's to upload), in the terminal's order. A
    // record of another device is refused on its own (code 25) and never reaches the store,
    // unless it was collected from a card (R-F4.17): it keeps its maker's identity.
    let uploadable = |rec: &Record| rec.device == device || rec.kind == RecordKind::Collected;
    let order: Vec<_> = r
        .records
        .iter()
        .map(|rec| (rec.serial, rec.card_no, uploadable(rec), rec.kind.is_load()))
        .collect();
    let mine: Vec<Record> = r.records.into_iter().filter(uploadable).collect();
    let tac = shared.store.tac_verifier();
    // The whole upload is ONE store job: one group commit for all its records, each booked
    // or refused on its own in its own savepoint (R-P5.9), in the terminal's order.
    let booked = jobs::write_each(
        &shared.store,
        mine,
        move |tx| {
            let d = checks::device_row(tx, fep, device)?;
            let origin = Origin {
                fep,
                device,
                terminal_no: d.terminal_no,
            };
            Ok((origin, d))
        },
        move |tx, (origin, d), rec| records::upload_on(tx, origin, d, rec, tac.as_deref(), now),
    )
    .await;
    let mut outcomes = match booked {
        Ok(outcomes) => outcomes.into_iter(),
        Err(e) => {
            // Not queued (full queue: code 1) or the store is gone: no record was booked.
            let code = e.return_code();
            let results = order
                .into_iter()
                .map(|(serial, card, _, _)| {
                    let about = Subject::Record {
                        what: "upload",
                        serial,
                        card,
                    };
                    log_refusal(device, about, &e);
                    RecordResult { serial, code }
                })
                .collect();
            return UploadResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                results,
            };
        }
    };
    let mut results = Vec::with_capacity(order.len());
    let mut info = InfoCode::NONE;
    for (serial, card, is_mine, is_load) in order {
        let about = Subject::Record {
            what: "upload",
            serial,
            card,
        };
        let outcome = if is_mine { outcomes.next() } else { None };
        let code = match outcome {
            // Another device's record, or (never: one outcome per item) a missing outcome.
            None if is_mine => {
                let e = HostError::Invariant(format!("no outcome for record {serial}"));
                log_refusal(device, about, &e);
                e.return_code()
            }
            None => {
                let e = HostError::Refused(ReturnCode::POS_TERMINAL_NO_ERROR);
                log_refusal(device, about, &e);
                e.return_code()
            }
            Some(Ok(records::Uploaded::Stored(o))) => {
                if info == InfoCode::NONE {
                    info = o.info();
                }
                ReturnCode::SUCCESS
            }
            // R-B3: refused for good, held in the exception queue. A load the host never
            // authorised: information code 9 (docs/loads.md).
            Some(Ok(records::Uploaded::Held(code))) => {
                if is_load && code == ReturnCode::RECORD_NOT_FOUND {
                    info = InfoCode::TOP_UP_RECORD_NOT_FOUND;
                }
                log_held(device, serial, card, code);
                code
            }
            Some(Err(e)) => {
                log_refusal(device, about, &e);
                e.return_code()
            }
        };
        results.push(RecordResult { serial, code });
    }
    UploadResponse {
        code: ReturnCode::SUCCESS,
        info,
        results,
    }
}

async fn blacklist_delta(
    shared: &Shared,
    device: PhysicalId,
    r: BlacklistDeltaRequest,
) -> BlacklistDeltaResponse {
    let max = match r.max_entries {
        0 => MAX_DELTA_ENTRIES,
        n => usize::from(n).min(MAX_DELTA_ENTRIES),
    };
    let since = r.since;
    let result = jobs::read(&shared.store, move |tx| {
        let current = blacklist::version(tx)?;
        if since >= current {
            return Ok((current, Vec::new(), false));
        }
        let d = blacklist::changes_since(tx, since, None, max as u32)?;
        Ok((d.version, d.changes, d.more))
    })
    .await;
    let empty = |code| BlacklistDeltaResponse {
        code,
        info: InfoCode::NONE,
        from: since,
        to: since,
        more: false,
        entries: Vec::new(),
    };
    match result {
        // More changes than one page: the terminal falls back to bulk initialisation (§6.7).
        Ok((_, _, true)) => empty(ReturnCode::SUCCESS),
        Ok((version, changes, false)) => BlacklistDeltaResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            from: since,
            to: version.max(since),
            more: false,
            entries: changes
                .into_iter()
                .map(|(card_no, listed)| BlacklistEntry {
                    op: if listed {
                        BlacklistOp::Add
                    } else {
                        BlacklistOp::Remove
                    },
                    card_no,
                })
                .collect(),
        },
        Err(e) => {
            log_refusal(device, Subject::Request("blacklist_delta"), &e);
            empty(e.return_code())
        }
    }
}

/// The highest listed card, for the segment count.
fn highest_listed(tx: &mut crate::ledger::Tx<'_>) -> Result<u32> {
    let row = tx.conn.query_one(
        "SELECT COALESCE(MAX(card_no), 0) FROM blacklist WHERE listed = 1",
        &[],
    )?;
    Ok(u32::try_from(row.int(0)?).unwrap_or(0))
}

async fn blacklist_bulk(
    shared: &Shared,
    device: PhysicalId,
    r: BlacklistBulkRequest,
) -> BlacklistBulkResponse {
    let segment = r.segment;
    let result = jobs::read(&shared.store, move |tx| {
        let version = blacklist::version(tx)?;
        let highest = highest_listed(tx)?;
        let count = if highest == 0 {
            0
        } else {
            u16::try_from(highest / CARDS_PER_SEGMENT + 1).unwrap_or(MAX_SEGMENTS)
        };
        if segment >= count.max(1) {
            return Err(HostError::Refused(ReturnCode::OTHER_ERROR));
        }
        let start = u32::from(segment) * CARDS_PER_SEGMENT;
        let end = start + CARDS_PER_SEGMENT;
        let mut bitmap: Option<Segment> = None;
        let mut after = start.checked_sub(1).and_then(CardNo::new);
        // Pages of the list in card order until the segment ends (bounded by its size).
        loop {
            let page = blacklist::bulk(tx, after, blacklist::MAX_PAGE)?;
            let mut past_end = false;
            for c in &page.cards {
                if c.get() >= end {
                    past_end = true;
                    break;
                }
                bitmap
                    .get_or_insert_with(Segment::empty)
                    .insert(c.get() - start);
            }
            after = page.cards.last().copied();
            if past_end || !page.more {
                break;
            }
        }
        Ok((version, count, bitmap))
    })
    .await;
    match result {
        Ok((version, segments, bitmap)) => BlacklistBulkResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            version,
            segment,
            segments,
            bitmap,
        },
        Err(e) => {
            log_refusal(device, Subject::Request("blacklist_bulk"), &e);
            BlacklistBulkResponse {
                code: e.return_code(),
                info: InfoCode::NONE,
                version: 0,
                segment,
                segments: 0,
                bitmap: None,
            }
        }
    }
}

async fn params(shared: &Shared, device: PhysicalId, r: ParamsRequest) -> ParamsResponse {
    let fep = shared.config.fep_id;
    let result = jobs::read(&shared.store, move |tx| {
        let origin = origin_of(tx, fep, device)?;
        checks::device(tx, &origin, Functions::NONE).map(|d| d.params)
    })
    .await;
    match result {
        Ok(p) => ParamsResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            params: (p.version != r.version).then_some(p),
        },
        Err(e) => {
            log_refusal(device, Subject::Request("params"), &e);
            ParamsResponse {
                code: e.return_code(),
                info: InfoCode::NONE,
                params: None,
            }
        }
    }
}
