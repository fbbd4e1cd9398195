//! `grantwarden audit`: verify the hash-chained journal (local store, a
//! directory in the archive's layout, or the S3 archive), sign digests,
//! write an archive directory, and export one person's or resource's trail.
//! Wiring only: hashing, digests, the comparison of journal and archive and
//! their checks live in core; an archive directory is read here
//! ([`DirArchive`]), as grantwarden-aws reads the bucket.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use grantwarden_aws::archive::{self, Archive, Retention};
use grantwarden_aws::{Clients, DynamoStore, SecretCache, Settings};
use grantwarden_core::audit::{
    Anomaly, ArchivedChain, AuditArchive, AuditEvent, AuditJournal, JournalAsArchive, compare_with_archive,
};
use grantwarden_core::digest::{ChainReport, Digest, DigestKey, DigestRun, DigestStore, check_chain, digest_chains};
use grantwarden_core::error::StoreError;
use grantwarden_local::LocalStore;

use crate::exceptions::StateArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash, check seq continuity, the head, the archive and
    /// the signed digests; report the first broken link of each chain
    /// (exit 0 intact, 2 broken, 1 error).
    Verify(VerifyArgs),
    /// Sign the next digest of every chain with newly archived events (run it
    /// hourly from cron, after `audit archive`); exit 2 when the journal and the
    /// archive disagree (a tamper signal, also journaled).
    Digest {
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The archive directory `audit archive --dir` writes: digests sign what it
        /// holds and the journal still holds the same. Without one the journal is
        /// signed as it stands, edits included (a warning says so).
        #[arg(long, env = "GRANTWARDEN_AUDIT_ARCHIVE")]
        archive: Option<PathBuf>,
    },
    /// Write the local journal and its digests as a directory in the S3 archive's
    /// layout. Write-once: a file already there is left alone, and one that holds
    /// another event or digest is refused (exit 2), not overwritten.
    Archive {
        #[command(flatten)]
        state: StateArgs,
        /// The directory (created when missing).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the audit trail of one person or resource: every event it caused or concerns.
    Export(ExportArgs),
}

/// Where the journal is read from.
#[derive(Args)]
pub struct SourceArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Read an archive directory (`audit/<chain>/<seq>.json`, `audit-digests/...`,
    /// as `aws s3 sync s3://BUCKET/ DIR` or `grantwarden audit archive` writes it).
    #[arg(long, conflicts_with = "bucket")]
    dir: Option<PathBuf>,
    /// Read the S3 archive in this bucket (AWS_* environment as usual; every object version is listed).
    #[arg(long)]
    bucket: Option<String>,
    /// With --bucket: also compare the archive with this DynamoDB journal table.
    #[arg(long, requires = "bucket")]
    journal_table: Option<String>,
    /// With --dir: also compare the archive with the journal of this local state store.
    #[arg(long, requires = "dir")]
    journal_state: Option<PathBuf>,
    /// Only this chain.
    #[arg(long)]
    chain: Option<String>,
}

