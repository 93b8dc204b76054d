//! The terminal's operator-card check (0x0A, R-B11): the card's row is read on a reader, the
//! PIN verified against its Argon2id hash on a blocking thread (never on a writer), then one
//! writer job decides and records (`domain::authcards::check`).

use ykt_proto::{AuthCheckRequest, AuthCheckResponse, InfoCode, PhysicalId, Pin};

use super::{Shared, jobs};
use crate::domain::authcards::{self, CheckOutcome, PinVerdict};
use crate::error::HostError;
use crate::repo_authcards;
use crate::secrets;

/// `pin` is what the connection's session opened from the request's PIN block (`None`: the
/// block did not open, a wrong PIN).
pub(crate) async fn check(
    shared: &Shared,
    device: PhysicalId,
    r: AuthCheckRequest,
    pin: Option<Pin>,
) -> AuthCheckResponse {
    let (fep, now) = (shared.config.fep_id, shared.config.clock.now());
    let no = r.card_no;
    let verdict = match jobs::read(&shared.store, move |tx| {
        repo_authcards::get(tx.conn, no, false)
    })
    .await
    {
        Ok(Some(card)) => {
            let hash = card.pin_hash;
            tokio::task::spawn_blocking(move || {
                let matches = pin.is_some_and(|p| secrets::verify_password(p.as_str(), &hash));
                PinVerdict::Checked { hash, matches }
            })
            .await
            .unwrap_or(PinVerdict::NotChecked)
        }
        Ok(None) => PinVerdict::NotChecked,
        Err(e) => return answer(&r, Err(e), device),
    };
    let req = r.clone();
    let result = jobs::write(&shared.store, move |tx| {
        authcards::check(tx, fep, device, &req, &verdict, now)
    })
    .await;
    answer(&r, result, device)
}

fn answer(
    r: &AuthCheckRequest,
    result: crate::Result<CheckOutcome>,
    device: PhysicalId,
) -> AuthCheckResponse {
    let outcome = result.unwrap_or_else(|e| {
        match &e {
            HostError::Invariant(m) => tracing::error!(%device, error = %m, "auth card check"),
            other => tracing::info!(%device, error = %other, "auth card check refused"),
        }
        CheckOutcome {
            code: e.return_code(),
            operator: 0,
            tries_left: 0,
        }
    });
    if outcome.code.0 != 0 {
        tracing::info!(%device, card = r.card_no, function = r.function.as_str(), code = outcome.code.0, "auth card refused");
    }
    AuthCheckResponse {
        code: outcome.code,
        info: InfoCode::NONE,
        card_no: r.card_no,
        function: r.function,
        operator: outcome.operator,
        tries_left: outcome.tries_left,
    }
}
