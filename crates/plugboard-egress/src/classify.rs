//! The address classifier: which IP addresses are not public, and why.
//!
//! The lists follow the IANA IPv4 and IPv6 special-purpose address registries (std's `is_global` is unstable).
//! IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are unwrapped and the embedded
//! address is classified, so `::ffff:10.0.0.1` gets the same verdict as `10.0.0.1`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64.0.0/10, RFC 6598.
    CarrierGradeNat,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Cloud instance-metadata endpoints (AWS, GCP, Azure, Alibaba, ECS, Oracle).
    CloudMetadata,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 240.0.0.0/4, and IPv6 outside the global unicast block 2000::/3.
    Reserved,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18.0.0/15, RFC 2544.
    Benchmarking,
    /// 192.0.0.0/24 and 2001::/23.
    ProtocolAssignment,
    /// 192.88.99.0/24 (deprecated 6to4 relay anycast).
    Relay6to4,
    /// 100::/64.
    Discard,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10 (deprecated).
    SiteLocal,
    /// 2001::/32: the client address is obfuscated, so it is refused outright.
    Teredo,
    /// 5f00::/16, SRv6 segment identifiers.
    SegmentRouting,
    /// 64:ff9b:1::/48, local-use NAT64.
    LocalNat64,
}

impl Category {
    /// Hard-blocked categories can never be opened by `allow_cidrs`.
    pub fn is_hard_blocked(self) -> bool {
        matches!(
            self,
            Category::Unspecified
                | Category::LinkLocal
                | Category::CloudMetadata
                | Category::Multicast
                | Category::Reserved
                | Category::Broadcast
                | Category::Teredo
        )
    }

    /// A short snake_case label (for metrics), e.g. `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Unspecified => "unspecified",
            Category::Loopback => "loopback",
            Category::Private => "private",
            Category::CarrierGradeNat => "carrier_grade_nat",
            Category::LinkLocal => "link_local",
            Category::CloudMetadata => "cloud_metadata",
            Category::Multicast => "multicast",
            Category::Reserved => "reserved",
            Category::Broadcast => "broadcast",
            Category::Documentation => "documentation",
            Category::Benchmarking => "benchmarking",
            Category::ProtocolAssignment => "protocol_assignment",
            Category::Relay6to4 => "relay_6to4",
            Category::Discard => "discard",
            Category::UniqueLocal => "unique_local",
            Category::SiteLocal => "site_local",
            Category::Teredo => "teredo",
            Category::SegmentRouting => "segment_routing",
            Category::LocalNat64 => "local_nat64",
        }
    }

    /// Every category, in declaration order.
    pub const ALL: [Category; 19] = [
        Category::Unspecified,
        Category::Loopback,
        Category::Private,
        Category::CarrierGradeNat,
        Category::LinkLocal,
        Category::CloudMetadata,
        Category::Multicast,
        Category::Reserved,
        Category::Broadcast,
        Category::Documentation,
        Category::Benchmarking,
        Category::ProtocolAssignment,
        Category::Relay6to4,
        Category::Discard,
        Category::UniqueLocal,
        Category::SiteLocal,
        Category::Teredo,
        Category::SegmentRouting,
        Category::LocalNat64,
    ];

    /// A noun phrase with its article, e.g. "a private address (RFC 1918)".
    pub fn describe(self) -> &'static str {
        match self {
            Category::Unspecified => "an unspecified address",
            Category::Loopback => "a loopback address",
            Category::Private => "a private address (RFC 1918)",
            Category::CarrierGradeNat => {
                "a carrier-grade NAT address (shared address space, RFC 6598)"
            }
            Category::LinkLocal => "a link-local address",
            Category::CloudMetadata => "a cloud metadata address",
            Category::Multicast => "a multicast address",
            Category::Reserved => "a reserved address",
            Category::Broadcast => "the broadcast address",
            Category::Documentation => "a documentation address",
            Category::Benchmarking => "a benchmarking address (RFC 2544)",
            Category::ProtocolAssignment => "an IETF protocol assignment address",
            Category::Relay6to4 => "a 6to4 relay anycast address",
            Category::Discard => "a discard-only address",
            Category::UniqueLocal => "a unique local address (IPv6 ULA)",
            Category::SiteLocal => "a site-local address",
            Category::Teredo => "a Teredo tunnelling address",
            Category::SegmentRouting => "a segment routing (SRv6) address",
            Category::LocalNat64 => "a local-use NAT64 address",
        }
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// ::ffff:0:0/96
    Mapped,
    /// ::/96 (deprecated IPv4-compatible)
    Compatible,
    /// 64:ff9b::/96 and 64:ff9b:1::/48
    Nat64,
    /// 2002::/16
    SixToFour,
}