/// The digest signing key.
#[derive(Args)]
pub struct KeyArgs {
    /// Ed25519 private key, PKCS#8 PEM (`grantwarden audit digest` creates it when missing).
    #[arg(long, env = "GRANTWARDEN_AUDIT_KEY", default_value = ".grantwarden/audit-signing.pem")]
    key: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Trust digests signed by this key fingerprint (sha256 of the public key, hex). Repeatable.
    #[arg(long)]
    key_fingerprint: Vec<String>,
    /// With --bucket: trust the key held by this Secrets Manager secret.
    #[arg(long, requires = "bucket")]
    signing_secret: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The person or resource: an actor, subject, target, or any value in an event's detail
    /// (principal, role, grantee).
    #[arg(long)]
    user: String,
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    to: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// One chain as read from a source.
struct ChainData {
    chain: String,
    events: Vec<AuditEvent>,
    head: Option<(u64, String)>,
    anomalies: Vec<Anomaly>,
    digests: Vec<Digest>,
    /// The journal's events, when the source is an archive compared with one.
    journal: Option<Vec<AuditEvent>>,
}

pub async fn run(command: AuditCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Digest { state, key, archive } => {
            let store = state.open()?;
            let key = load_or_create_key(&key.key)?;
            let mut chains = store.chains().await?;
            let run: DigestRun = match &archive {
                Some(dir) => {
                    let archive = DirArchive::open(dir)?;
                    // a chain gone from the journal but archived is a disagreement too
                    chains.extend(archive.chains()?);
                    chains.sort();
                    chains.dedup();
                    digest_chains(&store, &archive, &store, &chains, &key, now).await?
                }
                None => {
                    eprintln!(
                        "warning: no audit archive (--archive DIR, GRANTWARDEN_AUDIT_ARCHIVE): the digest signs the \
                         journal as it stands, so an edit made before it, hashes and head recomputed, is signed too; \
                         write the archive with `grantwarden audit archive --dir DIR` onto write-once storage and \
                         pass it here"
                    );
                    digest_chains(&store, &JournalAsArchive(&store), &store, &chains, &key, now).await?
                }
            };
            for d in &run.made {
                println!(
                    "{}: digest {} signed, seq {}..={} ({} events)",
                    d.chain,
                    d.number,
                    d.first_seq,
                    d.last_seq,
                    d.events.len()
                );
            }
            if run.made.is_empty() && run.refused.is_empty() {
                println!("no chain has new events since its last digest");
            }
            println!("key fingerprint {}", key.fingerprint());
            for refusal in &run.refused {
                eprintln!("error: digest refused (tamper signal): {refusal}");
                // the local equivalent of the audit function's alert
                store.append(refusal.event(now)).await?;
            }
            Ok(if run.refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        AuditCommand::Archive { state, dir } => {
            let store = state.open()?;
            let (mut written, mut kept, mut refused) = (0, 0, Vec::new());
            for chain in store.chains().await? {
                for e in store.events(&chain).await? {
                    let key = archive::event_key(&chain, e.seq);
                    let same = |old: &[u8]| serde_json::from_slice::<AuditEvent>(old).is_ok_and(|old| old == e);
                    match write_once(&dir, &key, &serde_json::to_vec(&e)?, same)? {
                        WriteOnce::Written => written += 1,
                        WriteOnce::Kept => kept += 1,
                        WriteOnce::Refused(path) => refused.push((format!("{chain}:{}", e.seq), path)),
                    }
                }
                for d in store.digests(&chain).await? {
                    let key = archive::digest_key(&chain, d.number);
                    let same = |old: &[u8]| serde_json::from_slice::<Digest>(old).is_ok_and(|old| old == d);
                    if let WriteOnce::Refused(path) = write_once(&dir, &key, &serde_json::to_vec_pretty(&d)?, same)? {
                        refused.push((format!("digest {} of {chain}", d.number), path));
                    }
                }
            }
            println!("{written} events written under {} ({kept} already archived)", dir.display());
            for (what, path) in &refused {
                eprintln!(
                    "error: {what}: {} already holds another record than the journal's; refused to write over it \
                     (the journal or the archive was changed after archiving)",
                    path.display()
                );
            }
            Ok(if refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        AuditCommand::Export(args) => export(args).await,
    }
}

/// What writing one file of an archive directory did.
enum WriteOnce {
    Written,
    /// The same record was there.
    Kept,
    /// Another record was there: left alone.
    Refused(PathBuf),
}

/// Writes `body` under `key` unless the file exists: an archive directory is
/// written once, as the bucket is. An existing file that does not hold the
/// same record (`same`) is refused, not overwritten.
fn write_once(dir: &Path, key: &str, body: &[u8], same: impl Fn(&[u8]) -> bool) -> Result<WriteOnce> {
    let path = dir.join(key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::read(&path) {
        Ok(old) if same(&old) => return Ok(WriteOnce::Kept),
        Ok(_) => return Ok(WriteOnce::Refused(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    let mut file = options.open(&path).with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(WriteOnce::Written)
}

fn load_or_create_key(path: &Path) -> Result<DigestKey> {
    if path.exists() {
        return load_key(path);
    }
    let key = DigestKey::generate();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating the signing key {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.to_pem().as_bytes())
        .with_context(|| format!("writing the signing key {}", path.display()))?;
    eprintln!(
        "created the audit signing key {} (fingerprint {}); keep a copy of the fingerprint away from this machine",
        path.display(),
        key.fingerprint()
    );
    Ok(key)
}

fn load_key(path: &Path) -> Result<DigestKey> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading the signing key {}", path.display()))?;
    Ok(DigestKey::from_pem(&pem, &path.display().to_string())?)
}

async fn read_source(source: &SourceArgs) -> Result<Vec<ChainData>> {
    let mut chains = if let Some(dir) = &source.dir {
        read_dir_archive(dir, source.journal_state.as_deref()).await?
    } else if let Some(bucket) = &source.bucket {
        read_s3(bucket, source.journal_table.as_deref(), source.chain.as_deref()).await?
    } else {
        if !source.state.state.exists() {
            bail!("no state store at {} (--state, GRANTWARDEN_STATE)", source.state.state.display());
        }
        let store = source.state.open()?;
        let mut out = Vec::new();
        for chain in store.chains().await? {
            if source.chain.as_ref().is_some_and(|c| *c != chain) {
                continue;
            }
            out.push(ChainData {
                events: store.events(&chain).await?,
                head: store.head(&chain).await?,
                anomalies: Vec::new(),
                digests: store.digests(&chain).await?,
                journal: None,
                chain,
            });
        }
        out
    };
    if let Some(only) = &source.chain {
        chains.retain(|c| c.chain == *only);
        if chains.is_empty() {
            bail!("no chain {only} in this journal");
        }
    }
    Ok(chains)
}

async fn read_s3(bucket: &str, journal_table: Option<&str>, only: Option<&str>) -> Result<Vec<ChainData>> {
    let clients = Clients::load().await;
    let archive = Archive::new(&clients, bucket, Retention::default());
    let journal = journal_table
        .map(|t| DynamoStore::new(&clients, &Settings { journal_table: t.to_owned(), ..Settings::default() }));
    let mut names = archive.chains().await?;
    if let Some(journal) = &journal {
        for c in journal.chains().await? {
            if !names.contains(&c) {
                names.push(c);
            }
        }
    }
    let mut out = Vec::new();
    for chain in names {
        if only.is_some_and(|c| c != chain) {
            continue;
        }
        let read = archive.read_chain(&chain).await?;
        let journal_events = match &journal {
            Some(j) => Some(j.events(&chain).await?),
            None => None,
        };
        out.push(ChainData {
            digests: archive.digests(&chain).await?,
            events: read.events,
            // the archive may lag the journal's head by seconds: the two are
            // compared event by event instead (`journal`)
            head: None,
            anomalies: read.anomalies,
            journal: journal_events,
            chain,
        });
    }
    Ok(out)
}

/// Reads `<dir>/audit/<chain>/<seq>.json` and `<dir>/audit-digests/<chain>/<n>.json`,
/// and with `journal_state` the local journal to compare them with.
async fn read_dir_archive(dir: &Path, journal_state: Option<&Path>) -> Result<Vec<ChainData>> {
    let archive = DirArchive::open(dir)?;
    let journal = match journal_state {
        Some(path) if !path.exists() => bail!("no state store at {} (--journal-state)", path.display()),
        Some(path) => Some(LocalStore::open(path).with_context(|| format!("opening {}", path.display()))?),
        None => None,
    };
    let mut names = archive.chains()?;
    if let Some(journal) = &journal {
        names.extend(journal.chains().await?);
        names.sort();
        names.dedup();
    }
    let mut out = Vec::new();
    for chain in names {
        let read = archive.read_chain_after(&chain, 0)?;
        let journal_events = match &journal {
            Some(j) => Some(j.events(&chain).await?),
            None => None,
        };
        out.push(ChainData {
            events: read.events,
            head: None,
            anomalies: read.anomalies,
            digests: archive.digests(&chain)?,
            journal: journal_events,
            chain,
        });
    }
    Ok(out)
}

/// An archive directory in the S3 archive's layout, as `grantwarden audit
/// archive` (or `aws s3 sync s3://BUCKET/ DIR`) writes it.
pub struct DirArchive {
    dir: PathBuf,
}

impl DirArchive {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(archive::PREFIX).is_dir() {
            bail!("{} has no {} directory: not an audit archive", dir.display(), archive::PREFIX);
        }
        Ok(Self { dir: dir.to_owned() })
    }

    /// Every chain with a directory, names decoded, in order.
    pub fn chains(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in sorted_entries(&self.dir.join(archive::PREFIX))? {
            let segment = entry.file_name().to_string_lossy().into_owned();
            let chain = percent_encoding::percent_decode_str(&segment)
                .decode_utf8()
                .with_context(|| format!("{}: not a chain directory", entry.path().display()))?;
            out.push(chain.into_owned());
        }
        Ok(out)
    }

    /// A chain's events after seq `after`, with files that are not its events as anomalies.
    pub fn read_chain_after(&self, chain: &str, after: u64) -> Result<ArchivedChain> {
        let mut out = ArchivedChain::default();
        let prefix = archive::chain_prefix(chain);
        let chain_dir = self.dir.join(&prefix);
        if !chain_dir.is_dir() {
            return Ok(out);
        }
        for file in sorted_entries(&chain_dir)? {
            let key = format!("{prefix}{}", file.file_name().to_string_lossy());
            let Some(seq) = archive::key_number(&key, &prefix) else {
                out.anomalies.push(Anomaly {
                    seq: 0,
                    reason: format!("{} is not an archived event's file", file.path().display()),
                });
                continue;
            };
            if seq <= after {
                continue;
            }
            let body = std::fs::read(file.path()).with_context(|| format!("reading {}", file.path().display()))?;
            match archive::decode_archived(chain, seq, &file.path().display().to_string(), &body) {
                Ok(e) => out.events.push(e),
                Err(anomaly) => out.anomalies.push(anomaly),
            }
        }
        Ok(out)
    }

    /// A chain's digests in file (number) order.
    pub fn digests(&self, chain: &str) -> Result<Vec<Digest>> {
        let digest_dir = self.dir.join(archive::digest_prefix(chain));
        let mut out = Vec::new();
        if digest_dir.is_dir() {
            for file in sorted_entries(&digest_dir)? {
                let path = file.path();
                let body = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                out.push(serde_json::from_slice(&body).with_context(|| format!("{} is not a digest", path.display()))?);
            }
        }
        Ok(out)
    }
}

impl AuditArchive for DirArchive {
    async fn archived_after(&self, chain: &str, seq: u64) -> Result<ArchivedChain, StoreError> {
        self.read_chain_after(chain, seq).map_err(|e| StoreError::Unavailable(format!("{e:#}")))
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

async fn trusted_keys(args: &VerifyArgs) -> Result<Vec<String>> {
    let mut trusted: Vec<String> = args.key_fingerprint.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
    if let Some(secret) = &args.signing_secret {
        let clients = Clients::load().await;
        let value = SecretCache::new(&clients, std::time::Duration::ZERO).string(secret).await?;
        trusted.push(DigestKey::from_secret(&value, &format!("secret {secret}"))?.fingerprint());
    }
    if args.source.bucket.is_none() && args.key.key.exists() {
        trusted.push(load_key(&args.key.key)?.fingerprint());
    }
    Ok(trusted)
}

async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let chains = read_source(&args.source).await?;
    let trusted = trusted_keys(&args).await?;
    if trusted.is_empty()
        && let Some(d) = chains.iter().flat_map(|c| c.digests.first()).next()
    {
        bail!(
            "the digests are signed by key {}, but no key is trusted: pass --key-fingerprint (or --key / --signing-secret)",
            d.key_fingerprint
        );
    }
    let reports: Vec<ChainReport> = chains
        .iter()
        .map(|c| {
            let head = c.head.as_ref().map(|(s, h)| (*s, h.as_str()));
            let mut report = check_chain(&c.chain, &c.events, head, &c.anomalies, Some((&c.digests, &trusted)));
            if let Some(journal) = &c.journal {
                let archived = ArchivedChain { events: c.events.clone(), anomalies: c.anomalies.clone() };
                let comparison = compare_with_archive(&c.chain, 0, &archived, journal);
                report.not_archived = Some(comparison.not_archived);
                if let Some(d) = comparison.disagreement
                    && report.broken.as_ref().is_none_or(|b| d.seq < b.seq)
                {
                    report.broken = Some(d.into());
                }
            }
            report
        })
        .collect();
    let broken = reports.iter().any(|r| r.broken.is_some());
    let warnings: Vec<String> = unpinned_warning(&args).into_iter().collect();
    match args.format {
        OutputFormat::Json => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let out = serde_json::json!({ "intact": !broken, "key_pinned": !args.key_fingerprint.is_empty(),
                                          "warnings": warnings, "chains": reports });
            println!("{}", serde_json::to_string_pretty(&out)?)
        }
        OutputFormat::Text => {
            for w in &warnings {
                println!("warning: {w}");
            }
            if reports.is_empty() {
                println!("no audit events found");
            }
            for r in &reports {
                println!("{}", describe(r));
            }
        }
    }
    Ok(if broken { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// What verify says when no key fingerprint is pinned: the digests are then
/// trusted by a key read from where it is kept, which whoever can change that
/// place can swap for their own and re-sign a rewritten chain with. The exit
/// code does not change (verify still checked everything it could).
fn unpinned_warning(args: &VerifyArgs) -> Option<String> {
    if !args.key_fingerprint.is_empty() {
        return None;
    }
    let mut from = Vec::new();
    if let Some(secret) = &args.signing_secret {
        from.push(format!("the key in secret {secret}"));
    }
    if args.source.bucket.is_none() && args.key.key.exists() {
        from.push(format!("the key file {}", args.key.key.display()));
    }
    let from = if from.is_empty() { "no key at all".to_owned() } else { from.join(" and ") };
    Some(format!(
        "no --key-fingerprint pinned: the signed digests are checked against {from}, which whoever can replace it \
         can re-sign a rewritten chain with; pin the fingerprint, kept where the journal's writers cannot change it"
    ))
}

fn describe(r: &ChainReport) -> String {
    let mut parts = vec![format!("{} events", r.events)];
    if let Some(head) = r.head {
        parts.push(format!("head {head}"));
    }
    match &r.digests {
        Some(d) if d.digests > 0 => parts.push(format!(
            "{} signed digests through seq {} (last {})",
            d.digests,
            d.digested_through,
            d.last_digest_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        )),
        Some(_) => parts.push("no signed digests yet".into()),
        None => {}
    }
    if let Some(lag) = r.not_archived {
        parts.push(format!("{lag} journal events not archived yet"));
    }
    match &r.broken {
        None => format!("chain {}: intact ({})", r.chain, parts.join(", ")),
        Some(b) => format!("chain {}: BROKEN at seq {}: {} ({})", r.chain, b.seq, b.reason, parts.join(", ")),
    }
}

async fn export(args: ExportArgs) -> Result<ExitCode> {
    let chains = read_source(&args.source).await?;
    let events: Vec<AuditEvent> = chains.into_iter().flat_map(|c| c.events).collect();
    let window = grantwarden_core::compliance::Window { from: args.from, to: args.to };
    let trail = grantwarden_core::compliance::trail_of(&events, &args.user, window);
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&trail)?),
        OutputFormat::Text => {
            println!("audit trail of {} ({} events)", args.user, trail.len());
            for e in &trail {
                let role = if e.actor == args.user { "by" } else { "about" };
                println!(
                    "{}  {:<20} {role:<5} {:<24} subject {}  [{} hash {}]",
                    e.at.to_rfc3339(),
                    e.kind,
                    e.actor,
                    e.subject,
                    e.id,
                    grantwarden_core::dashboard::short(&e.hash, 12)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
