//! Writers for the text exposition format, without `format!`: at 200,000
//! lines per scrape the formatting machinery is the render cost.

use crate::collector::stats::{Histogram, API_LATENCY_BUCKETS, TASK_DURATION_BUCKETS};
use std::sync::LazyLock;

/// Escapes a label value per the text format.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes HELP text per the text format (backslash and newline only).
pub(super) fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `# HELP` and `# TYPE` of one family.
pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(&escape_help(help));
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// A sample value: integers without a fraction, `NaN`, `±Inf`, else the
/// shortest representation that round-trips.
pub(super) fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// `name{labels[,extra]} ` — the part of a sample line before its value.
/// `labels` and `extra` are pre-escaped; `extra` starts with a comma.
fn series(out: &mut String, name: &str, suffix: &str, labels: &str, extra: &str) {
    out.push_str(name);
    out.push_str(suffix);
    if labels.is_empty() && extra.is_empty() {
        out.push(' ');
        return;
    }
    out.push('{');
    if labels.is_empty() {
        out.push_str(extra.strip_prefix(',').unwrap_or(extra));
    } else {
        out.push_str(labels);
        out.push_str(extra);
    }
    out.push_str("} ");
}

/// One sample line with an integer value.
pub(super) fn line(out: &mut String, name: &str, labels: &str, extra: &str, value: u64) {
    series(out, name, "", labels, extra);
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// One sample line with a float value.
pub(super) fn line_f(out: &mut String, name: &str, labels: &str, extra: &str, value: f64) {
    series(out, name, "", labels, extra);
    float(out, value);
    out.push('\n');
}

/// `le="…"} ` of each bound of the project's two bucket sets, formatted
/// once: formatting the bound anew is most of a bucket line's cost.
static LE_TEXT: LazyLock<[BucketTexts; 2]> = LazyLock::new(|| {
    [API_LATENCY_BUCKETS, TASK_DURATION_BUCKETS].map(|bounds| (bounds, le_texts(bounds)))
});

/// A bucket set and its `le` texts.
type BucketTexts = (&'static [f64], Box<[String]>);

fn le_texts(bounds: &[f64]) -> Box<[String]> {
    bounds
        .iter()
        .map(|b| {
            let mut s = String::from(",le=\"");
            float(&mut s, *b);
            s.push_str("\"} ");
            s
        })
        .collect()
}

/// The `_bucket`, `_sum` and `_count` lines of one histogram.
pub(super) fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let bounds = h.bounds();
    let own;
    let le = match LE_TEXT.iter().find(|(b, _)| *b == bounds) {
        Some((_, le)) => le,
        None => {
            own = le_texts(bounds);
            &own
        }
    };
    let (count, sum) = h.each_bucket(|i, c| {
        out.push_str(name);
        out.push_str("_bucket{");
        out.push_str(labels);
        out.push_str(&le[i]);
        out.push_str(itoa::Buffer::new().format(c));
        out.push('\n');
    });
    series(out, name, "_bucket", labels, ",le=\"+Inf\"");
    out.push_str(itoa::Buffer::new().format(count));
    out.push('\n');
    series(out, name, "_sum", labels, "");
    float(out, sum);
    out.push('\n');
    series(out, name, "_count", labels, "");
    out.push_str(itoa::Buffer::new().format(count));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_labels_are_written_per_the_text_format() {
        let mut out = String::new();
        for v in [0.0, 3.0, 0.25, f64::NAN, f64::INFINITY, -2.5, 1e20] {
            float(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "0 3 0.25 NaN +Inf -2.5 1e20 ");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        line(&mut out, "m", "a=\"1\"", ",b=\"2\"", 7);
        line(&mut out, "m", "", ",b=\"2\"", 7);
        line_f(&mut out, "m", "", "", 0.5);
        assert_eq!(out, "m{a=\"1\",b=\"2\"} 7\nm{b=\"2\"} 7\nm 0.5\n");
        let mut out = String::new();
        header(&mut out, "m", "gauge", "one\\two\nthree");
        assert_eq!(out, "# HELP m one\\\\two\\nthree\n# TYPE m gauge\n");
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let h = Histogram::new(&[1.0, 2.5]);
        h.observe(0.5);
        h.observe(2.0);
        h.observe(9.0);
        let mut out = String::new();
        histogram(&mut out, "h", "a=\"x\"", &h);
        assert_eq!(
            out,
            "h_bucket{a=\"x\",le=\"1\"} 1\nh_bucket{a=\"x\",le=\"2.5\"} 2\n\
             h_bucket{a=\"x\",le=\"+Inf\"} 3\nh_sum{a=\"x\"} 11.5\nh_count{a=\"x\"} 3\n"
        );
    }
}
