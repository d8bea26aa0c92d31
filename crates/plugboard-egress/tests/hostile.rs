//! Hostile destinations that the guard must refuse, run through the real `check_url`, `send` and `resolve_checked`
//! with a stub resolver. Every destination is refused before any connection is opened.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{guard, StubResolver};
use plugboard_egress::{EgressError, Guard, Request};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Blocked,
    Invalid,
}
use Kind::{Blocked as B, Invalid as I};

const HOSTILE_URLS: &[(&str, Kind)] = &[
    // loopback, every encoding the url crate normalises
    ("http://127.0.0.1/", B),
    ("http://2130706433/", B),
    ("http://0x7f000001/", B),
    ("http://0177.0.0.1/", B),
    ("http://127.1/", B),
    ("http://0x7f.1/", B),
    ("http://0x7f.0.0.1/", B),
    ("http://0177.1/", B),
    ("http://127.0.1/", B),
    ("http://127.000.000.001/", B),
    ("http://0x7F.0x00.0x00.0x01/", B),
    ("http://%31%32%37.0.0.1/", B),
    ("http://127.0.0.1./", B),
    (
        "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
        B,
    ),
    ("http://127.255.255.254:8080/admin", B),
    ("http://[::1]/", B),
    ("http://[0:0:0:0:0:0:0:1]/", B),
    ("http://[::ffff:127.0.0.1]/", B),
    ("http://[::ffff:7f00:1]/", B),
    ("http://[::127.0.0.1]/", B),
    ("http://[64:ff9b::7f00:1]/", B),
    ("http://[2002:7f00:1::1]/", B),
    // unspecified
    ("http://0.0.0.0/", B),
    ("http://0/", B),
    ("http://0.0.0.0:8080/", B),
    ("http://[::]/", B),
    ("http://[::ffff:0.0.0.0]/", B),
    // private, CGNAT and their IPv6 wrappings
    ("http://10.0.0.1/", B),
    ("http://10.255.255.255/", B),
    ("http://167772161/", B),
    ("http://172.16.0.1/", B),
    ("http://172.31.255.254/", B),
    ("http://192.168.1.1/", B),
    ("http://0xc0a80101/", B),
    ("http://100.64.0.1/", B),
    ("http://100.127.255.254/", B),
    ("http://[64:ff9b::a00:1]/", B),
    ("http://[2002:a00:1::]/", B),
    ("http://[::ffff:192.168.0.1]/", B),
    ("http://[64:ff9b:1::a00:1]/", B),
    // link-local and cloud metadata
    ("http://169.254.169.254/latest/meta-data/", B),
    ("http://169.254.169.254/?token=SECRET-QUERY", B),
    ("http://0xa9fea9fe/", B),
    ("http://2852039166/", B),
    ("http://0251.0376.0251.0376/", B),
    ("http://[::ffff:169.254.169.254]/", B),
    ("http://[::ffff:a9fe:a9fe]/", B),
    ("http://[64:ff9b::a9fe:a9fe]/", B),
    ("http://[2002:a9fe:a9fe::]/", B),
    ("http://169.254.170.2/v2/credentials", B),
    ("http://100.100.100.200/latest/meta-data", B),
    ("http://[fd00:ec2::254]/latest/meta-data/", B),
    ("http://169.254.0.1/", B),
    ("http://[fe80::1]/", B),
    ("http://[fe80::1%25eth0]/", I),
    // the other special-purpose ranges
    ("http://192.0.0.1/", B),
    ("http://192.0.2.1/", B),
    ("http://192.88.99.1/", B),
    ("http://198.18.0.1/", B),
    ("http://198.19.255.255/", B),
    ("http://198.51.100.7/", B),
    ("http://203.0.113.9/", B),
    ("http://224.0.0.1/", B),
    ("http://239.255.255.250/", B),
    ("http://240.0.0.1/", B),
    ("http://255.255.255.254/", B),
    ("http://255.255.255.255/", B),
    ("http://[100::1]/", B),
    ("http://[2001:2::1]/", B),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", B),
    ("http://[2001:db8::1]/", B),
    ("http://[3fff::1]/", B),
    ("http://[5f00::1]/", B),
    ("http://[fc00::1]/", B),
    ("http://[fd12:3456::1]/", B),
    ("http://[fec0::1]/", B),
    ("http://[ff02::1]/", B),
    ("http://[ff05::1:3]/", B),
    ("http://[::ffff:0:127.0.0.1]/", B),
    ("http://[4000::1]/", B),
    // names refused by name
    ("http://metadata.google.internal/computeMetadata/v1/", B),
    ("http://METADATA.GOOGLE.INTERNAL/", B),
    ("http://metadata.google.internal./", B),
    ("http://metadata/", B),
    ("http://metadata.goog/", B),
    ("http://instance-data/", B),
    ("http://instance-data.ec2.internal/latest/", B),
    ("http://Instance-Data.EC2.Internal./", B),
    ("http://localhost/", B),
    ("http://LOCALHOST:8080/", B),
    ("http://localhost./", B),
    ("http://foo.localhost/", B),
    ("http://a.b.LocalHost./", B),
    // names whose answers are refused (stub resolver)
    ("http://internal.test/", B),
    ("http://internal.test./", B),
    ("http://INTERNAL.TEST/", B),
    ("http://mixed.test/", B),
    ("http://mixed6.test/", B),
    ("http://imds.test/", B),
    ("http://mapped.test/", B),
    ("http://nat64.test/", B),
    ("http://cgnat.test/", B),
    ("https://ula.test/", B),
    ("http://unknown.test/", B), // no answer: refused too (a Connect error), checked below
    // userinfo tricks
    ("http://user@example.test/", I),
    ("http://a:b@example.test/", I),
    ("http://user:SECRET-PASSWORD@example.test/", I),
    ("http://example.test@127.0.0.1/", I),
    ("http://user:SECRET-PASSWORD@169.254.169.254/", I),
    ("https://token@example.test/", I),
    // schemes
    ("file:///etc/passwd", I),
    ("file://localhost/etc/passwd", I),
    ("gopher://127.0.0.1:6379/_INFO", I),
    ("ftp://example.test/", I),
    ("data:text/plain,hello", I),
    ("dict://127.0.0.1:11211/stats", I),
    ("javascript:alert(1)", I),
    ("ws://example.test/", I),
    ("ldap://example.test/", I),
    // malformed
    ("", I),
    ("http://", I),
    ("//example.test/", I),
    ("http://1.2.3.4.5/", I),
    ("http://[::1/", I),
    ("http://exa mple.test/", I),
];

