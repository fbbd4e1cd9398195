//! The wiring of infra/template.yaml, checked against the code: every
//! function crate is deployed and every deployed function is a crate, queues
//! have dead-letter queues and alarms, stream consumers bisect and give up
//! into a destination, the audit bucket is locked, tables have streams (and
//! TTL only where items may vanish), roles allow no wildcard action, every
//! environment variable set is one the code reads, and incident webhooks are
//! checked with their tool's own secret.
//!
//! cfn-lint (scripts/cfn-lint, run by scripts/test) checks the template
//! against CloudFormation and SAM; this checks it against grantwarden.
//!
//! The YAML is read without CloudFormation's tags: `!Ref X` reads as "X",
//! `!GetAtt X.Arn` as "X.Arn", and `!If`/`!FindInMap`/`!Sub` as their
//! argument, which is enough to follow references by logical id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().expect("Resources is a mapping")
}

fn of_type<'a>(t: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    resources(t).iter().filter(|(_, r)| r["Type"] == kind).map(|(id, r)| (id.as_str(), r)).collect()
}

/// The logical id a tag-stripped `!Ref X` / `!GetAtt X.Attr` names.
fn logical_id(v: &Value) -> Option<&str> {
    v.as_str().map(|s| s.split('.').next().unwrap_or(s))
}

/// Every string anywhere under `v`.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

/// Function crates: directory name -> the binary their Cargo.toml declares.
fn function_crates() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/ is readable") {
        let dir = entry.expect("a directory entry").path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        // the [[bin]] name, else the package name (cargo's default binary)
        let name_after = |section: &str| {
            let start = manifest.find(section)?;
            manifest[start..].lines().find_map(|l| {
                let rest = l.trim().strip_prefix("name")?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_owned())
            })
        };
        let bin = name_after("[[bin]]").or_else(|| name_after("[package]")).expect("a package name");
        out.insert(dir.file_name().expect("a name").to_string_lossy().into_owned(), bin);
    }
    out
}

#[test]
fn every_function_crate_is_deployed_and_every_deployed_function_is_a_crate() {
    let t = template();
    let crates = function_crates();
    assert!(crates.len() >= 4, "functions/ holds the Lambda crates: {crates:?}");
    let mut deployed = BTreeMap::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let code = f["Properties"]["CodeUri"].as_str().unwrap_or_else(|| panic!("{id}: CodeUri"));
        let dir = code
            .strip_prefix("../functions/")
            .unwrap_or_else(|| panic!("{id}: CodeUri {code} is not a function crate"));
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}: built with cargo-lambda");
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_else(|| panic!("{id}: Binary"));
        assert_eq!(crates.get(dir).map(String::as_str), Some(binary), "{id}: {code} builds binary {binary}");
        assert!(deployed.insert(dir.to_owned(), id).is_none(), "functions/{dir} is deployed twice");
    }
    let missing: Vec<_> = crates.keys().filter(|c| !deployed.contains_key(*c)).collect();
    assert!(missing.is_empty(), "function crates without a resource in infra/template.yaml: {missing:?}");

    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(logical_id(&globals["Architectures"][0]), Some("Architecture"));
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
}

#[test]
fn each_function_has_its_own_role_and_an_errors_alarm() {
    let t = template();
    let roles = of_type(&t, "AWS::IAM::Role");
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let mut used_roles = BTreeSet::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let props = &f["Properties"];
        let role =
            logical_id(&props["Role"]).unwrap_or_else(|| panic!("{id}: Role from the template, not SAM's default"));
        assert!(roles.contains_key(role), "{id}: role {role} is defined here");
        assert!(used_roles.insert(role), "{id}: role {role} is shared with another function");
        assert!(props.get("Policies").is_none(), "{id}: permissions belong on its role, not in SAM policy templates");
        let log_group = logical_id(&props["LoggingConfig"]["LogGroup"]).unwrap_or_else(|| panic!("{id}: LogGroup"));
        assert!(resources(&t).contains_key(log_group), "{id}: log group {log_group} is defined here");
        let alarmed = alarms.values().any(|a| {
            let p = &a["Properties"];
            p["Namespace"] == "AWS/Lambda"
                && p["MetricName"] == "Errors"
                && as_list(&p["Dimensions"]).iter().any(|d| logical_id(&d["Value"]) == Some(id))
        });
        assert!(alarmed, "{id}: an alarm on its Errors metric");
    }
}

