//! Rules that need context: a provider's name in the key of an assignment
//! (`DATADOG_API_KEY=...`, `"cloudflare_token": "..."`), because the value
//! alone (32 hex digits, a UUID) is indistinguishable from an id or digest.
//! Also the generic password / secret / api-key / token assignments.

use super::fake::{B64URL, DIGITS, LOWER_ALNUM, UPPER_ALNUM, alnum, chars, hex, uuid};
use super::{Check, RuleDef as R};

/// Value shape of a lower-case hex UUID.
const UUID: &str = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/// Characters a generic assignment value may contain: anything but
/// whitespace, quotes, separators and the brackets of `{secret}` templates
/// and `[REDACTED:...]` markers.
const GENERIC_VALUE: &str = r#"[^\s"'`,;{}\[\]<>()]{4,}"#;

#[rustfmt::skip]
pub(super) fn rules() -> Vec<R> {
    vec![
        R::context("aws-secret-access-key", &["aws"], "aws", r"[A-Za-z0-9/+=]{40}", || format!("AWS_SECRET_ACCESS_KEY={}", chars(super::fake::B64, 40, 300))),
        R::context("aws-session-token", &["session_token", "sessiontoken"], r"aws_?session_?token|sessiontoken", r"[A-Za-z0-9/+=]{100,}", || format!("aws_session_token = {}", chars(super::fake::B64, 300, 301))).behind(4).max_len(4096),
        R::context("azure-client-secret", &["azure"], "azure", r"[\w~.-]{34,40}", || format!("AZURE_CLIENT_SECRET=\"{}\"", alnum(40, 302))),
        R::context("cloudflare-api-token", &["cloudflare"], "cloudflare", r"[a-z0-9_-]{40}", || format!("CLOUDFLARE_API_TOKEN={}", alnum(40, 303))),
        R::context("cloudflare-global-api-key", &["cloudflare"], "cloudflare", r"[a-f0-9]{37}", || format!("cloudflare_global_key: {}", hex(37, 304))),
        R::context("datadog-api-key", &["datadog", "dd_api_key", "dd_app_key"], r"datadog|dd_api_key|dd_app_key", r"[a-f0-9]{32}|[a-f0-9]{40}", || format!("DD_API_KEY={}", hex(32, 305))),
        R::context("heroku-api-key", &["heroku"], "heroku", UUID, || format!("HEROKU_API_KEY={}", uuid(306))),
        R::context("discord-bot-token", &["discord"], "discord", r"[MNO][\w-]{23,25}\.[\w-]{6}\.[\w-]{27,38}", || format!("DISCORD_BOT_TOKEN={}.{}.{}", chars("MNO", 1, 307) + &alnum(23, 308), alnum(6, 309), chars(B64URL, 38, 310))),
        R::context("discord-client-secret", &["discord"], "discord", r"[a-z0-9=_-]{32}", || format!("discord_client_secret = \"{}\"", alnum(32, 311))),
        R::context("twilio-auth-token", &["twilio"], "twilio", r"[a-f0-9]{32}", || format!("TWILIO_AUTH_TOKEN={}", hex(32, 312))),
        R::context("mailgun-signing-key", &["mailgun"], "mailgun", r"[a-h0-9]{32}-[a-h0-9]{8}-[a-h0-9]{8}", || format!("MAILGUN_SIGNING_KEY={}-{}-{}", hex(32, 313), hex(8, 314), hex(8, 315))),
        R::context("sendgrid-context-key", &["sendgrid"], "sendgrid", r"[\w.=-]{60,80}", || format!("SENDGRID_KEY={}", chars(B64URL, 69, 316))),
        R::context("mastodon-access-token", &["mastodon"], "mastodon", r"[\w-]{43}", || format!("MASTODON_ACCESS_TOKEN={}", chars(B64URL, 43, 317))),
        R::context("telegram-bot-token-context", &["telegr"], "telegr", r"[0-9]{5,16}:(?-i:A)[a-z0-9_-]{34}", || format!("TELEGRAM_TOKEN={}:A{}", chars(DIGITS, 10, 318), chars(B64URL, 34, 319))),
        R::context("sentry-access-token", &["sentry"], "sentry", r"[a-f0-9]{64}", || format!("SENTRY_AUTH_TOKEN={}", hex(64, 320))),
        R::context("new-relic-user-api-id", &["new-relic", "newrelic", "new_relic"], r"new-relic|newrelic|new_relic", r"[a-z0-9]{64}", || format!("NEW_RELIC_API_ID={}", chars(LOWER_ALNUM, 64, 321))),
        R::context("linear-client-secret", &["linear"], "linear", r"[a-f0-9]{32}", || format!("LINEAR_CLIENT_SECRET={}", hex(32, 322))),
        R::context("airtable-api-key", &["airtable"], "airtable", r"[a-z0-9]{17}", || format!("AIRTABLE_API_KEY=key{}", chars(LOWER_ALNUM, 14, 323))),
        R::context("algolia-api-key", &["algolia"], "algolia", r"[a-z0-9]{32}", || format!("ALGOLIA_API_KEY={}", hex(32, 324))),
        R::context("asana-client-secret", &["asana"], "asana", r"[a-z0-9]{32}", || format!("ASANA_SECRET={}", hex(32, 325))),
        R::context("bitbucket-client-secret", &["bitbucket"], "bitbucket", r"[a-z0-9=_-]{32}|[a-z0-9=_-]{64}", || format!("BITBUCKET_SECRET={}", alnum(64, 326))),
        R::context("codecov-access-token", &["codecov"], "codecov", r"[a-z0-9]{32}", || format!("CODECOV_TOKEN={}", hex(32, 327))),
        R::context("cohere-api-token", &["cohere", "co_api_key"], r"cohere|co_api_key", r"[a-zA-Z0-9]{40}", || format!("CO_API_KEY={}", alnum(40, 328))),
        R::context("coinbase-access-token", &["coinbase"], "coinbase", r"[a-z0-9_-]{64}", || format!("COINBASE_TOKEN={}", alnum(64, 329))),
        R::context("confluent-secret-key", &["confluent"], "confluent", r"[a-z0-9]{64}|[a-z0-9]{16}", || format!("CONFLUENT_SECRET={}", alnum(64, 330))),
        R::context("contentful-delivery-api-token", &["contentful"], "contentful", r"[a-z0-9=_-]{43}", || format!("CONTENTFUL_TOKEN={}", chars(B64URL, 43, 331))),
        R::context("dropbox-api-token", &["dropbox"], "dropbox", r"sl\.[a-z0-9=_-]{135,}|[a-z0-9]{11}AAAAAAAAAA[a-z0-9=_-]{43}|[a-z0-9]{15}", || format!("DROPBOX_TOKEN=sl.{}", chars(B64URL, 140, 332))).max_len(1024),
        R::context("fastly-api-token", &["fastly"], "fastly", r"[a-z0-9=_-]{32}", || format!("FASTLY_API_TOKEN={}", chars(B64URL, 32, 333))),
        R::context("gitter-access-token", &["gitter"], "gitter", r"[a-z0-9_-]{40}", || format!("GITTER_TOKEN={}", hex(40, 334))),
        R::context("gocardless-api-token", &["gocardless"], "gocardless", r"live_[a-z0-9=_-]{40}", || format!("GOCARDLESS_TOKEN=live_{}", chars(B64URL, 40, 335))),
        R::context("intercom-api-key", &["intercom"], "intercom", r"[a-z0-9=_-]{60}", || format!("INTERCOM_TOKEN={}", chars(B64URL, 60, 336))),
        R::context("jfrog-api-key", &["jfrog", "artifactory", "bintray", "xray"], r"jfrog|artifactory|bintray|xray", r"[a-z0-9]{73}|[a-z0-9]{64}", || format!("JFROG_API_KEY={}", chars(LOWER_ALNUM, 73, 337))),
        R::context("launchdarkly-access-token", &["launchdarkly"], "launchdarkly", r"[a-z0-9=_-]{40}", || format!("LAUNCHDARKLY_TOKEN={}", chars(B64URL, 40, 338))),
        R::context("mapbox-api-token", &["mapbox"], "mapbox", r"pk\.[a-z0-9]{60}\.[a-z0-9]{22}", || format!("MAPBOX_TOKEN=pk.{}.{}", alnum(60, 339), alnum(22, 340))),
        R::context("netlify-access-token", &["netlify"], "netlify", r"[a-z0-9=_-]{40,46}", || format!("NETLIFY_AUTH_TOKEN={}", chars(B64URL, 43, 341))),
        R::context("okta-access-token", &["okta"], "okta", r"00[\w=-]{40}", || format!("OKTA_API_TOKEN=00{}", chars(B64URL, 40, 342))),
        R::context("plaid-secret-key", &["plaid"], "plaid", r"access-(?:sandbox|development|production)-[0-9a-f-]{36}|[a-z0-9]{30}", || format!("PLAID_SECRET={}", chars(LOWER_ALNUM, 30, 343))),
        R::context("rapidapi-access-token", &["rapidapi"], "rapidapi", r"[a-z0-9_-]{50}", || format!("RAPIDAPI_KEY={}", chars(B64URL, 50, 344))),
        R::context("snyk-api-token", &["snyk"], r"snyk[_.-]?(?:(?:api|oauth)[_.-]?)?(?:key|token)", UUID, || format!("SNYK_TOKEN={}", uuid(345))),
        R::context("sonar-api-token", &["sonar"], r"sonar[_.-]?(?:login|token)", r"[a-z0-9=_-]{40}", || format!("SONAR_TOKEN={}", hex(40, 346))),
        R::context("squarespace-access-token", &["squarespace"], "squarespace", UUID, || format!("SQUARESPACE_TOKEN={}", uuid(347))),
        R::context("sumologic-access-token", &["sumo"], "sumo", r"[a-z0-9]{64}", || format!("SUMO_ACCESS_KEY={}", alnum(64, 348))),
        R::context("travisci-access-token", &["travis"], "travis", r"[a-z0-9]{22}", || format!("TRAVIS_TOKEN={}", alnum(22, 349))),
        R::context("twitch-api-token", &["twitch"], "twitch", r"[a-z0-9]{30}", || format!("TWITCH_TOKEN={}", chars(LOWER_ALNUM, 30, 350))),
        R::context("twitter-bearer-token", &["twitter"], "twitter", r"A{22}[a-zA-Z0-9%]{80,100}|[0-9]{15,25}-[a-zA-Z0-9]{20,40}|[a-z0-9]{45}|[a-z0-9]{50}|[a-z0-9]{25}", || format!("TWITTER_BEARER_TOKEN={}{}", "A".repeat(22), alnum(90, 351))),
        R::context("yandex-api-key", &["yandex"], "yandex", r"AQVN[\w-]{35,38}|YC[\w-]{38}|t1\.[\w-]+=*\.[\w-]{86}=*", || format!("YANDEX_KEY=AQVN{}", chars(B64URL, 36, 352))),
        R::context("zendesk-secret-key", &["zendesk"], "zendesk", r"[a-z0-9]{40}", || format!("ZENDESK_TOKEN={}", alnum(40, 353))),
        R::context("kucoin-secret-key", &["kucoin"], "kucoin", UUID, || format!("KUCOIN_SECRET={}", uuid(354))),
        R::context("hubspot-api-key", &["hubspot"], "hubspot", r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", || format!("HUBSPOT_API_KEY={}", uuid(355).to_uppercase())),
        R::context("braintree-private-key", &["braintree"], "braintree", r"[a-f0-9]{32}", || format!("BRAINTREE_PRIVATE_KEY={}", hex(32, 356))),
        R::context("paypal-client-secret", &["paypal"], "paypal", r"[A-Za-z0-9_-]{60,90}", || format!("PAYPAL_CLIENT_SECRET={}", chars(B64URL, 80, 357))),
        R::context("shopify-context-secret", &["shopify"], "shopify", r"[a-f0-9]{32}", || format!("SHOPIFY_API_SECRET={}", hex(32, 359))),
        R::context("docker-hub-password", &["docker"], r"docker(?:hub)?[_.-]?(?:password|token|pat)", r"[\w.-]{8,100}", || format!("DOCKERHUB_TOKEN={}", chars(UPPER_ALNUM, 20, 360))),
        R::context("notion-context-token", &["notion"], "notion", r"[\w-]{40,60}", || format!("NOTION_TOKEN={}", alnum(50, 361))),
        // --- generic assignments: the last resort, after every provider rule
        R::context("password-assignment", &["password", "passwd", "pwd", "passphrase"], r"password|passwd|pwd|passphrase", GENERIC_VALUE, || format!("db_password = \"{}\"", alnum(16, 370))).check(Check::Assignment { digits_ok: true }),
        R::context("secret-assignment", &["secret"], "secret", GENERIC_VALUE, || format!("CLIENT_SECRET={}", alnum(24, 371))).check(Check::Assignment { digits_ok: false }),
        R::context("api-key-assignment", &["api_key", "apikey", "api-key", "access_key", "accesskey", "private_key", "auth_key", "signing_key", "encryption_key"], r"api[_-]?key|access_?key|private_key|auth_key|signing_key|encryption_key", GENERIC_VALUE, || format!("\"x-api-key\": \"{}\"", alnum(32, 372))).check(Check::Assignment { digits_ok: false }),
        R::context("token-assignment", &["token"], "token", GENERIC_VALUE, || format!("access_token={}", alnum(40, 373))).check(Check::Assignment { digits_ok: false }),
        R::context("credential-assignment", &["credential", "creds"], r"credentials?|creds", GENERIC_VALUE, || format!("credentials: {}", alnum(24, 374))).check(Check::Assignment { digits_ok: false }),
    ]
}
