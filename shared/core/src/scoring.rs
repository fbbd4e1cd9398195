//! Severity and score of a finding, and the status of a whole report.
//!
//! Severity comes from the privilege class (read < write < ddl < admin) moved
//! by the scope (column < object < schema < database < cluster); the score
//! multiplies weights for kind, class and scope. The weights and thresholds
//! are data ([`ScoringConfig`]) so a YAML file can replace the defaults.

use serde::{Deserialize, Serialize};

use crate::finding::FindingKind;
use crate::model::PrivilegeClass;
use crate::yaml::{FileError, parse_yaml};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Shown, not scored.
    Info,
    /// Worth a look.
    Low,
    /// Should be fixed.
    Medium,
    /// Fix soon.
    High,
    /// Fix now.
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// How far a privilege reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One column.
    Column,
    /// One table, sequence, function, or one role membership.
    Object,
    /// A whole schema (or default privileges in it).
    Schema,
    /// The database.
    Database,
    /// The cluster: role attributes.
    Cluster,
}

/// Weights by finding kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KindWeights {
    /// unauthorized
    #[schemars(range(min = 0))]
    pub unauthorized: f64,
    /// missing
    #[schemars(range(min = 0))]
    pub missing: f64,
    /// orphaned
    #[schemars(range(min = 0))]
    pub orphaned: f64,
    /// excepted (further multiplied by the category's weight_factor)
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub excepted: f64,
    /// expired_exception
    #[schemars(range(min = 0))]
    pub expired_exception: f64,
    /// untagged
    #[schemars(range(min = 0))]
    pub untagged: f64,
    /// exposure (MySQL and MariaDB: anonymous, passwordless or any-host privileged accounts, lent definer rights)
    #[schemars(range(min = 0))]
    pub exposure: f64,
}

impl Default for KindWeights {
    fn default() -> Self {
        Self {
            unauthorized: 1.0,
            missing: 0.5,
            orphaned: 1.0,
            excepted: 1.0,
            expired_exception: 2.0,
            untagged: 1.0,
            exposure: 1.0,
        }
    }
}

/// Weights by privilege class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClassWeights {
    /// read
    #[schemars(range(min = 0))]
    pub read: f64,
    /// write
    #[schemars(range(min = 0))]
    pub write: f64,
    /// ddl
    #[schemars(range(min = 0))]
    pub ddl: f64,
    /// admin
    #[schemars(range(min = 0))]
    pub admin: f64,
}

impl Default for ClassWeights {
    fn default() -> Self {
        Self { read: 1.0, write: 2.0, ddl: 4.0, admin: 8.0 }
    }
}

/// Weights by scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeWeights {
    /// column
    #[schemars(range(min = 0))]
    pub column: f64,
    /// object
    #[schemars(range(min = 0))]
    pub object: f64,
    /// schema
    #[schemars(range(min = 0))]
    pub schema: f64,
    /// database
    #[schemars(range(min = 0))]
    pub database: f64,
    /// cluster
    #[schemars(range(min = 0))]
    pub cluster: f64,
}

impl Default for ScopeWeights {
    fn default() -> Self {
        Self { column: 0.5, object: 1.0, schema: 2.0, database: 3.0, cluster: 4.0 }
    }
}

/// Report status thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Total score at which the status becomes warn.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub warn_score: f64,
    /// Total score at which the status becomes alert.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub alert_score: f64,
    /// Any finding at or above this severity alerts.
    pub alert_severity: Severity,
    /// Cumulative weight of excepted findings at which the status becomes alert:
    /// many small exceptions add up.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub alert_exception_weight: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { warn_score: 1.0, alert_score: 50.0, alert_severity: Severity::Critical, alert_exception_weight: 25.0 }
    }
}