#[test]
fn no_role_allows_a_wildcard_action_or_resource() {
    let t = template();
    let roles = of_type(&t, "AWS::IAM::Role");
    assert!(!roles.is_empty());
    for (id, role) in roles {
        for policy in as_list(&role["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                let sid = statement["Sid"].as_str().unwrap_or("?");
                assert_eq!(statement["Effect"], "Allow", "{id}/{sid}: roles only allow");
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().unwrap_or_else(|| panic!("{id}/{sid}: action {action}"));
                    assert!(!action.contains('*'), "{id}/{sid}: wildcard action {action}");
                }
                for resource in as_list(&statement["Resource"]) {
                    assert_ne!(resource.as_str(), Some("*"), "{id}/{sid}: every resource is named");
                }
            }
        }
    }
}

#[test]
fn the_extract_role_cannot_write_config_reports_or_tickets() {
    let t = template();
    let role = &resources(&t)["ExtractRole"];
    let mut granted = BTreeSet::new();
    for policy in as_list(&role["Properties"]["Policies"]) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            for action in as_list(&statement["Action"]) {
                for resource in as_list(&statement["Resource"]) {
                    granted.insert((action.as_str().unwrap_or("").to_owned(), strings(resource).join(" ")));
                }
            }
        }
    }
    for policy in as_list(&role["Properties"]["Policies"]) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            if as_list(&statement["Action"]).iter().any(|a| a.as_str() == Some("dynamodb:PutItem")) {
                let keys = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                assert_eq!(keys, &serde_json::json!(["*/batch/*"]), "extract puts chunk markers only, never a record");
            }
        }
    }
    for (action, resource) in &granted {
        if action.starts_with("dynamodb:") {
            assert!(resource.starts_with("ScansTable"), "extract touches only scan records, not {resource}");
        }
        if action == "s3:PutObject" {
            assert!(resource.ends_with("/snapshots/*"), "extract writes only snapshot batches, not {resource}");
        }
    }
}

#[test]
fn every_queue_has_a_dead_letter_queue_and_every_dead_letter_queue_an_alarm() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let text = serde_json::to_string(&t["Resources"]).expect("json");

    // where failures go: redrive targets and on-failure destinations
    let mut dead_letter = BTreeSet::new();
    for (id, q) in &queues {
        if let Some(target) = q["Properties"]["RedrivePolicy"].get("deadLetterTargetArn") {
            let dlq = logical_id(target).expect("a queue reference");
            assert!(queues.contains_key(dlq), "{id}: redrives to {dlq}, a queue of this stack");
            dead_letter.insert(dlq);
        }
    }
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let props = &f["Properties"];
        let mut destinations = vec![&props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]];
        for event in props["Events"].as_object().into_iter().flat_map(|e| e.values()) {
            destinations.push(&event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]);
        }
        for d in destinations.into_iter().filter(|d| !d.is_null()) {
            let q = logical_id(d).unwrap_or_else(|| panic!("{id}: destination {d}"));
            assert!(queues.contains_key(q), "{id}: on-failure destination {q} is a queue of this stack");
            dead_letter.insert(q);
        }
    }
    for id in queues.keys() {
        if dead_letter.contains(id) {
            assert!(
                alarms.values().any(|a| {
                    let p = &a["Properties"];
                    p["Namespace"] == "AWS/SQS"
                        && as_list(&p["Dimensions"]).iter().any(|d| logical_id(&d["Value"]) == Some(id))
                }),
                "dead-letter queue {id} has a depth alarm"
            );
            assert_eq!(queues[id]["Properties"]["MessageRetentionPeriod"], 1209600, "{id} keeps messages 14 days");
        } else {
            assert!(
                queues[id]["Properties"].get("RedrivePolicy").is_some(),
                "queue {id} has a dead-letter queue (RedrivePolicy)"
            );
            assert!(text.contains(&format!("\"{id}.Arn\"")), "queue {id} is used");
        }
    }
}

