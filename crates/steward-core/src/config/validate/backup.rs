//! Stage two for `[backup]`: cron expressions, the time zone, the
//! destination URL, age recipients, keep rules and the credential references.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;

use super::super::error::Problem;
use super::super::model::{BackupConfig, BackupDestination, CredentialConfig, KeepPolicy, S3Destination};
use super::super::raw::{RawBackup, RawKeep};
use super::{Validator, normalize};

/// Default `[backup] schedule`: daily at 03:00, when agents are usually quiet.
pub const DEFAULT_BACKUP_SCHEDULE: &str = "0 3 * * *";
/// Default `[backup] timezone`: UTC has no daylight-saving gaps or repeats.
pub const DEFAULT_BACKUP_TIMEZONE: &str = "UTC";
/// Default `[backup] restore_test`: weekly (Sunday 04:00), an hour after the
/// backup, so a test is never older than the 8-day alert threshold.
pub const DEFAULT_RESTORE_TEST: &str = "0 4 * * 0";
/// Default `[backup] keep`: a week of dailies, a month of weeklies, half a
/// year of monthlies.
pub const DEFAULT_KEEP: KeepPolicy = KeepPolicy { daily: 7, weekly: 4, monthly: 6 };
/// Largest count in a keep rule: 100 years of monthlies; keeps listing cheap.
const MAX_KEEP: i64 = 1_200;
/// S3 region used when the URL names none (what S3-compatible servers expect).
const DEFAULT_REGION: &str = "us-east-1";