/// Weights and thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// By kind.
    pub kind: KindWeights,
    /// By privilege class.
    pub class: ClassWeights,
    /// By scope.
    pub scope: ScopeWeights,
    /// Multiplier when the grantee may pass the privilege on.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub grant_option_factor: f64,
    /// Multiplier when the grantee is PUBLIC (every role, present and future).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub public_factor: f64,
    /// Weight by how long a finding has been open.
    pub age: AgeWeights,
    /// Status thresholds.
    pub thresholds: Thresholds,
    /// Policy coverage targets of the compliance report.
    pub coverage: CoverageTargets,
}

/// What policy coverage should look like: the share of privileges held that
/// the baseline declares, that exceptions cover, and that are drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CoverageTargets {
    /// At least this percentage declared by the baseline.
    pub baseline_min_percent: f64,
    /// At most this percentage covered by exceptions.
    pub exceptions_max_percent: f64,
    /// At most this percentage drift.
    pub drift_max_percent: f64,
}

impl Default for CoverageTargets {
    fn default() -> Self {
        Self { baseline_min_percent: 90.0, exceptions_max_percent: 10.0, drift_max_percent: 0.0 }
    }
}

/// Drift that stays open weighs more: the factor grows by `per_day` for each
/// day since a finding was first seen, up to `max_factor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AgeWeights {
    /// Added to the factor per day open.
    #[schemars(range(min = 0))]
    pub per_day: f64,
    /// Ceiling of the factor.
    #[schemars(range(min = 1))]
    pub max_factor: f64,
}

impl Default for AgeWeights {
    fn default() -> Self {
        Self { per_day: 0.1, max_factor: 3.0 }
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            kind: KindWeights::default(),
            class: ClassWeights::default(),
            scope: ScopeWeights::default(),
            grant_option_factor: 1.5,
            public_factor: 4.0,
            age: AgeWeights::default(),
            thresholds: Thresholds::default(),
            coverage: CoverageTargets::default(),
        }
    }
}

/// What the scorer needs to know about one finding.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// Kind.
    pub kind: FindingKind,
    /// Privilege class.
    pub class: PrivilegeClass,
    /// Reach.
    pub scope: Scope,
    /// WITH GRANT OPTION / WITH ADMIN OPTION.
    pub grantable: bool,
    /// Held by PUBLIC (every role).
    pub public: bool,
}

