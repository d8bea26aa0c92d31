//! Properties of the classifier and of `allow_cidrs`.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use common::StubResolver;
use plugboard_egress::{classify, parse_allow_cidrs, EgressConfig, Guard, IpNet};
use proptest::prelude::*;

const V4_BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "100.100.100.200/32",
];

const V6_BLOCKED: &[&str] = &[
    "::/128",
    "::1/128",
    "100::/64",
    "2001::/23",
    "2001::/32",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "64:ff9b:1::/48",
    "fd00:ec2::254/128",
    "4000::/2",
];

const V4_HARD: &[&str] = &[
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "100.100.100.200/32",
];

const V6_HARD: &[&str] = &[
    "::/128",
    "fe80::/10",
    "ff00::/8",
    "2001::/32",
    "fd00:ec2::254/128",
    "8000::/2",
    "e000::/4",
];

fn default_guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| {
        Guard::with_resolver(EgressConfig::default(), StubResolver::new()).expect("guard")
    })
}

fn pick_in(net: &str, bits: u128) -> IpAddr {
    match net.parse::<IpNet>().expect("test net") {
        IpNet::V4(n) => {
            let host = u32::from(n.hostmask()) & (bits as u32);
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
        }
        IpNet::V6(n) => {
            let host = u128::from(n.hostmask()) & bits;
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
        }
    }
}

fn mapped(v4: Ipv4Addr) -> IpAddr {
    IpAddr::V6(v4.to_ipv6_mapped())
}

fn nat64(v4: Ipv4Addr) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(
        (0x64_ff9b_u128 << 96) | u128::from(u32::from(v4)),
    ))
}

fn six_to_four(v4: Ipv4Addr, low: u128) -> IpAddr {
    let low = low & ((1u128 << 80) - 1);
    IpAddr::V6(Ipv6Addr::from(
        (0x2002_u128 << 112) | (u128::from(u32::from(v4)) << 80) | low,
    ))
}

/// Half the time an address inside a blocked range, otherwise any address.
fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from),
        (0..V4_BLOCKED.len(), any::<u128>()).prop_map(|(i, bits)| {
            match pick_in(V4_BLOCKED[i], bits) {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            }
        }),
    ]
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from(a), l).expect("valid prefix")
        )),
        (any::<u128>(), 0u8..=128).prop_map(|(a, l)| IpNet::V6(
            ipnet::Ipv6Net::new(Ipv6Addr::from(a), l).expect("valid prefix")
        )),
    ]
}

fn guard_allowing(nets: Vec<IpNet>) -> Guard {
    let cfg = EgressConfig {
        allow_cidrs: nets,
        ..EgressConfig::default()
    };
    Guard::with_resolver(cfg, StubResolver::new()).expect("guard")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_address_in_a_blocked_ipv4_range_is_refused(i in 0..V4_BLOCKED.len(), bits in any::<u128>()) {
        let ip = pick_in(V4_BLOCKED[i], bits);
        prop_assert!(default_guard().check_ip(ip).is_err(), "{} was allowed", ip);
        if let IpAddr::V4(v4) = ip {
            let wrapped = mapped(v4);
            prop_assert!(default_guard().check_ip(wrapped).is_err(), "{} was allowed", wrapped);
        }
    }

    #[test]
    fn every_address_in_a_blocked_ipv6_range_is_refused(i in 0..V6_BLOCKED.len(), bits in any::<u128>()) {
        let ip = pick_in(V6_BLOCKED[i], bits);
        prop_assert!(default_guard().check_ip(ip).is_err(), "{} was allowed", ip);
    }

    #[test]
    fn an_embedded_ipv4_address_gets_the_verdict_of_the_ipv4_address(v4 in arb_v4(), low in any::<u128>(), allow in proptest::collection::vec(arb_net(), 0..4)) {
        let g = guard_allowing(allow);
        let plain = g.check_ip(IpAddr::V4(v4)).is_ok();
        for wrapped in [mapped(v4), nat64(v4), six_to_four(v4, low)] {
            prop_assert_eq!(g.check_ip(wrapped).is_ok(), plain, "{} vs {}", wrapped, v4);
            prop_assert_eq!(
                classify(wrapped).map(|b| b.category),
                classify(IpAddr::V4(v4)).map(|b| b.category)
            );
        }
    }

    #[test]
    fn an_address_in_public_ipv4_space_wrapped_in_ipv6_is_public_too(a in 0x0800_0000u32..0x0a00_0000) {
        // 8.0.0.0 - 9.255.255.255 holds no special-purpose range.
        let v4 = Ipv4Addr::from(a);
        prop_assert!(default_guard().check_ip(IpAddr::V4(v4)).is_ok());
        prop_assert!(default_guard().check_ip(mapped(v4)).is_ok());
        prop_assert!(default_guard().check_ip(nat64(v4)).is_ok());
    }

    #[test]
    fn allow_cidrs_never_opens_a_hard_blocked_address(
        allow in proptest::collection::vec(arb_net(), 0..6),
        everything in any::<bool>(),
        v4 in any::<bool>(),
        i in 0usize..64,
        bits in any::<u128>(),
        wrap in 0u8..3,
    ) {
        let mut allow = allow;
        if everything {
            allow.extend(parse_allow_cidrs("0.0.0.0/0, ::/0").expect("nets"));
        }
        let ip = if v4 {
            let IpAddr::V4(a) = pick_in(V4_HARD[i % V4_HARD.len()], bits) else { unreachable!() };
            match wrap {
                0 => IpAddr::V4(a),
                1 => mapped(a),
                _ => nat64(a),
            }
        } else {
            pick_in(V6_HARD[i % V6_HARD.len()], bits)
        };
        let g = guard_allowing(allow);
        prop_assert!(g.check_ip(ip).is_err(), "{} was opened", ip);
    }

    #[test]
    fn the_classifier_never_panics(bits in any::<u128>(), a in any::<u32>()) {
        let _ = classify(IpAddr::V6(Ipv6Addr::from(bits)));
        let _ = classify(IpAddr::V4(Ipv4Addr::from(a)));
        let _ = default_guard().check_ip(IpAddr::V6(Ipv6Addr::from(bits)));
        let _ = default_guard().check_ip(IpAddr::V4(Ipv4Addr::from(a)));
    }

    #[test]
    fn parse_allow_cidrs_never_panics(s in ".{0,80}") {
        let _ = parse_allow_cidrs(&s);
    }

    #[test]
    fn checking_arbitrary_urls_and_hosts_never_panics(
        s in ".{0,60}",
        url in "(https?|ftp|file)://[a-zA-Z0-9.:\\[\\]%@_\\-]{0,40}(/[a-z?=&]{0,10})?",
    ) {
        let rt = runtime();
        rt.block_on(async {
            let g = default_guard();
            let _ = g.check_url(&s).await;
            let _ = g.check_url(&url).await;
            let _ = g.resolve_checked(&s, 80).await;
        });
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}
