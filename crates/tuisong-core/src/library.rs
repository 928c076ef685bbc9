//! The public template library (公共模板库) shipped with the server as data
//! (`data/library.json`): categories, titles and their keywords with rules and examples.
//! It is read-only; an app picks a title and some keywords to make a private template.

use crate::keyword::Rule;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// One-time (2) or long-term (3), as `type` in every template API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum TemplateKind {
    OneTime,
    LongTerm,
}

impl TemplateKind {
    pub fn code(self) -> u8 {
        match self {
            TemplateKind::OneTime => 2,
            TemplateKind::LongTerm => 3,
        }
    }
}

impl TryFrom<u8> for TemplateKind {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            2 => Ok(TemplateKind::OneTime),
            3 => Ok(TemplateKind::LongTerm),
            other => Err(format!("template type must be 2 or 3, got {other}")),
        }
    }
}

impl From<TemplateKind> for u8 {
    fn from(k: TemplateKind) -> u8 {
        k.code()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyword {
    pub kid: u32,
    pub name: String,
    pub example: String,
    pub rule: Rule,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<String>,
}

impl Keyword {
    /// The placeholder key used in `data` of a send, e.g. `thing1`.
    pub fn key(&self) -> String {
        crate::keyword::placeholder_key(self.rule, self.kid)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubTemplate {
    pub tid: u32,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: TemplateKind,
    pub category_id: u32,
    pub keywords: Vec<Keyword>,
}

impl PubTemplate {
    pub fn keyword(&self, kid: u32) -> Option<&Keyword> {
        self.keywords.iter().find(|k| k.kid == kid)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryFile {
    categories: Vec<Category>,
    templates: Vec<PubTemplate>,
}

#[derive(Debug)]
pub struct Library {
    pub categories: Vec<Category>,
    pub templates: Vec<PubTemplate>,
    by_tid: HashMap<u32, usize>,
}

static BUILTIN: OnceLock<Library> = OnceLock::new();

impl Library {
    pub fn from_json(text: &str) -> Result<Library, serde_json::Error> {
        let file: LibraryFile = serde_json::from_str(text)?;
        let by_tid = file
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| (t.tid, i))
            .collect();
        Ok(Library {
            categories: file.categories,
            templates: file.templates,
            by_tid,
        })
    }

    /// The library compiled into the binary. Its validity is a unit test, so this cannot
    /// fail on a build that passed its tests.
    #[allow(clippy::expect_used)]
    pub fn builtin() -> &'static Library {
        BUILTIN.get_or_init(|| {
            Library::from_json(include_str!("../data/library.json"))
                .expect("data/library.json is checked by library::tests")
        })
    }

    pub fn template(&self, tid: u32) -> Option<&PubTemplate> {
        self.by_tid.get(&tid).map(|&i| &self.templates[i])
    }

    pub fn category(&self, id: u32) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyword;
    use std::collections::HashSet;

    #[test]
    fn the_builtin_library_is_complete_and_every_example_passes_its_rule() {
        let lib = Library::from_json(include_str!("../data/library.json")).expect("parses");
        assert!(
            lib.categories.len() >= 12,
            "categories: {}",
            lib.categories.len()
        );
        assert!(
            lib.templates.len() >= 60,
            "templates: {}",
            lib.templates.len()
        );
        let cats: HashSet<u32> = lib.categories.iter().map(|c| c.id).collect();
        assert_eq!(cats.len(), lib.categories.len(), "category ids unique");
        let tids: HashSet<u32> = lib.templates.iter().map(|t| t.tid).collect();
        assert_eq!(tids.len(), lib.templates.len(), "tids unique");
        let mut rules = HashSet::new();
        for t in &lib.templates {
            assert!(
                cats.contains(&t.category_id),
                "{} has a known category",
                t.title
            );
            assert!(
                t.keywords.len() >= 2,
                "{} has at least two keywords",
                t.title
            );
            for k in &t.keywords {
                rules.insert(k.rule);
                assert_eq!(
                    keyword::check(k.rule, &k.example, &k.enum_values),
                    Ok(()),
                    "example {:?} of {} / {}",
                    k.example,
                    t.title,
                    k.name
                );
            }
        }
        for r in keyword::Rule::ALL {
            assert!(rules.contains(&r), "rule {r:?} is used by some template");
        }
        assert!(
            lib.templates
                .iter()
                .any(|t| t.kind == TemplateKind::LongTerm)
        );
    }
}
