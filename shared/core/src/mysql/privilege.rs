//! MySQL's and MariaDB's privileges, by the names `SHOW GRANTS` prints, and
//! the three encodings the grant tables store them in: MariaDB's
//! `global_priv.access` bitmask, the `Y`/`N` columns of `mysql.user` and
//! `mysql.db`, and the `SET` columns of `tables_priv`, `columns_priv` and
//! `procs_priv`. A grant carries GRANT OPTION as its `grantable` flag, as in
//! PostgreSQL's model; [`Privilege::GrantOption`] is how a finding names that
//! flag (MySQL keeps one per scope, and a plan reports it once per scope).

use std::fmt;

use crate::model::PrivilegeClass;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! privileges {
    ($($variant:ident = $keyword:literal => $class:ident;)*) => {
        /// A static privilege of either engine, or a MySQL 8 dynamic one.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Privilege {
            $(
                #[doc = concat!("`", $keyword, "`")]
                $variant,
            )*
            /// A privilege this table does not list: MySQL 8's dynamic
            /// privileges (`global_grants.PRIV`, e.g. `BACKUP_ADMIN`), uppercase.
            Dynamic(String),
        }

        const STATIC: &[(Privilege, &str, PrivilegeClass)] = &[
            $((Privilege::$variant, $keyword, PrivilegeClass::$class),)*
        ];
    };
}

privileges! {
    Select = "SELECT" => Read;
    Insert = "INSERT" => Write;
    Update = "UPDATE" => Write;
    Delete = "DELETE" => Write;
    Create = "CREATE" => Ddl;
    Drop = "DROP" => Ddl;
    Reload = "RELOAD" => Admin;
    Shutdown = "SHUTDOWN" => Admin;
    Process = "PROCESS" => Admin;
    File = "FILE" => Admin;
    References = "REFERENCES" => Ddl;
    Index = "INDEX" => Ddl;
    Alter = "ALTER" => Ddl;
    ShowDatabases = "SHOW DATABASES" => Read;
    Super = "SUPER" => Admin;
    CreateTemporaryTables = "CREATE TEMPORARY TABLES" => Write;
    LockTables = "LOCK TABLES" => Write;
    Execute = "EXECUTE" => Write;
    ReplicationSlave = "REPLICATION SLAVE" => Admin;
    ReplicationClient = "REPLICATION CLIENT" => Admin;
    CreateView = "CREATE VIEW" => Ddl;
    ShowView = "SHOW VIEW" => Read;
    CreateRoutine = "CREATE ROUTINE" => Ddl;
    AlterRoutine = "ALTER ROUTINE" => Ddl;
    CreateUser = "CREATE USER" => Admin;
    Event = "EVENT" => Ddl;
    Trigger = "TRIGGER" => Ddl;
    CreateTablespace = "CREATE TABLESPACE" => Admin;
    DeleteHistory = "DELETE HISTORY" => Write;
    SetUser = "SET USER" => Admin;
    FederatedAdmin = "FEDERATED ADMIN" => Admin;
    ConnectionAdmin = "CONNECTION ADMIN" => Admin;
    ReadOnlyAdmin = "READ_ONLY ADMIN" => Admin;
    ReplicationSlaveAdmin = "REPLICATION SLAVE ADMIN" => Admin;
    ReplicationMasterAdmin = "REPLICATION MASTER ADMIN" => Admin;
    BinlogAdmin = "BINLOG ADMIN" => Admin;
    BinlogReplay = "BINLOG REPLAY" => Admin;
    SlaveMonitor = "SLAVE MONITOR" => Admin;
    ShowCreateRoutine = "SHOW CREATE ROUTINE" => Read;
    CreateRole = "CREATE ROLE" => Admin;
    DropRole = "DROP ROLE" => Admin;
    Proxy = "PROXY" => Admin;
    GrantOption = "GRANT OPTION" => Admin;
}