impl Validator<'_> {
    pub(super) fn backup(
        &mut self,
        raw: RawBackup,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BackupConfig {
        let schedule = self.cron(raw.schedule, "schedule", DEFAULT_BACKUP_SCHEDULE).unwrap_or_default();
        let restore_test = match raw.restore_test {
            Some(text) if text.get_ref() == "never" => None,
            other => self.cron(other, "restore_test", DEFAULT_RESTORE_TEST),
        };
        let timezone = match raw.timezone {
            None => DEFAULT_BACKUP_TIMEZONE.to_owned(),
            Some(text) => {
                if jiff::tz::TimeZone::get(text.get_ref()).is_err() {
                    self.push(Problem::new(
                        text.span(),
                        format!("time zone {:?} is not a time zone steward knows", text.get_ref()),
                        "unknown time zone",
                        "use an IANA name such as timezone = \"UTC\" or \"Europe/Berlin\"",
                    ));
                }
                text.into_inner()
            }
        };
        let paths = raw.paths.unwrap_or_default().iter().map(|p| self.path(p, "paths")).collect();
        let destination = self.destination(&raw.destination);
        let is_s3 = matches!(destination, Some(BackupDestination::S3(_)));
        match (&raw.credentials, is_s3) {
            (None, true) => self.push(Problem::new(
                raw.destination.span(),
                "an s3:// destination needs credentials",
                "no credentials",
                "add credentials = \"NAME\" naming a [credentials.NAME] section whose value is \
                 ACCESS_KEY_ID:SECRET_ACCESS_KEY",
            )),
            (Some(name), false) if destination.is_some() => self.push(Problem::new(
                name.span(),
                "a local destination takes no credentials",
                "not used",
                "remove credentials, or use an s3:// destination",
            )),
            _ => {}
        }
        self.backup_credential_ref(raw.credentials.as_ref(), credentials, "ACCESS_KEY_ID:SECRET_ACCESS_KEY");
        self.backup_credential_ref(raw.identity.as_ref(), credentials, "an age identity (AGE-SECRET-KEY-1...)");
        let encrypt_to = raw.encrypt_to.unwrap_or_default();
        for recipient in &encrypt_to {
            if recipient.get_ref().parse::<age::x25519::Recipient>().is_err() {
                self.push(Problem::new(
                    recipient.span(),
                    format!("{:?} is not an age x25519 recipient", recipient.get_ref()),
                    "not an age1... recipient",
                    "paste the public key printed by `age-keygen` (it starts with age1); the identity \
                     (AGE-SECRET-KEY-...) stays off this machine or in a [credentials.*] entry",
                ));
            }
        }
        let keep = raw.keep.map_or(DEFAULT_KEEP, |k| self.keep(k));
        BackupConfig {
            schedule,
            timezone,
            paths,
            include_logs: raw.include_logs.unwrap_or(false),
            destination: destination.unwrap_or_else(|| BackupDestination::Local(PathBuf::new())),
            credentials: raw.credentials.map(Spanned::into_inner),
            encrypt_to: encrypt_to.into_iter().map(Spanned::into_inner).collect(),
            identity: raw.identity.map(Spanned::into_inner),
            keep,
            restore_test,
        }
    }

    /// A five-field cron expression; `None` (with a problem) when invalid.
    fn cron(&mut self, raw: Option<Spanned<String>>, key: &str, default: &str) -> Option<String> {
        let Some(text) = raw else { return Some(default.to_owned()) };
        match parse_cron(text.get_ref()) {
            Ok(_) => Some(text.into_inner()),
            Err(err) => {
                self.push(Problem::new(
                    text.span(),
                    format!("{key} {:?} is not a cron expression: {err}", text.get_ref()),
                    "invalid cron",
                    format!(
                        "write five fields (minute hour day-of-month month day-of-week), like \
                         {key} = \"{default}\""
                    ),
                ));
                None
            }
        }
    }

    fn destination(&mut self, text: &Spanned<String>) -> Option<BackupDestination> {
        let value = text.get_ref();
        let result = if let Some(rest) = value.strip_prefix("s3://") {
            parse_s3(rest).map(BackupDestination::S3)
        } else if let Some(path) = value.strip_prefix("file://") {
            if path.starts_with('/') {
                Ok(BackupDestination::Local(normalize(std::path::Path::new(path))))
            } else {
                Err("a file:// URL needs an absolute path (three slashes: file:///mnt/backup)".to_owned())
            }
        } else if value.contains("://") {
            Err("only file:// and s3:// destinations are supported".to_owned())
        } else {
            let before = self.problems.len();
            let path = self.path(text, "destination");
            return (self.problems.len() == before).then_some(BackupDestination::Local(path));
        };
        result
            .map_err(|why| {
                self.push(Problem::new(
                    text.span(),
                    format!("destination: {why}"),
                    "invalid destination",
                    "write destination = \"file:///mnt/backup/steward\" (another disk) or \
                     \"s3://bucket/prefix?endpoint=https://s3.example.com&region=us-east-1\"",
                ));
            })
            .ok()
    }

    fn backup_credential_ref(
        &mut self,
        name: Option<&Spanned<String>>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
        holds: &str,
    ) {
        let Some(name) = name else { return };
        if !credentials.contains_key(name.get_ref()) {
            let defined: Vec<&str> = credentials.keys().map(String::as_str).collect();
            self.push(Problem::new(
                name.span(),
                format!("credential {:?} is not defined", name.get_ref()),
                "unknown credential",
                format!(
                    "add [credentials.{}] with source = \"env:NAME\" or \"file:PATH\" holding {holds}{}",
                    name.get_ref(),
                    if defined.is_empty() { String::new() } else { format!("; defined: {}", defined.join(", ")) }
                ),
            ));
        }
    }

    fn keep(&mut self, raw: Spanned<RawKeep>) -> KeepPolicy {
        let span = raw.span();
        let raw = raw.into_inner();
        let mut count = |value: Option<Spanned<i64>>, key: &str, default: u32| match value {
            None => default,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(v) if i64::from(v) <= MAX_KEEP => v,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!("keep.{key} = {} is outside 0..={MAX_KEEP}", n.get_ref()),
                        "out of range",
                        format!("use a whole number, like {key} = {default}"),
                    ));
                    default
                }
            },
        };
        let keep = KeepPolicy {
            daily: count(raw.daily, "daily", DEFAULT_KEEP.daily),
            weekly: count(raw.weekly, "weekly", DEFAULT_KEEP.weekly),
            monthly: count(raw.monthly, "monthly", DEFAULT_KEEP.monthly),
        };
        if keep.daily == 0 && keep.weekly == 0 && keep.monthly == 0 {
            self.push(Problem::new(
                span,
                "keep rules are all 0: only the newest backup would survive",
                "keeps nothing",
                "keep some history, like keep = { daily = 7, weekly = 4, monthly = 6 }",
            ));
        }
        keep
    }
}

/// Parses a five-field cron expression the way the scheduler does.
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build().parse(text)
}