impl ScoringConfig {
    /// Reads a scoring YAML file (`--scoring`); every weight must be a finite number
    /// of zero or more, and factors and thresholds above zero.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, FileError> {
        let config: ScoringConfig = parse_yaml(text, file)?;
        let err = |path: &str, message: String| FileError::at(file, path, message);
        let k = &config.kind;
        let c = &config.class;
        let s = &config.scope;
        let weights = [
            ("kind.unauthorized", k.unauthorized),
            ("kind.missing", k.missing),
            ("kind.orphaned", k.orphaned),
            ("kind.expired_exception", k.expired_exception),
            ("kind.untagged", k.untagged),
            ("kind.exposure", k.exposure),
            ("class.read", c.read),
            ("class.write", c.write),
            ("class.ddl", c.ddl),
            ("class.admin", c.admin),
            ("scope.column", s.column),
            ("scope.object", s.object),
            ("scope.schema", s.schema),
            ("scope.database", s.database),
            ("scope.cluster", s.cluster),
        ];
        for (path, w) in weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(err(path, format!("must be a number of zero or more, not {w}")));
            }
        }
        let positive = [
            ("kind.excepted", k.excepted),
            ("grant_option_factor", config.grant_option_factor),
            ("public_factor", config.public_factor),
            ("thresholds.warn_score", config.thresholds.warn_score),
            ("thresholds.alert_score", config.thresholds.alert_score),
            ("thresholds.alert_exception_weight", config.thresholds.alert_exception_weight),
        ];
        for (path, w) in positive {
            if !(w.is_finite() && w > 0.0) {
                return Err(err(path, format!("must be above zero (an exception is never free), not {w}")));
            }
        }
        if !(config.age.per_day.is_finite() && config.age.per_day >= 0.0) {
            return Err(err("age.per_day", format!("must be a number of zero or more, not {}", config.age.per_day)));
        }
        if !(config.age.max_factor.is_finite() && config.age.max_factor >= 1.0) {
            return Err(err("age.max_factor", format!("must be 1 or more, not {}", config.age.max_factor)));
        }
        if config.thresholds.warn_score > config.thresholds.alert_score {
            return Err(err("thresholds.warn_score", "must not be above thresholds.alert_score".into()));
        }
        Ok(config)
    }

    /// The built-in defaults (the same as `infra/scoring.yaml`).
    pub fn standard() -> Self {
        Self::default()
    }

    /// The age factor of a finding open for `open`: 1 when new.
    pub fn age_factor(&self, open: chrono::Duration) -> f64 {
        let days = open.num_seconds().max(0) as f64 / 86_400.0;
        (1.0 + days * self.age.per_day).min(self.age.max_factor).max(1.0)
    }

    /// Severity of a finding.
    pub fn severity(&self, f: Facts) -> Severity {
        if f.kind == FindingKind::Observed {
            return Severity::Info;
        }
        let mut rank: i32 = match f.class {
            PrivilegeClass::Read => 0,
            PrivilegeClass::Write => 1,
            PrivilegeClass::Ddl => 2,
            PrivilegeClass::Admin => 3,
        };
        rank += match f.scope {
            Scope::Column => -1,
            Scope::Object | Scope::Schema => 0,
            Scope::Database | Scope::Cluster => 1,
        };
        if f.grantable {
            rank += 1;
        }
        if f.public {
            // every role, present and future, holds it
            rank = rank.max(2);
        }
        match f.kind {
            FindingKind::Missing => rank -= 1,
            FindingKind::ExpiredException | FindingKind::Untagged => rank = rank.max(2),
            _ => {}
        }
        match rank {
            i32::MIN..=0 => Severity::Low,
            1 => Severity::Medium,
            2 => Severity::High,
            _ => Severity::Critical,
        }
    }

    /// Score of a finding; 0 only for observations.
    pub fn score(&self, f: Facts) -> f64 {
        let kind = match f.kind {
            FindingKind::Unauthorized => self.kind.unauthorized,
            FindingKind::Missing => self.kind.missing,
            FindingKind::Orphaned => self.kind.orphaned,
            FindingKind::Excepted => self.kind.excepted,
            FindingKind::ExpiredException => self.kind.expired_exception,
            FindingKind::Untagged => self.kind.untagged,
            FindingKind::Exposure => self.kind.exposure,
            FindingKind::Observed => return 0.0,
        };
        let class = match f.class {
            PrivilegeClass::Read => self.class.read,
            PrivilegeClass::Write => self.class.write,
            PrivilegeClass::Ddl => self.class.ddl,
            PrivilegeClass::Admin => self.class.admin,
        };
        let scope = match f.scope {
            Scope::Column => self.scope.column,
            Scope::Object => self.scope.object,
            Scope::Schema => self.scope.schema,
            Scope::Database => self.scope.database,
            Scope::Cluster => self.scope.cluster,
        };
        let option = if f.grantable && self.grant_option_factor > 0.0 { self.grant_option_factor } else { 1.0 };
        let public = if f.public && self.public_factor > 0.0 { self.public_factor } else { 1.0 };
        round2(kind * class * scope * option * public)
    }
}

