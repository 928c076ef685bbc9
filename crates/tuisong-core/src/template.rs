//! Private templates (an app's own copy of a library title with chosen keywords), the
//! rules for adding one (spec §4), and rendering a send's `data` against it (spec §5).

use crate::clock::Millis;
use crate::ids::{AppId, TemplateId};
use crate::keyword::{self, KeywordError};
use crate::library::{Keyword, Library, TemplateKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Why a template could not be built or its data rendered; each maps to the domain
/// error of the same name (and so to one WeChat errcode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid tid")]
    TidInvalid,
    #[error("invalid kidList")]
    KidListInvalid,
    #[error("invalid sceneDesc")]
    SceneDescInvalid,
    /// `error` is what WeChat says; `reason` says why, for the native API.
    #[error("argument invalid! data.{key}.value {error}")]
    DataInvalid {
        key: String,
        error: KeywordError,
        reason: String,
    },
}

type Result<T, E = TemplateError> = std::result::Result<T, E>;

/// At most this many private templates per app ("上限25个").
pub const TEMPLATE_CAP: usize = 25;
/// `sceneDesc` may have at most this many characters.
pub const SCENE_DESC_MAX: usize = 15;
/// `kidList` takes 2 to 5 keywords.
pub const KID_LIST_RANGE: std::ops::RangeInclusive<usize> = 2..=5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivateTemplate {
    pub id: TemplateId,
    pub appid: AppId,
    pub tid: u32,
    pub title: String,
    pub kind: TemplateKind,
    /// The chosen keywords in `kidList` order; that order is the order of the card's rows.
    pub keywords: Vec<Keyword>,
    pub scene_desc: String,
    pub created_at: Millis,
}

/// One rendered row of a notification card: keyword name and the value sent for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub name: String,
    pub value: String,
}

impl PrivateTemplate {
    /// Checks an addtemplate request against the library and builds the template.
    pub fn build(
        library: &Library,
        appid: &AppId,
        tid: u32,
        kid_list: &[u32],
        scene_desc: &str,
        now: Millis,
    ) -> Result<PrivateTemplate> {
        let public = library.template(tid).ok_or(TemplateError::TidInvalid)?;
        if !KID_LIST_RANGE.contains(&kid_list.len()) {
            return Err(TemplateError::KidListInvalid);
        }
        let mut seen = HashSet::new();
        let mut keywords = Vec::with_capacity(kid_list.len());
        for &kid in kid_list {
            if !seen.insert(kid) {
                return Err(TemplateError::KidListInvalid);
            }
            keywords.push(
                public
                    .keyword(kid)
                    .ok_or(TemplateError::KidListInvalid)?
                    .clone(),
            );
        }
        if scene_desc.chars().count() > SCENE_DESC_MAX || scene_desc.chars().any(char::is_control) {
            return Err(TemplateError::SceneDescInvalid);
        }
        Ok(PrivateTemplate {
            id: TemplateId::generate(),
            appid: appid.clone(),
            tid,
            title: public.title.clone(),
            kind: public.kind,
            keywords,
            scene_desc: scene_desc.to_owned(),
            created_at: now,
        })
    }

