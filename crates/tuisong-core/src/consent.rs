//! The consent ledger's rules: what a subscribe prompt (`wx.requestSubscribeMessage`)
//! decides for each template, and what a send needs. The store applies the effects
//! computed here; a send's grant is consumed by a conditional update in the store.
//!
//! Choices where WeChat's behaviour is unconfirmed (spec §3.4, §6.2), also in docs/API.md:
//! - One-time grants accumulate: each accept adds one send.
//! - A kept ("总是保持以上选择") accept answers later prompts without showing them and
//!   still adds one grant per prompt, as the community reports of WeChat.
//! - A reject in a prompt does not take back grants given earlier; turning a template off
//!   in settings (or the main switch) blocks every send until it is turned on again, and
//!   leaves the remaining count as it was.

use crate::clock::Millis;
use crate::ids::TemplateId;
use crate::library::TemplateKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// At most this many template ids in one prompt (spec §6.1: 3 on the official page).
pub const MAX_PROMPT_IDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "accept" => Some(Decision::Accept),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }
}

/// What `wx.requestSubscribeMessage` reports per template id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStatus {
    Accept,
    Reject,
    Filter,
}

impl PromptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptStatus::Accept => "accept",
            PromptStatus::Reject => "reject",
            PromptStatus::Filter => "filter",
        }
    }
}

/// The fail shape of `wx.requestSubscribeMessage` (`errCode`, spec §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFail {
    /// 10001
    Empty,
    /// 10004: an id that is not a string.
    InvalidId,
    /// 20001: an id that is not one of the app's templates.
    NoTemplate,
    /// 20002: one-time and long-term ids mixed in one call.
    MixedTypes,
    /// 20003
    TooMany,
    /// 20004
    MainSwitchOff,
}

impl PromptFail {
    pub fn err_code(&self) -> u32 {
        match self {
            PromptFail::Empty => 10001,
            PromptFail::InvalidId => 10004,
            PromptFail::NoTemplate => 20001,
            PromptFail::MixedTypes => 20002,
            PromptFail::TooMany => 20003,
            PromptFail::MainSwitchOff => 20004,
        }
    }
    pub fn err_msg(&self) -> &'static str {
        match self {
            PromptFail::Empty => "requestSubscribeMessage:fail TmplIds can't be empty",
            PromptFail::InvalidId => "requestSubscribeMessage:fail Invalid template id",
            PromptFail::NoTemplate => {
                "requestSubscribeMessage:fail No template data return, verify the template id exist"
            }
            PromptFail::MixedTypes => "requestSubscribeMessage:fail Templates type must be same",
            PromptFail::TooMany => "requestSubscribeMessage:fail Templates count out of max bounds",
            PromptFail::MainSwitchOff => {
                "requestSubscribeMessage:fail The main switch is switched off"
            }
        }
    }
}

/// One (app, openid, template) row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub template_id: TemplateId,
    /// The last answer the user gave (prompt or settings); None if never asked.
    pub status: Option<Decision>,
    /// One-time grants left to consume.
    pub remaining: u32,
    /// Turned off in settings: no send goes through until it is turned on.
    pub switched_off: bool,
    /// The "always keep this choice" answer, if the user ticked it.
    pub kept: Option<Decision>,
    pub granted_total: u64,
    pub consumed_total: u64,
    pub updated_at: Millis,
}

/// A template as the prompt sees it.
#[derive(Debug, Clone)]
pub struct PromptTemplate {
    pub id: TemplateId,
    pub title: String,
    pub kind: TemplateKind,
}

/// What one answered prompt does to one template's ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptEffect {
    pub template_id: TemplateId,
    pub result: PromptStatus,
    /// The sheet was shown for this template (false: kept choice or filtered).
    pub shown: bool,
    /// Add one one-time grant.
    pub grant: bool,
    /// New `status`, if it changes.
    pub set_status: Option<Decision>,
    /// New kept choice, if the user ticked "always keep".
    pub set_kept: Option<Decision>,
}

/// A device's prompt, after its JSON has been read.
#[derive(Debug, Clone, Default)]
pub struct PromptRequest {
    /// The ids as sent; `None` for an element that was not a string.
    pub ids: Vec<Option<String>>,
    pub decisions: HashMap<String, Decision>,
    pub keep: bool,
}

