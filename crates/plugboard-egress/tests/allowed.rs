//! Destinations the guard lets through, and what `allow_cidrs` can and cannot open. No connection is made here.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{guard, StubResolver};
use plugboard_egress::{parse_allow_cidrs, EgressConfig, EgressError, IpNet};

#[tokio::test]
async fn public_ip_literals_pass_without_any_lookup() {
    let r = StubResolver::new();
    let g = guard("", r.clone());
    for url in [
        "http://93.184.216.34/",
        "https://8.8.8.8:8443/path?q=1",
        "https://[2606:4700:4700::1111]/",
        "http://[2a00:1450:4001:80b::200e]:8080/",
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::808:808]/",
        "http://[2002:808:808::1]/",
        "http://134744072/",
    ] {
        let checked = g.check_url(url).await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
    }
    assert_eq!(r.total_lookups(), 0);
}

#[tokio::test]
async fn a_name_with_only_public_answers_resolves_to_those_addresses() {
    let r = StubResolver::new().with(
        "api.example.test",
        &[
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "93.184.216.34",
        ],
    );
    let g = guard("", r.clone());
    let addrs = g.resolve_checked("api.example.test", 443).await.unwrap();
    let expected: Vec<SocketAddr> = vec![
        "93.184.216.34:443".parse().unwrap(),
        "[2606:2800:220:1:248:1893:25c8:1946]:443".parse().unwrap(),
    ];
    assert_eq!(addrs, expected);
    assert!(g.check_url("https://API.Example.test./v1").await.is_ok());
    assert!(g.check_url("https://api.example.test:8443/").await.is_ok());
}

#[tokio::test]
async fn an_ipv4_mapped_answer_is_dialled_as_plain_ipv4() {
    let r = StubResolver::new().with("m.test", &["::ffff:93.184.216.34"]);
    let g = guard("", r);
    let addrs = g.resolve_checked("m.test", 80).await.unwrap();
    assert_eq!(
        addrs,
        vec!["93.184.216.34:80".parse::<SocketAddr>().unwrap()]
    );
}

#[tokio::test]
async fn an_international_name_is_resolved_in_its_ascii_form() {
    let r = StubResolver::new().with("xn--bcher-kva.test", &["93.184.216.34"]);
    let g = guard("", r.clone());
    assert!(g.check_url("https://bücher.test/").await.is_ok());
    assert_eq!(r.lookups("xn--bcher-kva.test"), 1);
}

#[tokio::test]
async fn allowing_127_0_0_0_8_opens_loopback_in_every_spelling_and_nothing_else() {
    let r = StubResolver::new()
        .with("loop.test", &["127.0.0.2"])
        .with("loop6.test", &["::1"]);
    let g = guard("127.0.0.0/8", r.clone());
    for url in [
        "http://127.0.0.1/",
        "http://127.1:8080/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://localhost:3000/",
        "http://api.localhost/",
        "http://loop.test/",
    ] {
        let checked = g.check_url(url).await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
    }
    assert_eq!(r.lookups("localhost"), 0, "localhost is never sent to DNS");
    for url in [
        "http://[::1]/",
        "http://loop6.test/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://metadata.google.internal/",
    ] {
        let checked = g.check_url(url).await;
        assert!(
            matches!(checked, Err(EgressError::Blocked(_))),
            "{url}: {checked:?}"
        );
    }
    assert_eq!(
        g.resolve_checked("localhost", 5432).await.unwrap(),
        vec!["127.0.0.1:5432".parse::<SocketAddr>().unwrap()]
    );
}

#[tokio::test]
async fn allowing_a_private_network_opens_it_and_its_ipv6_wrappings() {
    let r = StubResolver::new().with("db.internal.test", &["10.1.2.3"]);
    let g = guard("10.0.0.0/8, fd00::/8", r);
    for url in [
        "http://10.1.2.3/",
        "http://db.internal.test:5432/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/",
        "http://[fd12::1]/",
    ] {
        let checked = g.check_url(url).await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
    }
    for url in [
        "http://192.168.0.1/",
        "http://[fd00:ec2::254]/",
        "http://[fc00::1]/",
    ] {
        assert!(g.check_url(url).await.is_err(), "{url}");
    }
}