impl Privilege {
    /// The name `SHOW GRANTS` prints (MariaDB's `BINLOG MONITOR` is read as
    /// `REPLICATION CLIENT`, its older name and MySQL's).
    pub fn keyword(&self) -> &str {
        match self {
            Privilege::Dynamic(name) => name,
            p => STATIC.iter().find(|(q, ..)| q == p).map(|(_, k, _)| *k).expect("every static privilege is listed"),
        }
    }

    /// A privilege from its name as `SHOW GRANTS` or a grant table spells it
    /// (any case; `Show view`, `Create View`, `Alter Routine`, `Delete versioning
    /// rows`). A name not in the static table is a dynamic privilege.
    pub fn from_keyword(name: &str) -> Privilege {
        let upper = name.trim().to_ascii_uppercase();
        let upper = match upper.as_str() {
            "BINLOG MONITOR" => "REPLICATION CLIENT",
            "DELETE VERSIONING ROWS" => "DELETE HISTORY",
            "SLAVE MONITOR" | "REPLICA MONITOR" => "SLAVE MONITOR",
            "REPLICATION REPLICA" => "REPLICATION SLAVE",
            "REPLICATION REPLICA ADMIN" => "REPLICATION SLAVE ADMIN",
            other => other,
        };
        STATIC
            .iter()
            .find(|(_, k, _)| *k == upper)
            .map(|(p, ..)| p.clone())
            .unwrap_or_else(|| Privilege::Dynamic(upper.to_owned()))
    }

    /// A privilege as a report spells it: a static one's keyword exactly, or
    /// a MySQL 8 dynamic one (capitals, digits and `_`, holding a `_`:
    /// `BACKUP_ADMIN`); none for any other word.
    pub fn from_report(word: &str) -> Option<Privilege> {
        if let Some((p, ..)) = STATIC.iter().find(|(_, k, _)| *k == word) {
            return Some(p.clone());
        }
        let dynamic =
            word.contains('_') && word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        dynamic.then(|| Privilege::Dynamic(word.to_owned()))
    }

    /// Whether the server accepts this privilege at `scope`'s level (`GRANT
    /// FILE ON db.*` is refused; a column takes SELECT, INSERT, UPDATE and
    /// REFERENCES). Every privilege is accepted globally.
    pub fn accepted_at(&self, scope: &super::catalog::Scope) -> bool {
        use super::catalog::Scope;
        use Privilege::*;
        let table = matches!(
            self,
            Select
                | Insert
                | Update
                | Delete
                | Create
                | Drop
                | References
                | Index
                | Alter
                | CreateView
                | ShowView
                | Trigger
                | DeleteHistory
        );
        match scope {
            Scope::Global => *self != GrantOption,
            Scope::Database { .. } => {
                table
                    || matches!(
                        self,
                        CreateTemporaryTables
                            | LockTables
                            | Execute
                            | CreateRoutine
                            | AlterRoutine
                            | Event
                            | ShowCreateRoutine
                    )
            }
            Scope::Table { .. } => table,
            Scope::Column { .. } => matches!(self, Select | Insert | Update | References),
            Scope::Routine { .. } => matches!(self, Execute | AlterRoutine),
        }
    }

    /// The risk class (the same scale as PostgreSQL's privileges): reading,
    /// changing data or running code, changing the schema, or administering
    /// the server. Every dynamic privilege is administrative: MySQL 8 has no
    /// other kind (`*_ADMIN`, `BACKUP_ADMIN`, `AUDIT_ABORT_EXEMPT`...).
    pub fn class(&self) -> PrivilegeClass {
        match self {
            Privilege::Dynamic(_) => PrivilegeClass::Admin,
            p => STATIC.iter().find(|(q, ..)| q == p).map(|(.., c)| *c).expect("every static privilege is listed"),
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Serialize for Privilege {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.keyword())
    }
}

impl<'de> Deserialize<'de> for Privilege {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Privilege::from_keyword(&s))
    }
}

/// The `GRANT` bit of MariaDB's `global_priv.access` and the `Grant_priv`
/// column: the grant option, a flag of the grant rather than a privilege.
pub const GRANT_OPTION_BIT: u32 = 10;