/// Error in the prompt request itself (not a WeChat fail shape): the device must say
/// what the user chose for every template the sheet shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptError {
    Fail(PromptFail),
    DecisionMissing(String),
}

/// Decides a prompt. `resolve` maps an id string to the app's template, `states` holds
/// the user's current ledger rows, `main_switch` the user's main switch for this app.
pub fn evaluate_prompt(
    req: &PromptRequest,
    resolve: impl Fn(&str) -> Option<PromptTemplate>,
    main_switch: bool,
    states: &HashMap<TemplateId, ConsentState>,
) -> Result<Vec<PromptEffect>, PromptError> {
    if req.ids.is_empty() {
        return Err(PromptError::Fail(PromptFail::Empty));
    }
    let mut ids = Vec::with_capacity(req.ids.len());
    for id in &req.ids {
        ids.push(
            id.as_deref()
                .ok_or(PromptError::Fail(PromptFail::InvalidId))?,
        );
    }
    if ids.len() > MAX_PROMPT_IDS {
        return Err(PromptError::Fail(PromptFail::TooMany));
    }
    let mut templates = Vec::with_capacity(ids.len());
    for id in &ids {
        templates.push(resolve(id).ok_or(PromptError::Fail(PromptFail::NoTemplate))?);
    }
    if templates.iter().any(|t| t.kind != templates[0].kind) {
        return Err(PromptError::Fail(PromptFail::MixedTypes));
    }
    if !main_switch {
        return Err(PromptError::Fail(PromptFail::MainSwitchOff));
    }
    let mut effects: Vec<PromptEffect> = Vec::with_capacity(templates.len());
    for t in &templates {
        // The same template twice, or another with the same title, is filtered.
        let filtered = effects.iter().any(|e| {
            e.template_id == t.id
                || templates
                    .iter()
                    .any(|o| o.id == e.template_id && o.title == t.title)
        });
        if filtered {
            effects.push(PromptEffect {
                template_id: t.id.clone(),
                result: PromptStatus::Filter,
                shown: false,
                grant: false,
                set_status: None,
                set_kept: None,
            });
            continue;
        }
        let kept = states.get(&t.id).and_then(|s| s.kept);
        let (decision, shown) = match kept {
            Some(d) => (d, false),
            None => match req.decisions.get(t.id.as_str()) {
                Some(&d) => (d, true),
                None => return Err(PromptError::DecisionMissing(t.id.to_string())),
            },
        };
        let grant = decision == Decision::Accept && t.kind == TemplateKind::OneTime;
        effects.push(PromptEffect {
            template_id: t.id.clone(),
            result: match decision {
                Decision::Accept => PromptStatus::Accept,
                Decision::Reject => PromptStatus::Reject,
            },
            shown,
            grant,
            set_status: Some(decision),
            set_kept: (shown && req.keep).then_some(decision),
        });
    }
    Ok(effects)
}

/// What a send needs from the ledger, by template kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeRule {
    /// Take one grant: `remaining > 0`, not switched off.
    OneTime,
    /// Status accept, not switched off; nothing is taken.
    LongTerm,
}