#[tokio::test]
async fn allowing_everything_still_never_opens_the_hard_blocked_ranges() {
    let r = StubResolver::new()
        .with("imds.test", &["169.254.169.254"])
        .with("mcast.test", &["224.0.0.1"]);
    let g = guard("0.0.0.0/0, ::/0", r);
    for url in [
        "http://169.254.169.254/",
        "http://169.254.170.2/",
        "http://169.254.1.1/",
        "http://100.100.100.200/",
        "http://224.0.0.1/",
        "http://239.1.2.3/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://0.0.0.0/",
        "http://0.1.2.3/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[ff02::1]/",
        "http://[fd00:ec2::254]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::e000:1]/",
        "http://[4000::1]/",
        "http://metadata.google.internal/",
        "http://instance-data/",
        "http://imds.test/",
        "http://mcast.test/",
    ] {
        let checked = g.check_url(url).await;
        assert!(
            matches!(checked, Err(EgressError::Blocked(_))),
            "{url}: {checked:?}"
        );
    }
    let msg = g
        .check_url("http://169.254.169.254/")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "blocked: 169.254.169.254 is a cloud metadata address and can never be allowed"
    );
    for url in [
        "http://10.0.0.1/",
        "http://127.0.0.1/",
        "http://100.64.0.1/",
        "http://192.0.2.1/",
        "http://[::1]/",
        "http://[fc00::1]/",
    ] {
        let checked = g.check_url(url).await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
    }
}

#[test]
fn check_ip_answers_for_single_addresses() {
    let g = guard("192.168.0.0/16", StubResolver::new());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(g.check_ip(ip("1.1.1.1")).is_ok());
    assert!(g.check_ip(ip("192.168.4.4")).is_ok());
    assert_eq!(
        g.check_ip(ip("172.16.0.1")).unwrap_err().to_string(),
        "blocked: 172.16.0.1 is a private address (RFC 1918)"
    );
}

#[test]
fn parse_allow_cidrs_accepts_lists_bare_addresses_and_blank_input() {
    assert_eq!(parse_allow_cidrs("").unwrap(), Vec::<IpNet>::new());
    assert_eq!(parse_allow_cidrs("  ,  ").unwrap(), Vec::<IpNet>::new());
    let nets = parse_allow_cidrs(" 10.0.0.0/8 ,192.168.1.10,  fd00::/8,::1 ,").unwrap();
    let expected: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.10/32", "fd00::/8", "::1/128"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nets, expected);
    assert_eq!(
        parse_allow_cidrs("10.1.2.3/8").unwrap(),
        vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn parse_allow_cidrs_names_the_bad_item() {
    for (input, bad) in [
        ("10.0.0.0/8, banana", "banana"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("10.0.0.0/8;192.168.0.0/16", "10.0.0.0/8;192.168.0.0/16"),
        ("localhost", "localhost"),
    ] {
        let err = parse_allow_cidrs(input).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn the_default_config_matches_the_contract() {
    let c = EgressConfig::default();
    assert!(c.allow_cidrs.is_empty());
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.total_timeout, Duration::from_secs(10));
    assert_eq!(c.max_response_bytes, 1024 * 1024);
    assert_eq!(c.max_redirects, 5);
}

#[test]
fn the_connect_timeout_never_exceeds_the_total_timeout() {
    let c = EgressConfig {
        total_timeout: Duration::from_millis(300),
        ..EgressConfig::default()
    };
    assert_eq!(c.effective_connect_timeout(), Duration::from_millis(300));
}

#[test]
fn debug_output_of_a_request_shows_no_secrets() {
    let req = plugboard_egress::Request::post("https://u:SECRET@api.test/x?token=SECRET", "SECRET")
        .header("Authorization", "Bearer SECRET");
    let shown = format!("{req:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("api.test"), "{shown}");
    assert!(shown.contains("Authorization"), "{shown}");
}