/// Rounds to two decimals so scores print and compare stably.
pub fn round2(x: f64) -> f64 {
    // + 0.0 turns the -0.0 of an empty f64 sum into 0
    (x * 100.0).round() / 100.0 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: FindingKind, class: PrivilegeClass, scope: Scope) -> Facts {
        Facts { kind, class, scope, grantable: false, public: false }
    }

    #[test]
    fn severity_rises_with_class_and_scope() {
        let s = ScoringConfig::standard();
        let u = FindingKind::Unauthorized;
        assert_eq!(s.severity(facts(u, PrivilegeClass::Read, Scope::Column)), Severity::Low);
        assert_eq!(s.severity(facts(u, PrivilegeClass::Read, Scope::Object)), Severity::Low);
        assert_eq!(s.severity(facts(u, PrivilegeClass::Write, Scope::Object)), Severity::Medium);
        assert_eq!(s.severity(facts(u, PrivilegeClass::Ddl, Scope::Schema)), Severity::High);
        assert_eq!(s.severity(facts(u, PrivilegeClass::Admin, Scope::Cluster)), Severity::Critical);
        let mut public = facts(u, PrivilegeClass::Read, Scope::Object);
        public.public = true;
        assert_eq!(s.severity(public), Severity::High);
        let mut grantable = facts(u, PrivilegeClass::Write, Scope::Object);
        grantable.grantable = true;
        assert_eq!(s.severity(grantable), Severity::High);
        assert_eq!(s.severity(facts(FindingKind::Missing, PrivilegeClass::Write, Scope::Object)), Severity::Low);
    }

    #[test]
    fn the_shipped_scoring_file_is_the_standard_config() {
        let text = include_str!("../../../infra/scoring.yaml");
        assert_eq!(ScoringConfig::from_yaml(text, "scoring.yaml").unwrap(), ScoringConfig::standard());
        let partial = ScoringConfig::from_yaml("class: { admin: 10 }\n", "s.yaml").unwrap();
        assert_eq!(
            (partial.class.admin, partial.public_factor, partial.class.read),
            (10.0, 4.0, 1.0),
            "omitted keys keep their defaults"
        );
    }

    #[test]
    fn scoring_errors_name_file_and_path() {
        let cases = [
            ("kind: { unauthorized: -1 }\n", "s.yaml: kind.unauthorized: must be a number of zero or more"),
            ("kind: { excepted: 0 }\n", "s.yaml: kind.excepted: must be above zero"),
            ("public_factor: 0\n", "s.yaml: public_factor: must be above zero"),
            ("class: { reed: 1 }\n", "s.yaml: class.reed: unknown field `reed`"),
            ("thresholds: { warn_score: 90, alert_score: 50 }\n", "s.yaml: thresholds.warn_score: must not be above"),
            ("thresholds: { alert_severity: severe }\n", "s.yaml: thresholds.alert_severity: unknown variant"),
        ];
        for (yaml, want) in cases {
            let got = ScoringConfig::from_yaml(yaml, "s.yaml").unwrap_err().to_string();
            assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn age_weighs_old_drift_up_to_a_ceiling() {
        let s = ScoringConfig::standard();
        assert_eq!(s.age_factor(chrono::Duration::zero()), 1.0);
        assert_eq!(round2(s.age_factor(chrono::Duration::days(5))), 1.5);
        assert_eq!(s.age_factor(chrono::Duration::days(365)), 3.0);
        assert_eq!(s.age_factor(chrono::Duration::days(-2)), 1.0, "clock skew never lowers a score");
    }

    #[test]
    fn score_multiplies_weights_and_observations_score_zero() {
        let s = ScoringConfig::standard();
        assert_eq!(s.score(facts(FindingKind::Orphaned, PrivilegeClass::Admin, Scope::Cluster)), 32.0);
        assert_eq!(s.score(facts(FindingKind::Missing, PrivilegeClass::Read, Scope::Column)), 0.25);
        assert_eq!(s.score(facts(FindingKind::Observed, PrivilegeClass::Admin, Scope::Cluster)), 0.0);
        let mut public = facts(FindingKind::Unauthorized, PrivilegeClass::Read, Scope::Object);
        public.public = true;
        assert_eq!(s.score(public), 4.0, "PUBLIC is every role");
        assert_eq!(round2(std::iter::empty::<f64>().sum()).to_string(), "0", "no -0 in reports");
    }
}