fn resolver() -> Arc<StubResolver> {
    StubResolver::new()
        .with("example.test", &["93.184.216.34"])
        .with("internal.test", &["10.0.0.5"])
        .with("mixed.test", &["93.184.216.34", "10.0.0.1"])
        .with("mixed6.test", &["2606:4700:4700::1111", "::1"])
        .with("imds.test", &["169.254.169.254"])
        .with("mapped.test", &["::ffff:10.0.0.1"])
        .with("nat64.test", &["64:ff9b::c0a8:1"])
        .with("cgnat.test", &["100.64.3.4"])
        .with("ula.test", &["fd00::1234"])
}

fn kind_of(err: &EgressError) -> Option<Kind> {
    match err {
        EgressError::Blocked(_) => Some(Kind::Blocked),
        EgressError::InvalidUrl(_) => Some(Kind::Invalid),
        _ => None,
    }
}

fn hostile_guard() -> (Guard, Arc<StubResolver>) {
    let r = resolver();
    (guard("", Arc::clone(&r)), r)
}

#[test]
fn the_corpus_has_at_least_sixty_hostile_urls() {
    assert!(HOSTILE_URLS.len() >= 60, "{}", HOSTILE_URLS.len());
}

#[tokio::test]
async fn check_url_refuses_every_hostile_url_for_the_expected_reason() {
    let (g, _) = hostile_guard();
    let mut wrong = Vec::new();
    for (url, kind) in HOSTILE_URLS {
        match g.check_url(url).await {
            Ok(u) => wrong.push(format!("{url:?} was allowed as {u}")),
            Err(e) if *url == "http://unknown.test/" => {
                assert!(matches!(e, EgressError::Connect(_)), "{e}");
            }
            Err(e) => {
                if kind_of(&e) != Some(*kind) {
                    wrong.push(format!("{url:?}: expected {kind:?}, got {e}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn send_refuses_every_hostile_url_with_the_same_error_as_check_url() {
    let (g, _) = hostile_guard();
    let mut wrong = Vec::new();
    for (url, _) in HOSTILE_URLS {
        let checked = g.check_url(url).await.err();
        let sent = g.send(Request::get(*url)).await.err();
        if sent.is_none() || sent != checked {
            wrong.push(format!("{url:?}: check_url {checked:?}, send {sent:?}"));
        }
        let streamed = g.send_streaming(Request::get(*url)).await.err();
        if streamed.is_none() || streamed != checked {
            wrong.push(format!(
                "{url:?}: check_url {checked:?}, send_streaming {streamed:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn refusals_never_echo_userinfo_or_query_strings() {
    let (g, _) = hostile_guard();
    for (url, _) in HOSTILE_URLS {
        for err in [
            g.check_url(url).await.err(),
            g.send(Request::get(*url)).await.err(),
        ]
        .into_iter()
        .flatten()
        {
            let msg = err.to_string();
            assert!(!msg.contains("SECRET"), "{url:?} leaked into {msg:?}");
            assert!(!msg.contains("user:"), "{url:?} leaked into {msg:?}");
        }
    }
}

#[tokio::test]
async fn every_blocked_message_names_the_address_category() {
    let (g, _) = hostile_guard();
    const WORDS: &[&str] = &[
        "loopback",
        "private",
        "unspecified",
        "carrier-grade NAT",
        "link-local",
        "metadata",
        "multicast",
        "reserved",
        "broadcast",
        "documentation",
        "benchmarking",
        "protocol assignment",
        "relay",
        "discard",
        "unique local",
        "site-local",
        "Teredo",
        "segment routing",
        "NAT64",
    ];
    for (url, _) in HOSTILE_URLS {
        if let Err(EgressError::Blocked(msg)) = g.check_url(url).await {
            assert!(WORDS.iter().any(|w| msg.contains(w)), "{url:?}: {msg:?}");
        }
    }
}

#[tokio::test]
async fn a_private_address_is_refused_with_a_readable_sentence() {
    let (g, _) = hostile_guard();
    let err = g.check_url("http://10.0.0.1/x?y=z").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocked: 10.0.0.1 is a private address (RFC 1918)"
    );
    let err = g.check_url("http://mixed.test/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocked: mixed.test resolves to 10.0.0.1, a private address (RFC 1918)"
    );
    let err = g.check_url("http://[::ffff:a9fe:a9fe]/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocked: ::ffff:169.254.169.254 is an IPv4-mapped address of 169.254.169.254, a cloud metadata address"
    );
    let err = g
        .check_url("http://metadata.google.internal/")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocked: metadata.google.internal is a cloud metadata host name"
    );
}

#[tokio::test]
async fn names_refused_by_name_are_never_sent_to_the_resolver() {
    let (g, r) = hostile_guard();
    for url in [
        "http://metadata.google.internal/",
        "http://METADATA/",
        "http://localhost/",
        "http://x.localhost./",
    ] {
        assert!(g.check_url(url).await.is_err());
        assert!(g.send(Request::get(url)).await.is_err());
    }
    assert_eq!(r.total_lookups(), 0);
}

#[tokio::test]
async fn a_name_with_one_public_and_one_private_answer_is_refused_as_a_whole() {
    let (g, _) = hostile_guard();
    for host in ["mixed.test", "mixed6.test"] {
        let err = g.resolve_checked(host, 443).await.unwrap_err();
        assert!(matches!(err, EgressError::Blocked(_)), "{err}");
    }
}

const HOSTILE_HOSTS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "::ffff:10.0.0.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    " 10.0.0.1 ",
    "localhost",
    "db.localhost",
    "metadata.google.internal.",
    "METADATA",
    "internal.test",
    "internal.test.",
    "mixed.test",
    "imds.test",
    "169.254.169.254",
    "fd00:ec2::254",
    "fe80::1%eth0",
    "[fe80::1%eth0]",
    "fe80::1",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "user@127.0.0.1",
    "",
    "[]",
    "unknown.test",
];

#[tokio::test]
async fn resolve_checked_refuses_hostile_hosts_in_every_spelling() {
    let (g, _) = hostile_guard();
    let mut wrong = Vec::new();
    for host in HOSTILE_HOSTS {
        if let Ok(addrs) = g.resolve_checked(host, 5432).await {
            wrong.push(format!("{host:?} -> {addrs:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn connect_tcp_refuses_hostile_hosts_without_dialling() {
    let (g, _) = hostile_guard();
    for host in HOSTILE_HOSTS {
        let res = g.connect_tcp(host, 5432).await;
        assert!(res.is_err(), "{host:?} was dialled");
    }
}
