//! The XML bodies S3 clients send (`CreateBucketConfiguration`,
//! `CompleteMultipartUpload`, `Delete`), read with quick-xml into leaves:
//! a malformed body is S3's `MalformedXML`, never a panic.

use super::ApiError;
use quick_xml::events::Event;
use std::collections::BTreeMap;

/// The largest XML body read (a `Delete` of 1,000 keys of 1 KiB fits).
const MAX_XML_BODY: usize = 2 << 20;

/// A body's leaf elements: those inside a `group` element (one map per
/// occurrence, e.g. each `<Part>`), and the others by name.
#[derive(Debug, Default)]
pub(super) struct XmlBody {
    leaves: BTreeMap<String, String>,
    pub groups: Vec<BTreeMap<String, String>>,
}

impl XmlBody {
    /// The text of the leaf `name` outside the groups.
    pub fn leaf(&self, name: &str) -> Option<&str> {
        self.leaves.get(name).map(String::as_str)
    }
}

fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        400,
        "MalformedXML",
        format!("The XML you provided was not well-formed or did not validate against our published schema: {detail}"),
    )
}

/// Reads `body`; elements named `group` start a new group (`""`: none).
pub(super) fn read(body: &[u8], group: &str) -> Result<XmlBody, ApiError> {
    if body.len() > MAX_XML_BODY {
        return Err(malformed(format!(
            "the body is {} bytes, more than {MAX_XML_BODY}",
            body.len()
        )));
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut out = XmlBody::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut in_group = false;
    let mut root_seen = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(malformed)?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if root_seen {
                        return Err(malformed("more than one root element"));
                    }
                    root_seen = true;
                }
                if !group.is_empty() && name == group {
                    in_group = true;
                    out.groups.push(BTreeMap::new());
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if root_seen {
                        return Err(malformed("more than one root element"));
                    }
                    root_seen = true;
                } else if in_group {
                    if let Some(g) = out.groups.last_mut() {
                        g.insert(name, String::new());
                    }
                } else {
                    out.leaves.insert(name, String::new());
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(malformed)?),
            Event::CData(t) => text.push_str(&t.decode().map_err(malformed)?),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(malformed)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                text.push_str(&resolved);
            }
            Event::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(malformed("a closing tag without its opening tag"));
                };
                if !group.is_empty() && name == group {
                    in_group = false;
                } else if in_group {
                    if let Some(g) = out.groups.last_mut() {
                        g.insert(name, std::mem::take(&mut text));
                    }
                } else {
                    out.leaves.insert(name, std::mem::take(&mut text));
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(malformed(format!("<{}> is never closed", path.join("><"))));
    }
    if !root_seen {
        return Err(malformed("the body holds no element"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_in_order_with_entities_resolved() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
            <CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Part><ETag>&quot;a1&quot;</ETag><PartNumber>1</PartNumber></Part>
              <Part><PartNumber>2</PartNumber><ETag>"b2"</ETag></Part>
            </CompleteMultipartUpload>"#;
        let doc = read(body, "Part").unwrap();
        assert_eq!(doc.groups.len(), 2);
        assert_eq!(doc.groups[0]["ETag"], "\"a1\"");
        assert_eq!(doc.groups[1]["PartNumber"], "2");
    }

    #[test]
    fn malformed_bodies_are_refused_not_panicked_on() {
        for body in [
            &b"<A><B>1</A>"[..],
            b"<A>",
            b"not xml",
            b"<A/><B/>",
            b"<A>&bogus;</A>",
            b"\xff\xfe<A/>",
        ] {
            let err = read(body, "Part").unwrap_err();
            assert_eq!(
                err.code,
                "MalformedXML",
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
