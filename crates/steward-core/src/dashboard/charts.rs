//! Server-side SVG charts: bars of one value per label (a day, a reason).
//! No script, no third party: the page draws with what the browser already
//! has. Labels and titles pass through [`esc`]; numbers are formatted here.

use std::fmt::Write as _;

use super::html::esc;

/// Bars for `(label, value)` pairs, scaled to the largest; `unit` formats a
/// value for its tooltip.
pub fn bars(title: &str, points: &[(String, f64)], unit: impl Fn(f64) -> String) -> String {
    const W: f64 = 320.0;
    const H: f64 = 80.0;
    let max = points.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let n = points.len().max(1) as f64;
    let slot = W / n;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        H + 14.0,
        esc(title),
        esc(title)
    );
    for (i, (label, value)) in points.iter().enumerate() {
        let h = if max > 0.0 { (value / max) * H } else { 0.0 };
        let x = i as f64 * slot + 1.0;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}: {}</title></rect>",
            H - h,
            (slot - 2.0).max(1.0),
            esc(label),
            esc(&unit(*value))
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"axis\">{}</text><text x=\"{W}\" y=\"{}\" class=\"axis\" \
             text-anchor=\"end\">{}</text>",
            H + 12.0,
            esc(&first.0),
            H + 12.0,
            esc(&last.0)
        );
    }
    let _ = write!(svg, "<line class=\"base\" x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\"/>");
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = super::bars("t<", &[("a".into(), 1.0), ("<b>".into(), 2.0)], |v| format!("{v}"));
        assert!(svg.contains("height=\"80.0\""), "{svg}");
        assert!(svg.contains("height=\"40.0\""), "{svg}");
        assert!(svg.contains("&lt;b&gt;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
    }
}
