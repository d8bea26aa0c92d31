//! A connector's mark on a catalog card: its brand colour with an initial in the colour that reads best on it
//! (WCAG contrast), drawn as an inline SVG (presentation attributes, so the page's CSP needs no inline style). A
//! logo given as an https URL is never loaded: a page makes no request to a third party.

use plugboard_catalog::{Manifest, Summary};

pub struct Logo {
    pub initial: String,
    pub background: String,
    pub foreground: &'static str,
    /// A border when the colour is too close to the page's white to see the tile's edge.
    pub border: &'static str,
}

const NEUTRAL: &str = "#57606a";

fn channel(hex: &str) -> Option<f64> {
    let v = u8::from_str_radix(hex, 16).ok()?;
    let c = f64::from(v) / 255.0;
    Some(if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    })
}

/// Relative luminance (WCAG 2) of `#RRGGBB`.
fn luminance(color: &str) -> Option<f64> {
    let hex = color.strip_prefix('#').filter(|h| h.len() == 6)?;
    let r = channel(hex.get(0..2)?)?;
    let g = channel(hex.get(2..4)?)?;
    let b = channel(hex.get(4..6)?)?;
    Some(0.2126 * r + 0.7152 * g + 0.0722 * b)
}

/// WCAG contrast ratio of two luminances.
pub fn contrast(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

pub fn for_manifest(m: &Manifest) -> Logo {
    of(&m.id, &m.name, &m.brand.color)
}

pub fn for_summary(s: &Summary) -> Logo {
    of(&s.id, &s.name, &s.color)
}

fn of(id: &str, name: &str, color: &str) -> Logo {
    let background = if luminance(color).is_some() {
        color.to_ascii_lowercase()
    } else {
        NEUTRAL.to_string()
    };
    let lum = luminance(&background).unwrap_or(0.2);
    // White or near-black, whichever contrasts more with the brand colour.
    let dark = 0.012; // luminance of #1b1f24
    let foreground = if contrast(1.0, lum) >= contrast(dark, lum) {
        "#ffffff"
    } else {
        "#1b1f24"
    };
    let border = if contrast(1.0, lum) < 1.5 {
        "#d0d7de"
    } else {
        "none"
    };
    let initial = name
        .chars()
        .find(|c| c.is_alphanumeric())
        .or_else(|| id.chars().next())
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    Logo {
        initial,
        background,
        foreground,
        border,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_takes_the_colour_that_reads_best_on_the_brand() {
        assert!(contrast(1.0, luminance("#181717").unwrap()) > 4.5);
        let on = |c: &str| {
            let lum = luminance(c).unwrap();
            if contrast(1.0, lum) >= contrast(0.012, lum) {
                "white"
            } else {
                "dark"
            }
        };
        assert_eq!(on("#181717"), "white");
        assert_eq!(on("#ffd500"), "dark");
        assert_eq!(on("#FFFFFF"), "dark");
        assert_eq!(luminance("red"), None);
    }
}
