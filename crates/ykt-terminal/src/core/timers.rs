//! The timer table: every pending deadline of the core, by name, in one place. The next
//! timer the driver is asked for is the earliest of them; before any input is handled, each
//! deadline that has passed is fired in order, at its own time, and leaves the table
//! (`docs/terminal.md`, "Timers"). No flow computes a deadline of its own.

/// A named deadline of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A text shown for a while (balance 2 s, information 1.5 s, statistics 5 s) gives way to
    /// the screen of the state.
    ScreenHold,
    /// The first sign-in after power-up counts as timed out (R-P5.1).
    SignInSettle,
    /// The sign-in in flight has no answer (R-P5.1).
    SignInReply,
    /// Sign in again after a failed or refused sign-in.
    SignInRetry,
    /// The background exchange in flight (upload, download, heartbeat) is given up.
    Exchange,
    /// Background requests wait until this after a failure (R-P5.9).
    ExchangeRetry,
    /// The next heartbeat is due (R-F4.18).
    Heartbeat,
    /// The online debit's answer did not come in time (R-P5.3).
    OnlineReply,
    /// The answer to a load authorisation (0x08) or a what-waits request (0x09) did not come
    /// in time (`docs/loads.md`): asked again once, then given up without a card write.
    LoadReply,
    /// Cancel becomes possible on the re-tap prompt (R-P5.5, R-P5.8).
    CancelLock,
    /// The offline-time counter is checkpointed to flash (R-F4.18).
    OfflineCheckpoint,
    /// The operator did not tap the operator card or key its PIN in time (R-B11).
    AuthStep,
    /// The host did not answer the operator card check 0x0A in time (R-B11).
    AuthReply,
}

const COUNT: usize = 13;

impl Timer {
    const ALL: [Timer; COUNT] = [
        Timer::ScreenHold,
        Timer::SignInSettle,
        Timer::SignInReply,
        Timer::SignInRetry,
        Timer::Exchange,
        Timer::ExchangeRetry,
        Timer::Heartbeat,
        Timer::OnlineReply,
        Timer::LoadReply,
        Timer::CancelLock,
        Timer::OfflineCheckpoint,
        Timer::AuthStep,
        Timer::AuthReply,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The pending deadlines (monotonic ms), at most one per [`Timer`].
#[derive(Debug, Default)]
pub(super) struct Timers {
    at: [Option<u64>; COUNT],
}

impl Timers {
    /// Arms `t` at `at` (replacing an earlier setting).
    pub(super) fn set(&mut self, t: Timer, at: u64) {
        self.at[t.index()] = Some(at);
    }

    pub(super) fn clear(&mut self, t: Timer) {
        self.at[t.index()] = None;
    }

    pub(super) fn is_set(&self, t: Timer) -> bool {
        self.at[t.index()].is_some()
    }

    /// Every pending deadline, in the table's order.
    pub(super) fn pending(&self) -> impl Iterator<Item = (Timer, u64)> + '_ {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.at[t.index()].map(|at| (t, at)))
    }

    /// The earliest pending deadline.
    pub(super) fn next(&self) -> Option<u64> {
        self.pending().map(|(_, at)| at).min()
    }

    /// The earliest deadline at or before `now` (ties in the table's order), taken out of
    /// the table.
    pub(super) fn take_due(&mut self, now: u64) -> Option<(Timer, u64)> {
        let (t, at) = self
            .pending()
            .filter(|&(_, at)| at <= now)
            .min_by_key(|&(t, at)| (at, t))?;
        self.clear(t);
        Some((t, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_deadlines_leave_in_order_and_next_is_the_earliest() {
        let mut t = Timers::default();
        t.set(Timer::Heartbeat, 50);
        t.set(Timer::ScreenHold, 30);
        t.set(Timer::CancelLock, 30);
        assert_eq!(t.next(), Some(30));
        assert_eq!(t.take_due(20), None);
        assert_eq!(t.take_due(40), Some((Timer::ScreenHold, 30)));
        assert_eq!(t.take_due(40), Some((Timer::CancelLock, 30)));
        assert_eq!(t.take_due(40), None);
        assert_eq!(t.next(), Some(50));
        t.clear(Timer::Heartbeat);
        assert_eq!(t.next(), None);
    }
}
