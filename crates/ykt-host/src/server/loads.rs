//! Terminal requests for loads (docs/loads.md): 0x08 load authorisation and 0x09 what waits,
//! each one store job over `domain::topup`; refusals become the response's return code.

use ykt_proto::{
    InfoCode, LoadRequest, LoadResponse, PhysicalId, ReturnCode, WaitingRequest, WaitingResponse,
};

use super::{Shared, jobs};
use crate::domain::checks::{self, Origin};
use crate::domain::topup::{self, LoadAuth, LoadServices, SimulatedBank};
use crate::error::HostError;

fn origin(tx: &mut crate::ledger::Tx<'_>, fep: u32, device: PhysicalId) -> crate::Result<Origin> {
    let d = checks::device_row(tx, fep, device)?;
    Ok(Origin {
        fep,
        device,
        terminal_no: d.terminal_no,
    })
}

fn log_refusal(device: PhysicalId, what: &str, e: &HostError) {
    match e {
        HostError::Refused(code) => tracing::info!(%device, what, code = code.0, "refused"),
        HostError::Invariant(m) => tracing::error!(%device, what, error = %m, "broken invariant"),
        other => tracing::warn!(%device, what, error = %other, "failed"),
    }
}

pub(crate) async fn load(shared: &Shared, device: PhysicalId, r: LoadRequest) -> LoadResponse {
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    let keys = shared.store.tac_verifier();
    let req = r.clone();
    let result = jobs::write(&shared.store, move |tx| {
        let auth = LoadAuth {
            origin: origin(tx, fep, device)?,
            request: req.clone(),
        };
        let services = LoadServices {
            bank: &SimulatedBank,
            keys: keys.as_deref(),
        };
        topup::authorize(tx, &auth, services, now)
    })
    .await;
    match result {
        Ok(a) => LoadResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            serial: r.serial,
            card_no: r.card_no,
            amount: a.amount,
            balance_after: a.balance_after,
            subsidy_seq_after: a.subsidy_seq_after,
            mac2: a.mac2,
            account_balance: a.account_balance,
        },
        Err(e) => {
            log_refusal(device, "load", &e);
            LoadResponse {
                code: e.return_code(),
                info: InfoCode::NONE,
                serial: r.serial,
                card_no: r.card_no,
                amount: 0,
                balance_after: 0,
                subsidy_seq_after: 0,
                mac2: [0; 4],
                account_balance: 0,
            }
        }
    }
}

pub(crate) async fn waiting(
    shared: &Shared,
    device: PhysicalId,
    r: WaitingRequest,
) -> WaitingResponse {
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    let req = r.clone();
    let result = jobs::write(&shared.store, move |tx| {
        let origin = origin(tx, fep, device)?;
        topup::waiting(tx, &origin, &req, now)
    })
    .await;
    let (code, w) = match result {
        Ok(w) => (ReturnCode::SUCCESS, w),
        Err(e) => {
            log_refusal(device, "waiting", &e);
            let none = topup::Waiting {
                amount: 0,
                loads: 0,
                subsidy_seq_after: 0,
            };
            (e.return_code(), none)
        }
    };
    WaitingResponse {
        code,
        info: InfoCode::NONE,
        card_no: r.card_no,
        amount: w.amount,
        loads: w.loads,
        subsidy_seq_after: w.subsidy_seq_after,
    }
}
