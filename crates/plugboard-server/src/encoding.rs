//! Content codings of prepared bodies: which one a request's `Accept-Encoding` asks for (RFC 9110 §12.5.3), and
//! compressing a body with `gzip` or `br`.

use axum::http::{header, HeaderMap};
use bytes::Bytes;

/// A content coding Plugboard can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` value (`None` for identity) and the ETag suffix.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Coding::Br => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

/// What a request accepts: the codings it prefers, best first (only codings with q > 0), and whether the plain
/// body is acceptable at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Best first; `Identity` is listed where the client ranked it (or last when the client did not name it).
    pub ranked: Vec<Coding>,
}

impl Accepted {
    pub fn identity_allowed(&self) -> bool {
        self.ranked.contains(&Coding::Identity)
    }
}

/// A q-value in thousandths (`q=0.5` → 500); `None` when malformed.
fn qvalue(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        let digit = u16::from(b - b'0');
        thousandths += digit * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

/// Parses `Accept-Encoding` (every instance of the header, comma lists, `;q=` weights, `*`, `identity`,
/// `x-gzip` as `gzip`, names in any case). No header: the plain body only (what clients that compress nothing
/// expect). A malformed element is ignored. Among equal weights `br` comes before `gzip`, and both before the plain
/// body.
pub fn accepted(headers: &HeaderMap) -> Accepted {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Accepted {
            ranked: vec![Coding::Identity],
        };
    }
    let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
    for element in values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = element.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(v);
                }
            }
        }
        let Some(q) = q else { continue };
        let slot = match name.as_str() {
            "br" => &mut br,
            "gzip" | "x-gzip" => &mut gzip,
            "identity" => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        // A coding named twice keeps its best weight.
        *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
    }
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    // Not named and not excluded by `*;q=0`: acceptable, ranked after every coding named.
    let (identity, identity_named) = match identity.or(star) {
        Some(q) => (q, true),
        None => (1, false),
    };
    let mut ranked: Vec<(u16, u8, Coding)> = vec![(br, 2, Coding::Br), (gzip, 1, Coding::Gzip)];
    ranked.push((identity, 0, Coding::Identity));
    ranked.retain(|&(q, _, _)| q > 0);
    ranked.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
    if !identity_named {
        // Move the implicit plain body to the end, whatever its nominal weight.
        if let Some(pos) = ranked.iter().position(|r| r.2 == Coding::Identity) {
            let plain = ranked.remove(pos);
            ranked.push(plain);
        }
    }
    Accepted {
        ranked: ranked.into_iter().map(|r| r.2).collect(),
    }
}

/// How hard to compress. Bodies prepared with the catalog are compressed once, in the background; filtered answers
/// when first asked for, so a little quicker. Both stay at moderate settings: brotli above quality 5 allocates tens
/// of MiB of match tables per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Prepared,
    OnDemand,
}

/// The smallest brotli window (10 to 20 bits) that holds `len` bytes: a small body needs no large ring buffer, and
/// a 1 MiB window keeps compressing a multi-MiB list within a few MiB.
fn brotli_window(len: usize) -> i32 {
    let mut bits = 10;
    while bits < 20 && (1usize << bits) - 16 < len {
        bits += 1;
    }
    bits
}

/// Compressor state kept between bodies: compressing thousands of small bodies in a row would otherwise allocate
/// and zero a deflate state (about 300 KiB) per body.
pub struct Compressors {
    gzip: Option<(flate2::Compression, flate2::Compress)>,
}

impl Default for Compressors {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressors {
    pub fn new() -> Compressors {
        Compressors { gzip: None }
    }