#[test]
fn queue_and_stream_consumers_report_partial_failures_and_give_up_somewhere() {
    let t = template();
    let mut sqs = 0;
    let mut streams = 0;
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        for (name, event) in f["Properties"]["Events"].as_object().into_iter().flat_map(|e| e.iter()) {
            let p = &event["Properties"];
            match event["Type"].as_str() {
                Some("SQS") => {
                    sqs += 1;
                    assert!(
                        as_list(&p["FunctionResponseTypes"]).contains(&&Value::from("ReportBatchItemFailures")),
                        "{id}/{name}: ReportBatchItemFailures, so one bad message does not fail its batch"
                    );
                }
                Some("DynamoDB") => {
                    streams += 1;
                    assert_eq!(p["BisectBatchOnFunctionError"], true, "{id}/{name}: bisect on error");
                    assert!(p["MaximumRetryAttempts"].as_u64().is_some(), "{id}/{name}: a retry limit");
                    assert!(!p["DestinationConfig"]["OnFailure"]["Destination"].is_null(), "{id}/{name}: on-failure");
                }
                _ => {}
            }
        }
    }
    assert!(sqs >= 1 && streams >= 1, "extract reads SQS, diff reads a stream");
    // the chunk queue gives up one receive after extract does, so extract records the failure first
    let redrive = &t["Mappings"]["ChunkRedrive"];
    for (receives, counts) in redrive.as_object().expect("ChunkRedrive mapping") {
        let receives: u64 = receives.parse().expect("a number");
        assert_eq!(counts["ReceiveCount"].as_u64(), Some(receives + 1));
    }
    let allowed = as_list(&t["Parameters"]["ChunkMaxReceives"]["AllowedValues"]);
    assert!(allowed.iter().all(|v| redrive.get(v.as_str().unwrap_or("")).is_some()), "a redrive count per choice");
}

#[test]
fn the_audit_bucket_is_locked_and_both_buckets_are_private_and_encrypted() {
    let t = template();
    let audit = &resources(&t)["AuditBucket"]["Properties"];
    assert_eq!(audit["ObjectLockEnabled"], true);
    assert_eq!(audit["ObjectLockConfiguration"]["ObjectLockEnabled"], "Enabled");
    let retention = &audit["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(logical_id(&retention["Mode"]), Some("AuditRetentionMode"));
    assert_eq!(logical_id(&retention["Days"]), Some("AuditRetentionDays"));
    assert_eq!(t["Parameters"]["AuditRetentionMode"]["Default"], "COMPLIANCE");
    assert_eq!(t["Parameters"]["AuditRetentionDays"]["Default"], 2555);
    assert_eq!(audit["VersioningConfiguration"]["Status"], "Enabled");
    for (id, bucket) in of_type(&t, "AWS::S3::Bucket") {
        let p = &bucket["Properties"];
        let block = &p["PublicAccessBlockConfiguration"];
        for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
            assert_eq!(block[flag], true, "{id}: {flag}");
        }
        assert!(!p["BucketEncryption"].is_null(), "{id}: encrypted at rest");
        assert_eq!(bucket["DeletionPolicy"], "Retain", "{id}: kept when the stack goes");
    }
    let data = &resources(&t)["DataBucket"]["Properties"];
    let rules = as_list(&data["LifecycleConfiguration"]["Rules"]);
    assert!(rules.iter().any(|r| r["Prefix"] == "snapshots/" && !r["ExpirationInDays"].is_null()));
}

#[test]
fn tables_have_streams_and_only_working_state_expires() {
    use grantwarden_aws::tickets::{ACTIVE_INDEX, BY_TARGET_INDEX, OUTBOX_INDEX};
    let t = template();
    let tables = of_type(&t, "AWS::DynamoDB::Table");
    // evidence outlives everything: no TTL, kept when the stack goes
    let evidence = ["TicketsTable", "FindingsTable", "JournalTable", "IncidentsTable"];
    // working state that may vanish once done, with the TTL attribute the code writes
    let expiring = [
        ("ScansTable", grantwarden_aws::scans::EXPIRE_AT),
        ("LeasesTable", grantwarden_aws::leases::TTL_ATTRIBUTE),
        ("ReplayTable", grantwarden_aws::replay::TTL_ATTRIBUTE),
    ];
    // working state whose changes nobody reads
    let streamless = ["ReplayTable"];
    for id in evidence.iter().chain(expiring.iter().map(|(id, _)| id)) {
        assert!(tables.contains_key(id), "{id} is defined");
    }
    for (id, table) in &tables {
        let p = &table["Properties"];
        if streamless.contains(id) {
            assert!(p["StreamSpecification"].is_null(), "{id}: no stream, nothing reads it");
        } else {
            assert_eq!(p["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES", "{id}: stream");
        }
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{id}");
        let ttl = &p["TimeToLiveSpecification"];
        if let Some((_, attribute)) = expiring.iter().find(|(e, _)| e == id) {
            assert_eq!(ttl["Enabled"], true, "{id}: TTL");
            assert_eq!(ttl["AttributeName"], *attribute, "{id}: the attribute the code writes");
        } else {
            assert!(evidence.contains(id), "{id}: say whether it is evidence or working state");
            assert!(ttl.is_null(), "{id}: evidence never expires");
            assert_eq!(table["DeletionPolicy"], "Retain", "{id}: kept when the stack goes");
            assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true, "{id}");
        }
    }
    let indexes: BTreeSet<&str> = as_list(&tables["TicketsTable"]["Properties"]["GlobalSecondaryIndexes"])
        .iter()
        .filter_map(|i| i["IndexName"].as_str())
        .collect();
    assert_eq!(indexes, BTreeSet::from([BY_TARGET_INDEX, ACTIVE_INDEX, OUTBOX_INDEX]), "the indexes the store queries");
}