/// MariaDB's `global_priv.access` bits (`privilege_t` in MariaDB 10.5 to 11.x,
/// `sql/privilege.h`): bit `i` is `ACCESS_BITS[i]`; bit 10 is GRANT OPTION.
/// MariaDB 10.4 used bits 0 to 29 the same way.
const ACCESS_BITS: &[Option<Privilege>] = &[
    Some(Privilege::Select),
    Some(Privilege::Insert),
    Some(Privilege::Update),
    Some(Privilege::Delete),
    Some(Privilege::Create),
    Some(Privilege::Drop),
    Some(Privilege::Reload),
    Some(Privilege::Shutdown),
    Some(Privilege::Process),
    Some(Privilege::File),
    None, // GRANT OPTION
    Some(Privilege::References),
    Some(Privilege::Index),
    Some(Privilege::Alter),
    Some(Privilege::ShowDatabases),
    Some(Privilege::Super),
    Some(Privilege::CreateTemporaryTables),
    Some(Privilege::LockTables),
    Some(Privilege::Execute),
    Some(Privilege::ReplicationSlave),
    Some(Privilege::ReplicationClient),
    Some(Privilege::CreateView),
    Some(Privilege::ShowView),
    Some(Privilege::CreateRoutine),
    Some(Privilege::AlterRoutine),
    Some(Privilege::CreateUser),
    Some(Privilege::Event),
    Some(Privilege::Trigger),
    Some(Privilege::CreateTablespace),
    Some(Privilege::DeleteHistory),
    Some(Privilege::SetUser),
    Some(Privilege::FederatedAdmin),
    Some(Privilege::ConnectionAdmin),
    Some(Privilege::ReadOnlyAdmin),
    Some(Privilege::ReplicationSlaveAdmin),
    Some(Privilege::ReplicationMasterAdmin),
    Some(Privilege::BinlogAdmin),
    Some(Privilege::BinlogReplay),
    Some(Privilege::SlaveMonitor),
    Some(Privilege::ShowCreateRoutine),
];

/// Decoded `global_priv.access`: the privileges, whether GRANT OPTION is set,
/// and bits this table does not know (a newer server's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The privileges, in bit order.
    pub privileges: Vec<Privilege>,
    /// The GRANT OPTION bit.
    pub grantable: bool,
    /// Set bits with no known privilege.
    pub unknown_bits: Vec<u32>,
}

/// `ALL PRIVILEGES` as MariaDB stores it for root: every bit set. A newer
/// server's unknown bits are then part of "all", not unknown.
const ALL_ACCESS: u64 = u64::MAX;

/// Decodes MariaDB's `global_priv.access`.
pub fn decode_access(access: u64) -> Access {
    let mut out = Access::default();
    for bit in 0..64u32 {
        if access & (1u64 << bit) == 0 {
            continue;
        }
        match ACCESS_BITS.get(bit as usize) {
            Some(Some(p)) => out.privileges.push(p.clone()),
            Some(None) => out.grantable = true,
            None if access == ALL_ACCESS => {}
            None => out.unknown_bits.push(bit),
        }
    }
    out
}

