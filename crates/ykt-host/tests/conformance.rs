//! The storage conformance suite: every test is written once (`suite`) and run against
//! SQLite and PostgreSQL. PostgreSQL tests need 127.0.0.1:5432; with `CI=true` they are
//! mandatory, elsewhere they print `skipped: PostgreSQL unreachable` when it is down.
#![allow(clippy::unwrap_used)]

#[path = "conformance/admin.rs"]
mod admin;
#[path = "conformance/authcards.rs"]
mod authcards;
#[path = "conformance/exceptions.rs"]
mod exceptions;
#[path = "conformance/holders.rs"]
mod holders;
#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/lifecycle_late.rs"]
mod lifecycle_late;
#[path = "conformance/loads.rs"]
mod loads;
#[path = "conformance/merchants.rs"]
mod merchants;
#[path = "conformance/people.rs"]
mod people;
#[path = "conformance/reconcile.rs"]
mod reconcile;
#[path = "conformance/subsidies.rs"]
mod subsidies;
#[path = "conformance/suite.rs"]
mod suite;
#[path = "conformance/support.rs"]
mod support;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { let f = super::support::sqlite(); super::tests::$name(&f); })*
        }
        mod postgres {
            $(#[test] fn $name() {
                let Some(f) = super::support::postgres() else { return };
                super::tests::$name(&f);
            })*
        }
    };
}

conformance!(
    reconcile_classifies_each_kind,
    reconcile_alarm_after_days_or_amount,
    pin_wrong_tries_lock_the_card,
    fep_lifecycle,
    device_lifecycle,
    merchant_codes,
    card_lifecycle_codes,
    card_numbers,
    online_debit_books_and_is_durable,
    amount_codes,
    records_unique_per_device_serial,
    online_record_upload_reconciles,
    cancellation_reverses_online_debit,
    offline_upload_books_once,
    abnormal_records_stored_not_booked,
    reversal_codes,
    lifetime_counter,
    info_codes_from_state,
    blacklist_versions,
    cpu_tac_verified,
    audit_detects_tampering,
    sign_in_and_status,
    batch_isolates_failed_job,
    scale_out_two_stores,
    reads_are_separate_and_read_only,
    concurrent_batches_across_stores,
    collected_across_terminals,
    collected_after_maker_upload,
    collected_unknown_device_to_suspense,
    config_changes_reach_every_writer,
    config_change_seen_in_the_same_batch,
    subjects_on_records_and_in_report,
    refused_debits_are_held,
    debits_beyond_the_account_are_held,
    records_without_money_are_not_held,
    exceptions_resolved,
    audit_covers_exceptions,
    broken_invariant_is_retryable,
    money_limits_in_the_domain,
    audit_reads_overflowing_data,
    loss_reports_race_across_stores,
    params_patches_race_across_stores,
    display_number_race_across_stores,
    operators_and_journal,
    last_admin_is_kept,
    login_lockout,
    api_tokens,
    web_sessions,
    journal_is_append_only,
    audit_pairs_deposits_with_the_journal,
    cardholders_add_update_status,
    cardholders_search,
    cardholders_one_active_card,
    cardholders_concurrent_attach,
    cardholders_import_idempotent,
    top_up_posts_and_voids,
    top_up_repeat_is_idempotent,
    top_up_limits_and_functions,
    load_record_without_authorisation_is_held,
    settlement_by_next_record,
    deposit_waits_and_is_picked_up,
    pickup_void_and_revoke,
    reversal_after_pickup_is_refused,
    cpu_load_mac_and_tac,
    audit_catches_tampered_loads,
    subsidy_import_errors_per_line,
    subsidy_two_person_rule,
    subsidy_issue_and_revoke,
    subsidy_expiry,
    subsidy_audit_finds_tampering,
    subsidy_picked_up_then_revoked,
    subsidy_batch_state_machine,
    subsidy_follows_replaced_or_closed_card,
    replacement_waits_then_moves,
    late_record_after_move_is_corrected,
    replacement_fee_cash_or_balance,
    closure_refund_in_cash,
    closure_refund_to_bank,
    closed_card_late_record_held,
    bad_card_repair,
    graduation_batch_with_approval,
    late_credit_of_replaced_card_follows_to_new_card,
    late_credit_of_paid_out_card_is_owed,
    collected_record_of_replaced_or_closed_card,
    late_credit_follows_a_chain_of_replacements,
    auth_card_codes,
    auth_card_lifecycle,
    auth_card_stale_pin_verdict,
    auth_card_audit_finds_tampering,
    merchant_type_codes,
    payout_with_commission,
    merchant_balance_codes,
    merchant_account_check,
    maintenance_mode,
    day_end_freezes_the_report,
    day_end_books_late_records,
    day_end_schedule_and_meal_periods,
);

/// Every test of the suite, wherever it is written.
mod tests {
    pub use super::admin::*;
    pub use super::authcards::*;
    pub use super::exceptions::*;
    pub use super::holders::*;
    pub use super::lifecycle::*;
    pub use super::lifecycle_late::*;
    pub use super::loads::*;
    pub use super::merchants::*;
    pub use super::people::*;
    pub use super::reconcile::*;
    pub use super::subsidies::*;
    pub use super::suite::*;
}