    /// `body` in `coding` (`None` only if a compressor failed, which writing to memory does not).
    pub fn compress(&mut self, body: &[u8], coding: Coding, effort: Effort) -> Option<Bytes> {
        match coding {
            Coding::Identity => Some(Bytes::copy_from_slice(body)),
            Coding::Gzip => {
                let level = match effort {
                    Effort::Prepared => flate2::Compression::new(6),
                    Effort::OnDemand => flate2::Compression::new(4),
                };
                let deflate = match &mut self.gzip {
                    Some((l, d)) if *l == level => {
                        d.reset();
                        d
                    }
                    slot => &mut slot.insert((level, flate2::Compress::new(level, false))).1,
                };
                gzip(deflate, body).map(|v| Bytes::from(v.into_boxed_slice()))
            }
            Coding::Br => {
                // Up to 64 KiB, quality 1: its match table is sized to the body (a few KiB), where qualities 2
                // and up allocate and clear 256 KiB to tens of MiB per call.
                let quality = match effort {
                    _ if body.len() <= 64 * 1024 => 1,
                    Effort::Prepared => 5,
                    Effort::OnDemand => 4,
                };
                let params = brotli::enc::BrotliEncoderParams {
                    quality,
                    lgwin: brotli_window(body.len()),
                    size_hint: body.len(),
                    ..Default::default()
                };
                let mut out = Vec::with_capacity(body.len() / 4 + 32);
                brotli::enc::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
                Some(Bytes::from(out.into_boxed_slice()))
            }
        }
    }
}

/// A gzip member (RFC 1952: no name, no time, OS unknown) around `body` deflated with `deflate` (freshly reset).
fn gzip(deflate: &mut flate2::Compress, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 3 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    loop {
        let consumed = usize::try_from(deflate.total_in()).ok()?;
        let rest = body.get(consumed..)?;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(1024));
        }
        match deflate
            .compress_vec(rest, &mut out, flate2::FlushCompress::Finish)
            .ok()?
        {
            flate2::Status::StreamEnd => break,
            flate2::Status::Ok | flate2::Status::BufError => {}
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(body);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&((body.len() & 0xffff_ffff) as u32).to_le_bytes());
    Some(out)
}

/// `body` in `coding` with fresh compressor state.
pub fn compress(body: &[u8], coding: Coding, effort: Effort) -> Option<Bytes> {
    Compressors::new().compress(body, coding, effort)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn ranked(values: &[&str]) -> Vec<Coding> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepted(&h).ranked
    }

    #[test]
    fn accept_encoding_is_ranked_by_q_value_with_br_first_among_equals() {
        use Coding::*;
        assert_eq!(ranked(&[]), [Identity]);
        assert_eq!(ranked(&[""]), [Identity]);
        assert_eq!(ranked(&["gzip, deflate, br"]), [Br, Gzip, Identity]);
        assert_eq!(ranked(&["gzip"]), [Gzip, Identity]);
        assert_eq!(ranked(&["GZIP;Q=0.5, br;q=0.4"]), [Gzip, Br, Identity]);
        assert_eq!(ranked(&["x-gzip"]), [Gzip, Identity]);
        assert_eq!(ranked(&["br;q=0, gzip"]), [Gzip, Identity]);
        assert_eq!(ranked(&["*"]), [Br, Gzip, Identity]);
        assert_eq!(ranked(&["*;q=0.1, gzip;q=0.5"]), [Gzip, Br, Identity]);
        assert_eq!(ranked(&["identity;q=1, gzip;q=0.5"]), [Identity, Gzip]);
        assert_eq!(ranked(&["identity;q=0.2, br;q=0.5"]), [Br, Identity]);
        assert_eq!(ranked(&["identity"]), [Identity]);
        assert_eq!(ranked(&["deflate, compress"]), [Identity]);
        // Refusals.
        assert_eq!(ranked(&["identity;q=0"]), []);
        assert_eq!(ranked(&["*;q=0"]), []);
        assert_eq!(ranked(&["gzip, *;q=0"]), [Gzip]);
        assert_eq!(ranked(&["br, identity;q=0"]), [Br]);
        // Several headers; malformed elements are ignored.
        assert_eq!(ranked(&["gzip;q=0.3", "br;q=0.9"]), [Br, Gzip, Identity]);
        assert_eq!(
            ranked(&["br;q=2, gzip;q=abc, gzip;q=0.4"]),
            [Gzip, Identity]
        );
        assert_eq!(ranked(&["br;q=0.0001"]), [Identity]);
    }

    #[test]
    fn compressed_bodies_decompress_to_the_same_bytes() {
        use std::io::Read;
        let body: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("{{\"id\":\"c{i}\"}},").into_bytes())
            .collect();
        for effort in [Effort::Prepared, Effort::OnDemand] {
            let gz = compress(&body, Coding::Gzip, effort).unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, body);
            let br = compress(&body, Coding::Br, effort).unwrap();
            let mut out = Vec::new();
            brotli::Decompressor::new(&br[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, body);
            assert!(br.len() < body.len() / 4 && gz.len() < body.len() / 4);
        }
        // One set of compressors, reused across bodies of every size.
        let mut reused = Compressors::new();
        for len in [0, 1, 1000, 1008, 1009, 70_000, 300_000] {
            let body: Vec<u8> = (0..len).map(|i| ((i * 7) % 251) as u8).collect();
            for effort in [Effort::Prepared, Effort::OnDemand, Effort::Prepared] {
                let br = reused.compress(&body, Coding::Br, effort).unwrap();
                let mut out = Vec::new();
                brotli::Decompressor::new(&br[..], 4096)
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, body, "{len}");
                let gz = reused.compress(&body, Coding::Gzip, effort).unwrap();
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, body, "{len}");
            }
        }
    }
}