/// `GRANTWARDEN_*` names mentioned in the settings and each function's main.rs, by file.
fn variables_read() -> Vec<(PathBuf, BTreeSet<String>)> {
    let mut sources = vec![root().join("shared/aws/src/settings.rs")];
    for dir in function_crates().keys() {
        sources.push(root().join("functions").join(dir).join("src/main.rs"));
    }
    sources
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let names = text
                .match_indices("GRANTWARDEN_")
                .map(|(i, _)| {
                    text[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect()
                })
                // not `GRANTWARDEN_*` in prose
                .filter(|name: &String| !name.ends_with('_'))
                .collect();
            (path, names)
        })
        .collect()
}

#[test]
fn every_environment_variable_set_is_one_the_code_reads() {
    let t = template();
    let mut read: BTreeSet<String> = variables_read().into_iter().flat_map(|(_, names)| names).collect();
    read.insert("RUST_LOG".to_owned());
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let vars = f["Properties"]["Environment"]["Variables"].as_object().expect("Variables");
        for name in vars.keys() {
            assert!(read.contains(name), "{id}: {name} is set but no code reads it");
        }
    }
    // every function needs its queue URLs and tables set, never the defaults
    let env = |id: &str| resources(&t)[id]["Properties"]["Environment"]["Variables"].clone();
    assert!(env("ExtractFunction").get("GRANTWARDEN_CHUNK_DLQ_URL").is_some());
    assert!(env("FanoutFunction").get("GRANTWARDEN_CHUNK_QUEUE_URL").is_some());
    assert!(env("DiffFunction").get("GRANTWARDEN_ALERT_TOPIC_ARN").is_some());
}

#[test]
fn the_readme_documents_every_environment_variable_the_functions_read() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    for (path, names) in variables_read() {
        for name in names {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{}: {name} has a row in README.md's table",
                path.display()
            );
        }
    }
}