impl Embedding {
    fn describe(self) -> &'static str {
        match self {
            Embedding::Mapped => "an IPv4-mapped address of",
            Embedding::Compatible => "an IPv4-compatible address of",
            Embedding::Nat64 => "a NAT64 address embedding",
            Embedding::SixToFour => "a 6to4 address embedding",
        }
    }
}

/// A refused address and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockedAddr {
    /// The address as given.
    pub addr: IpAddr,
    /// The category of the address (of the embedded IPv4 address, when there is one).
    pub category: Category,
    /// Set when `addr` is an IPv6 form carrying this IPv4 address, which is what was classified.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl BlockedAddr {
    /// The address `allow_cidrs` is matched against: the embedded IPv4 address when there is one.
    pub fn subject(&self) -> IpAddr {
        match self.embedded {
            Some((_, v4)) => IpAddr::V4(v4),
            None => self.addr,
        }
    }

    /// "10.0.0.1, a private address (RFC 1918)": for use after "resolves to".
    pub fn appositive(&self) -> String {
        format!("{}, {}", self.addr, self.what())
    }

    fn what(&self) -> String {
        match self.embedded {
            Some((how, v4)) => format!("{} {v4}, {}", how.describe(), self.category.describe()),
            None => self.category.describe().to_owned(),
        }
    }
}

impl fmt::Display for BlockedAddr {
    /// "10.0.0.1 is a private address (RFC 1918)"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}", self.addr, self.what())
    }
}

/// Classifies an address: `None` when it is public, otherwise why it is not.
pub fn classify(ip: IpAddr) -> Option<BlockedAddr> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|category| BlockedAddr {
            addr: ip,
            category,
            embedded: None,
        }),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// `(network, prefix length, category)`; the first match wins, so specific entries come first.
const V4_TABLE: &[([u8; 4], u8, Category)] = &[
    ([169, 254, 169, 254], 32, Category::CloudMetadata), // AWS, GCP, Azure, OCI IMDS
    ([169, 254, 170, 2], 32, Category::CloudMetadata),   // AWS ECS task metadata
    ([100, 100, 100, 200], 32, Category::CloudMetadata), // Alibaba Cloud
    ([168, 63, 129, 16], 32, Category::CloudMetadata),   // Azure WireServer
    ([192, 0, 0, 192], 32, Category::CloudMetadata),     // Oracle Cloud (legacy)
    ([255, 255, 255, 255], 32, Category::Broadcast),
    ([0, 0, 0, 0], 8, Category::Unspecified),
    ([10, 0, 0, 0], 8, Category::Private),
    ([100, 64, 0, 0], 10, Category::CarrierGradeNat),
    ([127, 0, 0, 0], 8, Category::Loopback),
    ([169, 254, 0, 0], 16, Category::LinkLocal),
    ([172, 16, 0, 0], 12, Category::Private),
    ([192, 0, 0, 0], 24, Category::ProtocolAssignment),
    ([192, 0, 2, 0], 24, Category::Documentation),
    ([192, 88, 99, 0], 24, Category::Relay6to4),
    ([192, 168, 0, 0], 16, Category::Private),
    ([198, 18, 0, 0], 15, Category::Benchmarking),
    ([198, 51, 100, 0], 24, Category::Documentation),
    ([203, 0, 113, 0], 24, Category::Documentation),
    ([224, 0, 0, 0], 4, Category::Multicast),
    ([240, 0, 0, 0], 4, Category::Reserved),
];