    /// The sorted kid list: two templates with the same title and the same keywords are
    /// duplicates (200022) whatever the order they were picked in.
    pub fn keyword_set(&self) -> String {
        let mut kids: Vec<u32> = self.keywords.iter().map(|k| k.kid).collect();
        kids.sort_unstable();
        kids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `content` of gettemplate: `name:{{key.DATA}}\n` per keyword.
    pub fn content(&self) -> String {
        self.keywords
            .iter()
            .map(|k| format!("{}:{{{{{}.DATA}}}}\n", k.name, k.key()))
            .collect()
    }

    /// `example` of gettemplate: `name:example\n` per keyword.
    pub fn example(&self) -> String {
        self.keywords
            .iter()
            .map(|k| format!("{}:{}\n", k.name, k.example))
            .collect()
    }

    /// `keywordEnumValueList` entries: (`enum_string2.DATA`, values) for enum keywords.
    pub fn enum_value_list(&self) -> Vec<(String, Vec<String>)> {
        self.keywords
            .iter()
            .filter(|k| k.rule == keyword::Rule::Enum)
            .map(|k| (format!("{}.DATA", k.key()), k.enum_values.clone()))
            .collect()
    }

    /// Validates `data` (placeholder key → value, already coerced to strings) and returns
    /// the card rows in template order. A key the template needs but `data` lacks is
    /// "is emtpy"; keys the template does not have are ignored, as WeChat does.
    pub fn render(&self, data: &BTreeMap<String, String>) -> Result<Vec<Row>> {
        let mut rows = Vec::with_capacity(self.keywords.len());
        for k in &self.keywords {
            let key = k.key();
            let value = data.get(&key).map(String::as_str).unwrap_or("");
            if let Err(error) = keyword::check(k.rule, value, &k.enum_values) {
                let reason = keyword::explain(k.rule, value, &k.enum_values);
                return Err(TemplateError::DataInvalid { key, error, reason });
            }
            rows.push(Row {
                key,
                name: k.name.clone(),
                value: value.to_owned(),
            });
        }
        Ok(rows)
    }

    /// Example rows, for previews of the card.
    pub fn example_rows(&self) -> Vec<Row> {
        self.keywords
            .iter()
            .map(|k| Row {
                key: k.key(),
                name: k.name.clone(),
                value: k.example.clone(),
            })
            .collect()
    }
}

/// Data for a send where every keyword has its example value (used by the demo and tests).
pub fn example_data(t: &PrivateTemplate) -> BTreeMap<String, String> {
    t.keywords
        .iter()
        .map(|k| (k.key(), k.example.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib() -> &'static Library {
        Library::builtin()
    }

    fn some_template() -> (u32, Vec<u32>) {
        let t = &lib().templates[0];
        (t.tid, t.keywords.iter().take(3).map(|k| k.kid).collect())
    }

    #[test]
    fn a_template_is_built_from_a_title_and_some_of_its_keywords() {
        let (tid, kids) = some_template();
        let app = AppId::generate();
        let t = PrivateTemplate::build(lib(), &app, tid, &kids, "测试", 0).expect("builds");
        assert_eq!(t.keywords.len(), 3);
        let content = t.content();
        for k in &t.keywords {
            assert!(content.contains(&format!("{{{{{}.DATA}}}}", k.key())));
        }
        let rows = t.render(&example_data(&t)).expect("examples pass");
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn bad_addtemplate_input_gets_the_matching_error() {
        let (tid, kids) = some_template();
        let app = AppId::generate();
        assert!(matches!(
            PrivateTemplate::build(lib(), &app, 999_999_999, &kids, "", 0),
            Err(TemplateError::TidInvalid)
        ));
        assert!(matches!(
            PrivateTemplate::build(lib(), &app, tid, &kids[..1], "", 0),
            Err(TemplateError::KidListInvalid)
        ));
        assert!(matches!(
            PrivateTemplate::build(lib(), &app, tid, &[kids[0], kids[0]], "", 0),
            Err(TemplateError::KidListInvalid)
        ));
        assert!(matches!(
            PrivateTemplate::build(lib(), &app, tid, &[kids[0], 999], "", 0),
            Err(TemplateError::KidListInvalid)
        ));
        assert!(matches!(
            PrivateTemplate::build(
                lib(),
                &app,
                tid,
                &kids,
                "一二三四五六七八九十一二三四五六",
                0
            ),
            Err(TemplateError::SceneDescInvalid)
        ));
        assert!(
            PrivateTemplate::build(lib(), &app, tid, &kids, "一二三四五六七八九十一二三四五", 0)
                .is_ok()
        );
    }

    #[test]
    fn a_missing_key_is_empty_and_a_bad_value_is_invalid() {
        let (tid, kids) = some_template();
        let t =
            PrivateTemplate::build(lib(), &AppId::generate(), tid, &kids, "", 0).expect("builds");
        let mut data = example_data(&t);
        let first = t.keywords[0].key();
        data.remove(&first);
        match t.render(&data) {
            Err(TemplateError::DataInvalid { key, error, .. }) => {
                assert_eq!(key, first);
                assert_eq!(error, KeywordError::Empty);
            }
            other => panic!("expected empty, got {other:?}"),
        }
        let mut data = example_data(&t);
        data.insert("unknown99".into(), "ignored".into());
        assert!(t.render(&data).is_ok(), "extra keys are ignored");
    }
}