/// The privilege a `mysql.user` or `mysql.db` column holds (`Select_priv`,
/// `Create_tmp_table_priv`, `Repl_client_priv`...), or `None` for a column
/// that is not a privilege. `Grant_priv` is [`Column::GrantOption`].
pub fn privilege_column(column: &str) -> Option<Column> {
    let p = match column.to_ascii_lowercase().as_str() {
        "select_priv" => Privilege::Select,
        "insert_priv" => Privilege::Insert,
        "update_priv" => Privilege::Update,
        "delete_priv" => Privilege::Delete,
        "create_priv" => Privilege::Create,
        "drop_priv" => Privilege::Drop,
        "reload_priv" => Privilege::Reload,
        "shutdown_priv" => Privilege::Shutdown,
        "process_priv" => Privilege::Process,
        "file_priv" => Privilege::File,
        "grant_priv" => return Some(Column::GrantOption),
        "references_priv" => Privilege::References,
        "index_priv" => Privilege::Index,
        "alter_priv" => Privilege::Alter,
        "show_db_priv" => Privilege::ShowDatabases,
        "super_priv" => Privilege::Super,
        "create_tmp_table_priv" => Privilege::CreateTemporaryTables,
        "lock_tables_priv" => Privilege::LockTables,
        "execute_priv" => Privilege::Execute,
        "repl_slave_priv" => Privilege::ReplicationSlave,
        "repl_client_priv" => Privilege::ReplicationClient,
        "create_view_priv" => Privilege::CreateView,
        "show_view_priv" => Privilege::ShowView,
        "create_routine_priv" => Privilege::CreateRoutine,
        "alter_routine_priv" => Privilege::AlterRoutine,
        "create_user_priv" => Privilege::CreateUser,
        "event_priv" => Privilege::Event,
        "trigger_priv" => Privilege::Trigger,
        "create_tablespace_priv" => Privilege::CreateTablespace,
        "delete_history_priv" => Privilege::DeleteHistory,
        "create_role_priv" => Privilege::CreateRole,
        "drop_role_priv" => Privilege::DropRole,
        _ => return None,
    };
    Some(Column::Privilege(p))
}

/// What a `*_priv` column of `mysql.user` or `mysql.db` stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// A privilege.
    Privilege(Privilege),
    /// `Grant_priv`.
    GrantOption,
}

/// The privileges of a `SET` column (`tables_priv.Table_priv`, `Column_priv`,
/// `procs_priv.Proc_priv`: `Select,Insert,Grant`) and whether `Grant` is among them.
pub fn decode_set(set: &str) -> (Vec<Privilege>, bool) {
    let mut grantable = false;
    let mut out = Vec::new();
    for name in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name.eq_ignore_ascii_case("grant") {
            grantable = true;
        } else {
            out.push(Privilege::from_keyword(name));
        }
    }
    (out, grantable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_aliases_read_as_the_common_name() {
        for (p, k, _) in STATIC {
            assert_eq!(&Privilege::from_keyword(k), p);
            assert_eq!(p.keyword(), *k);
        }
        assert_eq!(Privilege::from_keyword("Show view"), Privilege::ShowView);
        assert_eq!(Privilege::from_keyword("BINLOG MONITOR"), Privilege::ReplicationClient);
        assert_eq!(Privilege::from_keyword("Delete versioning rows"), Privilege::DeleteHistory);
        assert_eq!(Privilege::from_keyword("backup_admin"), Privilege::Dynamic("BACKUP_ADMIN".into()));
        assert_eq!(Privilege::Dynamic("BACKUP_ADMIN".into()).class(), PrivilegeClass::Admin);
        assert_eq!(Privilege::File.class(), PrivilegeClass::Admin);
        assert_eq!(Privilege::Select.class(), PrivilegeClass::Read);
    }

    #[test]
    fn access_bits_decode_in_order_with_the_grant_option_apart() {
        // SELECT, INSERT, GRANT OPTION, SUPER
        let a = decode_access(1 | 2 | (1 << 10) | (1 << 15));
        assert_eq!(a.privileges, vec![Privilege::Select, Privilege::Insert, Privilege::Super]);
        assert!(a.grantable);
        assert!(a.unknown_bits.is_empty());
        let all = decode_access(u64::MAX);
        assert_eq!(all.privileges.len(), ACCESS_BITS.len() - 1);
        assert!(all.grantable && all.unknown_bits.is_empty());
        // a bit past the table from a newer server is kept, never dropped
        assert_eq!(decode_access(1 << 45).unknown_bits, vec![45]);
    }

    #[test]
    fn set_columns_split_the_grant_option_off() {
        let (p, g) = decode_set("Select,Insert,Grant,Show view");
        assert_eq!(p, vec![Privilege::Select, Privilege::Insert, Privilege::ShowView]);
        assert!(g);
        assert_eq!(decode_set(""), (vec![], false));
        assert_eq!(decode_set("Execute,Alter Routine"), (vec![Privilege::Execute, Privilege::AlterRoutine], false));
    }
}