fn in_v4(addr: u32, net: [u8; 4], len: u8) -> bool {
    let net = u32::from_be_bytes(net);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Category> {
    let a = u32::from(ip);
    V4_TABLE
        .iter()
        .find(|(net, len, _)| in_v4(a, *net, *len))
        .map(|(_, _, c)| *c)
}

fn in_v6(addr: u128, net: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

fn embedded(ip: Ipv6Addr, how: Embedding, v4: Ipv4Addr) -> Option<BlockedAddr> {
    classify_v4(v4).map(|category| BlockedAddr {
        addr: IpAddr::V6(ip),
        category,
        embedded: Some((how, v4)),
    })
}

fn low_v4(a: u128) -> Ipv4Addr {
    // Truncation is the point: the low 32 bits.
    Ipv4Addr::from((a & 0xffff_ffff) as u32)
}

const fn v6(segments: [u16; 8]) -> u128 {
    let mut out = 0u128;
    let mut i = 0;
    while i < 8 {
        out = (out << 16) | segments[i] as u128;
        i += 1;
    }
    out
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockedAddr> {
    let a = u128::from(ip);
    let plain = |category| {
        Some(BlockedAddr {
            addr: IpAddr::V6(ip),
            category,
            embedded: None,
        })
    };
    if a == 0 {
        return plain(Category::Unspecified);
    }
    if a == 1 {
        return plain(Category::Loopback);
    }
    if in_v6(a, v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96) {
        return embedded(ip, Embedding::Mapped, low_v4(a));
    }
    if in_v6(a, 0, 96) {
        return embedded(ip, Embedding::Compatible, low_v4(a));
    }
    if in_v6(a, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96) {
        return embedded(ip, Embedding::Nat64, low_v4(a));
    }
    if in_v6(a, v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48) {
        // Local-use NAT64: where the IPv4 address sits depends on the operator's prefix length. Refuse it; when the
        // common /96 layout carries a non-public address, say that.
        return embedded(ip, Embedding::Nat64, low_v4(a)).or_else(|| plain(Category::LocalNat64));
    }
    if a == v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]) {
        return plain(Category::CloudMetadata);
    }
    if in_v6(a, v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64) {
        return plain(Category::Discard);
    }
    if in_v6(a, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32) {
        return plain(Category::Teredo);
    }
    if in_v6(a, v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32) {
        return plain(Category::Documentation);
    }
    if in_v6(a, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23) {
        return plain(Category::ProtocolAssignment);
    }
    if in_v6(a, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
        let v4 = Ipv4Addr::from(((a >> 80) & 0xffff_ffff) as u32);
        return embedded(ip, Embedding::SixToFour, v4);
    }
    if in_v6(a, v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20) {
        return plain(Category::Documentation);
    }
    if in_v6(a, v6([0x5f00, 0, 0, 0, 0, 0, 0, 0]), 16) {
        return plain(Category::SegmentRouting);
    }
    if in_v6(a, v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7) {
        return plain(Category::UniqueLocal);
    }
    if in_v6(a, v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10) {
        return plain(Category::LinkLocal);
    }
    if in_v6(a, v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10) {
        return plain(Category::SiteLocal);
    }
    if in_v6(a, v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8) {
        return plain(Category::Multicast);
    }
    if !in_v6(a, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        return plain(Category::Reserved);
    }
    None
}

/// Host names refused by name, before any DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameVerdict {
    /// Cloud metadata names: hard-blocked.
    Metadata,
    /// `localhost` and `*.localhost`: loopback by definition (RFC 6761); never sent to DNS.
    Localhost,
}

const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// `name` must already be lower-case ASCII (as `url::Host::parse` leaves it); trailing dots are ignored.
pub(crate) fn classify_name(name: &str) -> Option<NameVerdict> {
    let name = name.trim_end_matches('.');
    if METADATA_NAMES.iter().any(|m| name.eq_ignore_ascii_case(m)) {
        return Some(NameVerdict::Metadata);
    }
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(NameVerdict::Localhost);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_address_is_described_with_its_rfc() {
        let b = classify("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(b.to_string(), "10.0.0.1 is a private address (RFC 1918)");
    }

    #[test]
    fn a_mapped_address_names_the_embedded_address() {
        let b = classify("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            b.to_string(),
            "::ffff:127.0.0.1 is an IPv4-mapped address of 127.0.0.1, a loopback address"
        );
    }

    #[test]
    fn a_6to4_address_unwraps_the_right_bits() {
        let b = classify("2002:a00:1::".parse().unwrap()).unwrap();
        assert_eq!(
            b.embedded,
            Some((Embedding::SixToFour, Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert!(classify("2002:808:808::1".parse().unwrap()).is_none());
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert_eq!(classify(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn names_are_matched_case_insensitively_without_trailing_dots() {
        assert_eq!(
            classify_name("METADATA.GOOGLE.INTERNAL."),
            Some(NameVerdict::Metadata)
        );
        assert_eq!(classify_name("a.b.LOCALHOST"), Some(NameVerdict::Localhost));
        assert_eq!(classify_name("notlocalhost"), None);
        assert_eq!(classify_name("metadata.example.com"), None);
    }
}
