//! XML answers and timestamps of the XML-speaking services (awsQuery:
//! CloudFormation; restXml: S3): a small writer that escapes every text,
//! and the two date formats their SDKs parse.

use super::xml_escape;
use crate::model::EpochMillis;

/// An XML document being written. Every text and attribute is escaped.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    /// A document starting with the XML declaration.
    pub fn document() -> Xml {
        Xml(String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#))
    }

    /// An empty fragment.
    pub fn new() -> Xml {
        Xml(String::new())
    }

    /// `<tag xmlns="ns">`.
    pub fn open_ns(&mut self, tag: &str, namespace: &str) -> &mut Xml {
        self.0
            .push_str(&format!("<{tag} xmlns=\"{}\">", xml_escape(namespace)));
        self
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &str) -> &mut Xml {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &str) -> &mut Xml {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag>text</tag>`.
    pub fn leaf(&mut self, tag: &str, text: impl AsRef<str>) -> &mut Xml {
        self.open(tag);
        self.0.push_str(&xml_escape(text.as_ref()));
        self.close(tag)
    }

    /// `<tag>text</tag>` when there is a text.
    pub fn leaf_opt(&mut self, tag: &str, text: Option<impl AsRef<str>>) -> &mut Xml {
        if let Some(text) = text {
            self.leaf(tag, text);
        }
        self
    }

    /// Appends an already written fragment.
    pub fn append(&mut self, fragment: Xml) -> &mut Xml {
        self.0.push_str(&fragment.0);
        self
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.0
    }
}

fn utc(ms: EpochMillis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// ISO 8601 in UTC with milliseconds: `2026-12-02T09:29:31.123Z` (XML bodies).
pub fn iso8601(ms: EpochMillis) -> String {
    let t = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// RFC 7231's HTTP date: `Wed, 02 Dec 2026 09:29:31 GMT` (`Last-Modified`).
pub fn http_date(ms: EpochMillis) -> String {
    let t = utc(ms);
    let weekday = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_formatted_as_the_sdks_parse_them() {
        // 2026-12-02T09:29:31.123Z
        let ms = 1_796_203_771_123;
        assert_eq!(iso8601(ms), "2026-12-02T09:29:31.123Z");
        assert_eq!(http_date(ms), "Wed, 02 Dec 2026 09:29:31 GMT");
    }

    #[test]
    fn text_is_escaped() {
        let mut x = Xml::new();
        x.open("A")
            .leaf("B", "<&>")
            .leaf_opt("C", None::<&str>)
            .close("A");
        assert_eq!(x.finish(), "<A><B>&lt;&amp;&gt;</B></A>");
    }
}
