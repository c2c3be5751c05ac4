//! A small element tree over quick-xml: names, attributes and children
//! with the line each element starts on. Text, comments, processing
//! instructions and the XML declaration carry no meaning in a CIB and are
//! skipped; a DOCTYPE is refused (a CIB never has one, and entity
//! definitions are not expanded).

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::CibError;

/// One element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// 1-based line of its `<`.
    pub line: usize,
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `id`, or the empty string.
    pub fn id(&self) -> &str {
        self.attr("id").unwrap_or("")
    }

    /// The children called `name`.
    pub fn kids<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Element> + use<'a> {
        let name = name.to_string();
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Line and column (1-based, columns in characters) of byte `offset`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut cut = offset;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &text[..cut];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

fn malformed(text: &str, offset: u64, message: impl Into<String>) -> CibError {
    let (line, column) = line_col(text, usize::try_from(offset).unwrap_or(usize::MAX));
    CibError::Malformed {
        line,
        column,
        message: message.into(),
    }
}

fn element(text: &str, at: u64, e: &BytesStart<'_>) -> Result<Element, CibError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs: Vec<(String, String)> = Vec::new();
    for a in e.attributes().with_checks(true) {
        let a = a.map_err(|err| malformed(text, at, format!("in <{name}>: {err}")))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| malformed(text, at, format!("in <{name}> attribute {key}: {err}")))?
            .into_owned();
        attrs.push((key, value));
    }
    let (line, _) = line_col(text, usize::try_from(at).unwrap_or(usize::MAX));
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        line,
    })
}

/// Parses `text` into its root element.
pub(super) fn parse(text: &str) -> Result<Element, CibError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| malformed(text, reader.error_position(), e.to_string()))?;
        // `before` may point at the whitespace before the tag: move to its `<`
        let at = {
            let b = usize::try_from(before)
                .unwrap_or(usize::MAX)
                .min(text.len());
            let skip = text[b..].len() - text[b..].trim_start().len();
            before + skip as u64
        };
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() && stack.is_empty() => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Err(malformed(
                    text,
                    at,
                    format!("a second root element <{name}> after the document's end"),
                ));
            }
            Event::Start(e) => stack.push(element(text, at, &e)?),
            Event::Empty(e) => {
                let el = element(text, at, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(malformed(text, at, "an end tag without its start tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                if (stack.is_empty()) && !raw.trim().is_empty() {
                    return Err(malformed(text, at, "text outside the root element"));
                }
            }
            Event::GeneralRef(_) | Event::CData(_) if stack.is_empty() => {
                return Err(malformed(text, at, "text outside the root element"));
            }
            Event::DocType(_) => {
                return Err(malformed(
                    text,
                    at,
                    "a DOCTYPE declaration (a CIB has none; entities are not expanded)",
                ));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            text,
            text.len() as u64,
            format!(
                "the document ends inside <{}> (opened on line {})",
                open.name, open.line
            ),
        ));
    }
    root.ok_or_else(|| malformed(text, text.len() as u64, "no root element"))
}
