//! Who may do what (R-B1): the roles of a card office and the permissions each grants. The
//! admin API declares one [`Access`] per route (`server/routes.rs`) and checks it in one
//! place (`server/auth.rs`); the console shows only what a role allows.

use serde::Serialize;

/// One thing an operator may do. Read permissions never change state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    CardRead,
    /// Issue, loss / found, freeze / unfreeze, cancel.
    CardWrite,
    /// Card-office deposits (cash or bank).
    Deposit,
    CardholderRead,
    CardholderWrite,
    /// See cardholders' ID numbers unmasked.
    CardholderIdentity,
    MerchantRead,
    MerchantWrite,
    DeviceRead,
    /// Register, enable / disable, parameters, collection orders.
    DeviceWrite,
    FepRead,
    FepWrite,
    BlacklistRead,
    /// The daily and cash reports of everyone.
    ReportRead,
    /// One's own shift: its cash report and closing it (扎帐).
    ShiftOwn,
    AuditRun,
    JournalRead,
    /// Approve or reject what the two-person rule holds back.
    ApprovalDecide,
    ExceptionRead,
    ExceptionResolve,
    OperatorRead,
    /// Add operators, change their roles, disable, reset passwords, revoke their tokens.
    OperatorWrite,
    /// Bulk provisioning of merchants, devices and cards (`ykt loadgen`).
    Bulk,
    /// System settings (the deposit amount that needs a second operator's approval, the
    /// subsidy caps).
    Settings,
    /// Subsidy batches, their lines and their report.
    SubsidyRead,
    /// Import a subsidy list as a batch; issue an approved batch.
    SubsidyImport,
    /// Check (审核) a batch, approve one someone else imported and checked, revoke a batch,
    /// expire what waits past its date.
    SubsidyApprove,
    /// Pay closed cards' refunds out (cash at the counter, bank payouts now) (R-B7).
    Refund,
}

impl Permission {
    pub const ALL: [Permission; 28] = [
        Permission::CardRead,
        Permission::CardWrite,
        Permission::Deposit,
        Permission::CardholderRead,
        Permission::CardholderWrite,
        Permission::CardholderIdentity,
        Permission::MerchantRead,
        Permission::MerchantWrite,
        Permission::DeviceRead,
        Permission::DeviceWrite,
        Permission::FepRead,
        Permission::FepWrite,
        Permission::BlacklistRead,
        Permission::ReportRead,
        Permission::ShiftOwn,
        Permission::AuditRun,
        Permission::JournalRead,
        Permission::ApprovalDecide,
        Permission::ExceptionRead,
        Permission::ExceptionResolve,
        Permission::OperatorRead,
        Permission::OperatorWrite,
        Permission::Bulk,
        Permission::Settings,
        Permission::SubsidyRead,
        Permission::SubsidyImport,
        Permission::SubsidyApprove,
        Permission::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CardRead => "card-read",
            Permission::CardWrite => "card-write",
            Permission::Deposit => "deposit",
            Permission::CardholderRead => "cardholder-read",
            Permission::CardholderWrite => "cardholder-write",
            Permission::CardholderIdentity => "cardholder-identity",
            Permission::MerchantRead => "merchant-read",
            Permission::MerchantWrite => "merchant-write",
            Permission::DeviceRead => "device-read",
            Permission::DeviceWrite => "device-write",
            Permission::FepRead => "fep-read",
            Permission::FepWrite => "fep-write",
            Permission::BlacklistRead => "blacklist-read",
            Permission::ReportRead => "report-read",
            Permission::ShiftOwn => "shift-own",
            Permission::AuditRun => "audit-run",
            Permission::JournalRead => "journal-read",
            Permission::ApprovalDecide => "approval-decide",
            Permission::ExceptionRead => "exception-read",
            Permission::ExceptionResolve => "exception-resolve",
            Permission::OperatorRead => "operator-read",
            Permission::OperatorWrite => "operator-write",
            Permission::Bulk => "bulk",
            Permission::Settings => "settings",
            Permission::SubsidyRead => "subsidy-read",
            Permission::SubsidyImport => "subsidy-import",
            Permission::SubsidyApprove => "subsidy-approve",
            Permission::Refund => "refund",
        }
    }

    /// Whether holding it lets an operator change state.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Permission::CardWrite
                | Permission::Deposit
                | Permission::CardholderWrite
                | Permission::MerchantWrite
                | Permission::DeviceWrite
                | Permission::FepWrite
                | Permission::ShiftOwn
                | Permission::ApprovalDecide
                | Permission::ExceptionResolve
                | Permission::OperatorWrite
                | Permission::Bulk
                | Permission::Settings
                | Permission::SubsidyImport
                | Permission::SubsidyApprove
                | Permission::Refund
        )
    }
}

/// What a route demands of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (logging in).
    Public,
    /// Any signed-in operator, even one who must still change the initial password
    /// (changing it, logging out, who am I).
    SignedIn,
    /// Any signed-in operator with a password of their own choosing, on their own things
    /// (their API tokens, their shift).
    Own,
    /// A signed-in operator whose roles grant this permission.
    Needs(Permission),
}

/// The roles of a card office. An operator holds one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// 系统管理员: everything, operators included.
    Admin,
    /// 卡务: cards, cardholders, deposits, loss / found, freeze.
    Clerk,
    /// 财务: reports, approvals, exceptions; reads everything.
    Finance,
    /// 设备: devices, parameters, FEPs; sees the blacklist.
    Technician,
    /// 审计: reads everything, the journal included; changes nothing.
    Auditor,
}