#[test]
fn intake_checks_incident_webhooks_with_each_tools_own_secret_and_serves_each_request_once() {
    let t = template();
    let intake = &resources(&t)["IntakeFunction"]["Properties"];
    let env = intake["Environment"]["Variables"].as_object().expect("Variables");
    let secret_of = |name: &str| logical_id(&env[name]).unwrap_or_else(|| panic!("{name} is set")).to_owned();
    let (webhook, pagerduty, opsgenie) = (
        secret_of("GRANTWARDEN_WEBHOOK_SECRET_ID"),
        secret_of("GRANTWARDEN_PAGERDUTY_SECRET_ID"),
        secret_of("GRANTWARDEN_OPSGENIE_SECRET_ID"),
    );
    let secrets = of_type(&t, "AWS::SecretsManager::Secret");
    for id in [&webhook, &pagerduty, &opsgenie] {
        assert!(secrets.contains_key(id.as_str()), "{id} is a secret of the stack");
    }
    assert!(webhook != pagerduty && webhook != opsgenie && pagerduty != opsgenie, "three secrets, not one");
    assert_eq!(logical_id(&env["GRANTWARDEN_REPLAY_TABLE"]), Some("ReplayTable"));
    assert_eq!(logical_id(&env["GRANTWARDEN_WEBHOOK_LEGACY_V1"]), Some("WebhookLegacyV1"));
    assert_eq!(t["Parameters"]["WebhookLegacyV1"]["Default"], "false", "v1 is refused unless asked for");

    // the role reads exactly those secrets and writes replay records
    let role = logical_id(&intake["Role"]).expect("a role");
    let statements: Vec<&Value> = as_list(&resources(&t)[role]["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
        .collect();
    let resources_of = |action: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|s| as_list(&s["Action"]).iter().any(|a| a.as_str() == Some(action)))
            .flat_map(|s| as_list(&s["Resource"]))
            .filter_map(|r| logical_id(r).map(str::to_owned))
            .collect()
    };
    // and the registry senders' keys, under their one prefix
    let senders = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:grantwarden/senders/*";
    assert_eq!(
        resources_of("secretsmanager:GetSecretValue"),
        BTreeSet::from([webhook, pagerduty, opsgenie, senders.to_owned()])
    );
    for action in ["dynamodb:PutItem", "dynamodb:DeleteItem"] {
        assert!(resources_of(action).contains("ReplayTable"), "{action} on the replay table");
    }
    assert!(!resources_of("dynamodb:DeleteItem").iter().any(|r| r != "ReplayTable"), "deletes nothing else");

    // one route per incident tool, none that the webhook key alone could use
    let paths: BTreeSet<&str> = api_routes(&t)
        .into_iter()
        .filter_map(|key| key.split_once(' ').map(|(_, path)| path))
        .filter(|p| p.starts_with("/webhooks/incidents"))
        .collect();
    assert_eq!(paths, BTreeSet::from(["/webhooks/incidents/opsgenie", "/webhooks/incidents/pagerduty"]));
}

/// The route keys of the intake API ("POST /webhooks/grants", ...).
fn api_routes(t: &Value) -> BTreeSet<&str> {
    of_type(t, "AWS::ApiGatewayV2::Route")
        .values()
        .filter(|r| logical_id(&r["Properties"]["ApiId"]) == Some("IntakeApi"))
        .filter_map(|r| r["Properties"]["RouteKey"].as_str())
        .collect()
}

#[test]
fn the_intake_api_routes_every_path_intake_serves_to_intake_and_nothing_else() {
    let t = template();
    let routes = api_routes(&t);
    let served = BTreeSet::from([
        "POST /webhooks/grants",
        "POST /requests",
        "POST /requests/{id}/approvals",
        "GET /tickets/{id}",
        "POST /tickets/{id}/revoke",
        "POST /tickets/{id}/renew",
        "POST /webhooks/incidents/pagerduty",
        "POST /webhooks/incidents/opsgenie",
    ]);
    assert_eq!(routes, served, "no $default catch-all, no route intake does not serve");
    for (id, route) in of_type(&t, "AWS::ApiGatewayV2::Route") {
        let target = &route["Properties"]["Target"];
        assert!(target.to_string().contains("IntakeIntegration"), "{id} reaches the intake integration: {target}");
    }
    let integration = &resources(&t)["IntakeIntegration"]["Properties"];
    assert_eq!(integration["IntegrationType"], "AWS_PROXY");
    assert_eq!(integration["PayloadFormatVersion"], "2.0", "intake reads payload format 2.0");
    assert_eq!(strings(&integration["IntegrationUri"]), ["IntakeFunction.Arn"]);
    let permission = &resources(&t)["IntakeApiInvokes"]["Properties"];
    assert_eq!(permission["Principal"], "apigateway.amazonaws.com");
    assert!(permission["SourceArn"].to_string().contains("${IntakeApi}/*"), "only this API may invoke intake");
    let stage = &resources(&t)["IntakeStage"]["Properties"];
    assert_eq!((stage["StageName"].as_str(), stage["AutoDeploy"].as_bool()), (Some("$default"), Some(true)));
    assert!(stage["DefaultRouteSettings"]["ThrottlingRateLimit"].is_number(), "a throttle bounds an unsigned flood");
}

/// Every (action, resource) a role's inline policies allow, the resource as its tag-stripped text.
fn granted(t: &Value, role: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for policy in as_list(&resources(t)[role]["Properties"]["Policies"]) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            for action in as_list(&statement["Action"]) {
                for resource in as_list(&statement["Resource"]) {
                    out.insert((action.as_str().unwrap_or("").to_owned(), strings(resource).join(" ")));
                }
            }
        }
    }
    out
}

#[test]
fn the_audit_role_reads_every_archive_version_and_alerts_but_cannot_write_the_journal() {
    let t = template();
    let granted = granted(&t, "AuditRole");
    let has = |action: &str, resource: &str| granted.contains(&(action.to_owned(), resource.to_owned()));
    // the digest signs the first version of each archived event, read past delete markers
    assert!(has("s3:ListBucketVersions", "AuditBucket.Arn"), "{granted:?}");
    assert!(has("s3:GetObjectVersion", "${AuditBucket.Arn}/audit/*"), "{granted:?}");
    assert!(has("dynamodb:Query", "JournalTable.Arn"), "the digest compares the archive with the journal");
    // a refused digest is a tamper alert on the topic the function is told about
    assert!(has("sns:Publish", "AlertTopic"), "{granted:?}");
    let env = &resources(&t)["AuditFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(logical_id(&env["GRANTWARDEN_ALERT_TOPIC_ARN"]), Some("AlertTopic"));
    // the journal's writers are the functions under suspicion; the one that signs is not one of them
    for (action, resource) in &granted {
        if resource.contains("JournalTable") && action.starts_with("dynamodb:") {
            assert!(
                !["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"].iter().any(|w| action.ends_with(w)),
                "the audit role writes the journal: {action} on {resource}"
            );
        }
    }
}

#[test]
fn the_revoke_role_creates_tags_reads_back_and_deletes_only_the_access_secrets() {
    let t = template();
    let env = &resources(&t)["RevokeFunction"]["Properties"]["Environment"]["Variables"];
    let prefix = env["GRANTWARDEN_ACCESS_SECRET_PREFIX"].as_str().expect("the access secret prefix is set");
    let access =
        format!("arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{prefix}*");
    let granted = granted(&t, "RevokeRole");
    // create with the grantwarden tags, check them on a retry, read the password
    // already delivered back, and delete at revocation
    for action in [
        "secretsmanager:CreateSecret",
        "secretsmanager:TagResource",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DeleteSecret",
    ] {
        assert!(
            granted.contains(&(action.to_owned(), access.clone())),
            "RevokeRole: {action} on {access}: {granted:?}"
        );
    }
    for (action, resource) in &granted {
        if ["CreateSecret", "TagResource", "DeleteSecret"].iter().any(|a| action.ends_with(a)) {
            assert_eq!(resource, &access, "RevokeRole: {action} reaches only the access secrets");
        }
    }
}

#[test]
fn the_queries_function_is_subscribed_only_to_a_given_log_group_and_writes_only_query_objects() {
    let t = template();
    let r = resources(&t);
    // no log group, no subscription nor permission for CloudWatch Logs
    assert_eq!(t["Parameters"]["DatabaseLogGroup"]["Default"], "");
    for id in ["QueriesSubscription", "QueriesLogsInvoke"] {
        assert_eq!(r[id]["Condition"], "HasDatabaseLogGroup", "{id} exists only with a log group");
    }
    assert_eq!(logical_id(&r["QueriesSubscription"]["Properties"]["DestinationArn"]), Some("QueriesFunction"));
    let permission = &r["QueriesLogsInvoke"]["Properties"];
    assert_eq!(permission["Principal"], "logs.amazonaws.com");
    assert!(strings(&permission["SourceArn"]).iter().any(|s| s.contains("${DatabaseLogGroup}")), "{permission}");
    let env = &r["QueriesFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(logical_id(&env["GRANTWARDEN_QUERY_TARGETS"]), Some("QueryTargets"));
    assert_eq!(logical_id(&env["GRANTWARDEN_ALERT_TOPIC_ARN"]), Some("AlertTopic"));

    let granted = granted(&t, "QueriesRole");
    let has = |action: &str, resource: &str| granted.contains(&(action.to_owned(), resource.to_owned()));
    assert!(has("s3:PutObject", "${DataBucket.Arn}/queries/*"), "{granted:?}");
    assert!(has("s3:GetObject", "${DataBucket.Arn}/config/*"), "the registry");
    assert!(has("sns:Publish", "AlertTopic"), "query alerts");
    for (action, resource) in &granted {
        if action == "s3:PutObject" {
            assert!(resource.ends_with("/queries/*"), "the queries role writes {resource}");
        }
    }

    // Athena reads what the function writes: JSON lines partitioned by target and day
    let table = &r["QueryEventsTable"]["Properties"]["TableInput"];
    let storage = &table["StorageDescriptor"];
    assert_eq!(storage["SerdeInfo"]["SerializationLibrary"], "org.openx.data.jsonserde.JsonSerDe");
    assert!(strings(&storage["Location"]).iter().any(|s| s.ends_with("/queries/events/")), "{storage}");
    let keys: Vec<_> = as_list(&table["PartitionKeys"]).iter().map(|k| k["Name"].as_str().unwrap_or("")).collect();
    assert_eq!(keys, ["target", "dt"]);
    assert_eq!(table["Parameters"]["projection.target.type"], "injected");
    assert_eq!(table["Parameters"]["projection.dt.type"], "date");
    let template = strings(&table["Parameters"]["storage.location.template"]).join(" ");
    assert!(template.contains("queries/events/target=${!target}/dt=${!dt}/"), "{template}");
}