impl From<TemplateKind> for ConsumeRule {
    fn from(k: TemplateKind) -> Self {
        match k {
            TemplateKind::OneTime => ConsumeRule::OneTime,
            TemplateKind::LongTerm => ConsumeRule::LongTerm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpl(kind: TemplateKind, title: &str) -> PromptTemplate {
        PromptTemplate {
            id: TemplateId::generate(),
            title: title.into(),
            kind,
        }
    }

    fn req(ids: &[&PromptTemplate], decisions: &[(usize, Decision)], keep: bool) -> PromptRequest {
        PromptRequest {
            ids: ids.iter().map(|t| Some(t.id.to_string())).collect(),
            decisions: decisions
                .iter()
                .map(|(i, d)| (ids[*i].id.to_string(), *d))
                .collect(),
            keep,
        }
    }

    fn resolver(all: Vec<PromptTemplate>) -> impl Fn(&str) -> Option<PromptTemplate> {
        move |id| all.iter().find(|t| t.id.as_str() == id).cloned()
    }

    #[test]
    fn an_accepted_one_time_template_gets_one_grant() {
        let a = tmpl(TemplateKind::OneTime, "A");
        let r = req(&[&a], &[(0, Decision::Accept)], false);
        let e = evaluate_prompt(&r, resolver(vec![a.clone()]), true, &HashMap::new()).expect("ok");
        assert_eq!(e[0].result, PromptStatus::Accept);
        assert!(e[0].grant && e[0].shown);
        assert_eq!(e[0].set_kept, None);
    }

    #[test]
    fn fail_codes_follow_the_order_wechat_checks_them() {
        let a = tmpl(TemplateKind::OneTime, "A");
        let b = tmpl(TemplateKind::LongTerm, "B");
        let all = vec![a.clone(), b.clone()];
        let none = HashMap::new();
        let empty = PromptRequest::default();
        assert_eq!(
            evaluate_prompt(&empty, resolver(all.clone()), true, &none),
            Err(PromptError::Fail(PromptFail::Empty))
        );
        let four = PromptRequest {
            ids: vec![Some(a.id.to_string()); 4],
            ..Default::default()
        };
        assert_eq!(
            evaluate_prompt(&four, resolver(all.clone()), true, &none),
            Err(PromptError::Fail(PromptFail::TooMany))
        );
        let unknown = PromptRequest {
            ids: vec![Some("nope".into())],
            ..Default::default()
        };
        assert_eq!(
            evaluate_prompt(&unknown, resolver(all.clone()), true, &none),
            Err(PromptError::Fail(PromptFail::NoTemplate))
        );
        let mixed = req(
            &[&a, &b],
            &[(0, Decision::Accept), (1, Decision::Accept)],
            false,
        );
        assert_eq!(
            evaluate_prompt(&mixed, resolver(all.clone()), true, &none),
            Err(PromptError::Fail(PromptFail::MixedTypes))
        );
        let off = req(&[&a], &[(0, Decision::Accept)], false);
        assert_eq!(
            evaluate_prompt(&off, resolver(all.clone()), false, &none),
            Err(PromptError::Fail(PromptFail::MainSwitchOff))
        );
        let nonstring = PromptRequest {
            ids: vec![None],
            ..Default::default()
        };
        assert_eq!(
            evaluate_prompt(&nonstring, resolver(all), true, &none),
            Err(PromptError::Fail(PromptFail::InvalidId))
        );
    }

    #[test]
    fn a_kept_choice_answers_without_showing_the_sheet() {
        let a = tmpl(TemplateKind::OneTime, "A");
        let mut states = HashMap::new();
        states.insert(
            a.id.clone(),
            ConsentState {
                template_id: a.id.clone(),
                status: Some(Decision::Accept),
                remaining: 1,
                switched_off: false,
                kept: Some(Decision::Accept),
                granted_total: 1,
                consumed_total: 0,
                updated_at: 0,
            },
        );
        let r = req(&[&a], &[], false);
        let e = evaluate_prompt(&r, resolver(vec![a.clone()]), true, &states).expect("ok");
        assert!(!e[0].shown);
        assert!(e[0].grant, "a kept accept still grants one send");
    }

    #[test]
    fn a_second_template_with_the_same_title_is_filtered() {
        let a = tmpl(TemplateKind::OneTime, "同名");
        let b = tmpl(TemplateKind::OneTime, "同名");
        let r = req(&[&a, &b], &[(0, Decision::Accept)], true);
        let e = evaluate_prompt(
            &r,
            resolver(vec![a.clone(), b.clone()]),
            true,
            &HashMap::new(),
        )
        .expect("ok");
        assert_eq!(e[1].result, PromptStatus::Filter);
        assert!(!e[1].grant);
        assert_eq!(e[0].set_kept, Some(Decision::Accept));
    }

    #[test]
    fn a_shown_template_without_a_decision_is_an_error() {
        let a = tmpl(TemplateKind::OneTime, "A");
        let r = req(&[&a], &[], false);
        assert_eq!(
            evaluate_prompt(&r, resolver(vec![a.clone()]), true, &HashMap::new()),
            Err(PromptError::DecisionMissing(a.id.to_string()))
        );
    }
}