/// Everything a read-only role sees (identity numbers excepted).
const READ_ALL: [Permission; 13] = [
    Permission::CardRead,
    Permission::CardholderRead,
    Permission::MerchantRead,
    Permission::DeviceRead,
    Permission::FepRead,
    Permission::BlacklistRead,
    Permission::ReportRead,
    Permission::AuditRun,
    Permission::JournalRead,
    Permission::ExceptionRead,
    Permission::OperatorRead,
    Permission::ShiftOwn,
    Permission::SubsidyRead,
];

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Clerk,
        Role::Finance,
        Role::Technician,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clerk => "clerk",
            Role::Finance => "finance",
            Role::Technician => "technician",
            Role::Auditor => "auditor",
        }
    }

    /// The name a card office uses.
    pub fn title(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Clerk => "卡务",
            Role::Finance => "财务",
            Role::Technician => "设备",
            Role::Auditor => "审计",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The one table of who may do what.
    pub fn grants(self, p: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Clerk => matches!(
                p,
                P::CardRead
                    | P::CardWrite
                    | P::Deposit
                    | P::CardholderRead
                    | P::CardholderWrite
                    | P::CardholderIdentity
                    | P::MerchantRead
                    | P::BlacklistRead
                    | P::ShiftOwn
                    | P::SubsidyRead
                    | P::SubsidyImport
            ),
            Role::Finance => {
                READ_ALL.contains(&p)
                    || matches!(
                        p,
                        P::ApprovalDecide
                            | P::ExceptionResolve
                            | P::MerchantWrite
                            | P::SubsidyApprove
                            | P::Refund
                    )
            }
            Role::Technician => matches!(
                p,
                P::DeviceRead
                    | P::DeviceWrite
                    | P::FepRead
                    | P::FepWrite
                    | P::BlacklistRead
                    | P::MerchantRead
            ),
            // ShiftOwn writes (closing a shift): an auditor has no shift.
            Role::Auditor => READ_ALL.contains(&p) && !p.writes(),
        }
    }
}

/// The roles of one operator, as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | Roles::bit(*r)))
    }

    fn bit(r: Role) -> u8 {
        1 << (r as u8)
    }

    pub fn contains(self, r: Role) -> bool {
        self.0 & Roles::bit(r) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The first of these roles (in [`Role::ALL`] order) that grants `p`: the role the
    /// journal names as used.
    pub fn granting(self, p: Permission) -> Option<Role> {
        self.iter().find(|r| r.grants(p))
    }

    /// Stored as a comma-separated list of role names (`admin,clerk`).
    pub fn to_list(self) -> String {
        self.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn parse_list(s: &str) -> Result<Roles, String> {
        let mut roles = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            roles.push(Role::parse(name).ok_or_else(|| {
                format!("unknown role {name:?}: admin, clerk, finance, technician, auditor")
            })?);
        }
        if roles.is_empty() {
            return Err("an operator has at least one role".into());
        }
        Ok(Roles::of(&roles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-B1: an auditor reads everything and changes nothing; an administrator does all.
    #[test]
    fn auditor_reads_only_and_admin_does_all() {
        for p in Permission::ALL {
            assert!(Role::Admin.grants(p), "{p:?}");
            if Role::Auditor.grants(p) {
                assert!(!p.writes(), "auditor may {p:?}");
            }
        }
        assert!(Role::Auditor.grants(Permission::JournalRead));
        assert!(!Role::Auditor.grants(Permission::CardholderIdentity));
    }

    // R-B1: each role's core duties, and what it must not do.
    #[test]
    fn roles_grant_their_duties() {
        assert!(Role::Clerk.grants(Permission::Deposit));
        assert!(!Role::Clerk.grants(Permission::ApprovalDecide));
        assert!(!Role::Clerk.grants(Permission::DeviceWrite));
        assert!(Role::Finance.grants(Permission::ApprovalDecide));
        assert!(!Role::Finance.grants(Permission::Deposit));
        assert!(Role::Technician.grants(Permission::DeviceWrite));
        assert!(!Role::Technician.grants(Permission::CardWrite));
        assert!(!Role::Finance.grants(Permission::OperatorWrite));
    }

    // R-B5, R-B1: the card office imports and issues subsidy batches, the finance office
    // checks and approves them; neither does the other's part.
    #[test]
    fn subsidy_duties_are_split() {
        assert!(Role::Clerk.grants(Permission::SubsidyImport));
        assert!(!Role::Clerk.grants(Permission::SubsidyApprove));
        assert!(Role::Finance.grants(Permission::SubsidyApprove));
        assert!(!Role::Finance.grants(Permission::SubsidyImport));
        assert!(Role::Auditor.grants(Permission::SubsidyRead));
        assert!(!Role::Technician.grants(Permission::SubsidyRead));
    }

    // R-B7, R-B1: the card office closes cards, the finance office pays refunds out.
    #[test]
    fn refunds_are_finance() {
        assert!(Role::Clerk.grants(Permission::CardWrite));
        assert!(!Role::Clerk.grants(Permission::Refund));
        assert!(Role::Finance.grants(Permission::Refund));
        assert!(!Role::Finance.grants(Permission::CardWrite));
        assert!(!Role::Auditor.grants(Permission::Refund));
    }

    #[test]
    fn role_lists_round_trip() {
        let r = Roles::parse_list("clerk, finance").unwrap();
        assert_eq!(r.to_list(), "clerk,finance");
        assert_eq!(Roles::parse_list(&r.to_list()).unwrap(), r);
        assert!(Roles::parse_list("").is_err());
        assert!(Roles::parse_list("clerk,boss").is_err());
        assert_eq!(r.granting(Permission::ReportRead), Some(Role::Finance));
        assert_eq!(r.granting(Permission::Deposit), Some(Role::Clerk));
        assert_eq!(r.granting(Permission::OperatorWrite), None);
    }

    #[test]
    fn permission_list_is_complete() {
        let mut names: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
    }
}