/// `bucket/prefix?endpoint=...&region=...&allow_http=true` (after `s3://`).
fn parse_s3(rest: &str) -> Result<S3Destination, String> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if !bucket_ok {
        return Err(format!("{bucket:?} is not an S3 bucket name (3-63 lower-case letters, digits, - and .)"));
    }
    let mut dest = S3Destination {
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        endpoint: None,
        region: DEFAULT_REGION.to_owned(),
        allow_http: false,
    };
    let mut explicit_http = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
        match key {
            "endpoint" => dest.endpoint = Some(value.trim_end_matches('/').to_owned()),
            "region" if !value.is_empty() => dest.region = value,
            "allow_http" => explicit_http = value == "true",
            other => return Err(format!("unknown parameter {other:?} (known: endpoint, region, allow_http)")),
        }
    }
    if let Some(endpoint) = &dest.endpoint {
        let uri: http::Uri = endpoint.parse().map_err(|_| format!("endpoint {endpoint:?} is not a URL"))?;
        let authority = uri.authority().ok_or_else(|| format!("endpoint {endpoint:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err("the endpoint contains user credentials; put them in a [credentials.NAME] entry".into());
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                let host = authority.host().trim_start_matches('[').trim_end_matches(']');
                let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if !loopback && !explicit_http {
                    return Err(format!(
                        "endpoint {endpoint:?} is plain http on a non-loopback host; use https, \
                         or add &allow_http=true if the network is trusted"
                    ));
                }
                dest.allow_http = true;
            }
            _ => return Err(format!("endpoint {endpoint:?} must be an http or https URL")),
        }
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{BackupConfig, BackupDestination, ConfigError, KeepPolicy, parse};

    const HEAD: &str = "[agent]\nname = \"x\"\n\n[credentials.s3_backup]\nsource = \"env:S3_BACKUP\"\n\n";

    /// A recipient of a throwaway key: only its shape matters here.
    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn ok(backup: &str) -> BackupConfig {
        match parse(&format!("{HEAD}{backup}"), Path::new("/srv/agent/steward.toml")) {
            Ok(config) => config.backup.expect("a [backup] section"),
            Err(err) => panic!("{:?}", miette::Report::new(err)),
        }
    }

    fn err(backup: &str) -> ConfigError {
        match parse(&format!("{HEAD}{backup}"), Path::new("/srv/agent/steward.toml")) {
            Ok(config) => panic!("expected an error, got {:#?}", config.backup),
            Err(err) => err,
        }
    }

    fn messages(e: &ConfigError) -> String {
        e.errors()
            .map(|e| format!("{} | {}", e.message(), e.help_text().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_section_parses() {
        let b = ok(&format!(
            r#"[backup]
schedule = "0 3 * * *"
timezone = "UTC"
paths = ["./calendar.json", "./agent-state/"]
include_logs = false
destination = "s3://bucket/steward?endpoint=http://127.0.0.1:9000&region=eu-west-1"
credentials = "s3_backup"
encrypt_to = ["{RECIPIENT}"]
keep = {{ daily = 7, weekly = 4, monthly = 6 }}
restore_test = "0 4 * * 0"
"#
        ));
        assert_eq!(b.schedule, "0 3 * * *");
        assert_eq!(b.paths, vec![PathBuf::from("/srv/agent/calendar.json"), PathBuf::from("/srv/agent/agent-state")]);
        let BackupDestination::S3(s3) = &b.destination else { panic!("{:?}", b.destination) };
        assert_eq!(s3.bucket, "bucket");
        assert_eq!(s3.prefix, "steward");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "eu-west-1");
        assert!(s3.allow_http, "a loopback http endpoint is allowed");
        assert_eq!(b.credentials.as_deref(), Some("s3_backup"));
        assert_eq!(b.encrypt_to, vec![RECIPIENT.to_owned()]);
        assert_eq!(b.keep, KeepPolicy { daily: 7, weekly: 4, monthly: 6 });
        assert_eq!(b.restore_test.as_deref(), Some("0 4 * * 0"));
    }

    #[test]
    fn defaults_and_local_destinations() {
        let b = ok("[backup]\ndestination = \"file:///mnt/backup/steward\"\n");
        assert_eq!(b.schedule, super::DEFAULT_BACKUP_SCHEDULE);
        assert_eq!(b.timezone, "UTC");
        assert_eq!(b.keep, super::DEFAULT_KEEP);
        assert_eq!(b.restore_test.as_deref(), Some(super::DEFAULT_RESTORE_TEST));
        assert!(b.paths.is_empty() && !b.include_logs && b.encrypt_to.is_empty());
        assert_eq!(b.destination, BackupDestination::Local(PathBuf::from("/mnt/backup/steward")));
        let b = ok("[backup]\ndestination = \"../backups\"\nrestore_test = \"never\"\n");
        assert_eq!(b.destination, BackupDestination::Local(PathBuf::from("/srv/agent/../backups")));
        assert_eq!(b.restore_test, None);
        let b = ok(
            "[backup]\ndestination = \"s3://my-bucket\"\ncredentials = \"s3_backup\"\ntimezone = \"Europe/Berlin\"\n",
        );
        let BackupDestination::S3(s3) = &b.destination else { panic!() };
        assert_eq!((s3.prefix.as_str(), s3.endpoint.as_deref(), s3.allow_http), ("", None, false));
    }

    #[test]
    fn every_mistake_is_reported_with_a_fix() {
        let e = err(r#"[backup]
schedule = "every night"
timezone = "Mars/Olympus"
destination = "s3://bucket/x?endpoint=http://10.0.0.5:9000"
encrypt_to = ["not-a-key"]
identity = "nowhere"
keep = { daily = 0, weekly = 0, monthly = 0 }
restore_test = "61 * * * *"
"#);
        let text = messages(&e);
        for expected in [
            "schedule \"every night\" is not a cron expression",
            "five fields",
            "time zone \"Mars/Olympus\" is not a time zone steward knows",
            "plain http on a non-loopback host",
            "not an age x25519 recipient",
            "credential \"nowhere\" is not defined",
            "keep rules are all 0",
            "restore_test \"61 * * * *\" is not a cron expression",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let (line, _) = e.line_col().unwrap();
        assert_eq!(line, 8, "the first problem is the schedule on line 8");
    }

    #[test]
    fn destinations_and_credentials_must_fit_together() {
        let text = messages(&err("[backup]\ndestination = \"s3://bucket\"\n"));
        assert!(text.contains("needs credentials") && text.contains("ACCESS_KEY_ID:SECRET_ACCESS_KEY"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"file:///b\"\ncredentials = \"s3_backup\"\n"));
        assert!(text.contains("takes no credentials"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"file://relative/dir\"\n"));
        assert!(text.contains("absolute path"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"ftp://host/x\"\n"));
        assert!(text.contains("only file:// and s3://"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"s3://B_ad\"\ncredentials = \"s3_backup\"\n"));
        assert!(text.contains("bucket name"), "{text}");
        let text = messages(&err(
            "[backup]\ndestination = \"s3://bucket?endpoint=https://user:pw@s3.example\"\ncredentials = \"s3_backup\"\n",
        ));
        assert!(text.contains("user credentials"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"s3://bucket?foo=1\"\ncredentials = \"s3_backup\"\n"));
        assert!(text.contains("unknown parameter"), "{text}");
        // http on a trusted network is an explicit choice.
        let b = ok(
            "[backup]\ndestination = \"s3://bucket?endpoint=http://10.0.0.5:9000&allow_http=true\"\ncredentials = \"s3_backup\"\n",
        );
        let BackupDestination::S3(s3) = &b.destination else { panic!() };
        assert!(s3.allow_http);
    }

    #[test]
    fn structure_errors_name_the_keys() {
        let text = messages(&err("[backup]\ndestinaton = \"file:///b\"\n"));
        assert!(text.contains("unknown key `destinaton` in [backup]"), "{text}");
        let text = messages(&err("[backup]\npaths = [\"./a\"]\n"));
        assert!(text.contains("missing `destination`") && text.contains("file:///mnt/backup/steward"), "{text}");
        let text = messages(&err("[backup]\ndestination = \"file:///b\"\nkeep = { daily = -1, hourly = 3 }\n"));
        assert!(text.contains("hourly"), "{text}");
    }

    #[test]
    fn an_age_identity_in_the_file_is_a_literal_secret() {
        let key = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3JK5Q5";
        let text = messages(&err(&format!("[backup]\ndestination = \"file:///b\"\n# identity: {key}\n")));
        assert!(text.contains("literal secret"), "{text}");
    }
}
