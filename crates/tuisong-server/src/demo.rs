//! The demo app created on a fresh store so that `tuisong serve` is useful at once: an
//! app with three templates (a one-time one, one with an enum keyword, a long-term one).

use std::sync::Arc;
use tuisong_core::keyword::Rule;
use tuisong_core::library::{PubTemplate, TemplateKind};
use tuisong_core::service::Platform;
use tuisong_core::store::App;
use tuisong_core::template::PrivateTemplate;

/// The demo app's name; `tuisong app show --demo` finds it by this name.
pub const DEMO_APP_NAME: &str = "Demo 小程序";

pub struct DemoApp {
    pub app: App,
    pub templates: Vec<Arc<PrivateTemplate>>,
}

fn first(platform: &Platform, f: impl Fn(&PubTemplate) -> bool) -> Option<&'static PubTemplate> {
    platform.library().templates.iter().find(|t| f(t))
}

/// Creates the demo app if the store has no app yet.
pub async fn ensure_demo_app(platform: &Platform) -> anyhow::Result<Option<DemoApp>> {
    if !platform.list_apps().await?.is_empty() {
        return Ok(None);
    }
    let app = platform.create_app(DEMO_APP_NAME).await?;
    let picks = [
        first(platform, |t| t.kind == TemplateKind::OneTime),
        first(platform, |t| {
            t.kind == TemplateKind::OneTime
                && t.keywords.iter().take(5).any(|k| k.rule == Rule::Enum)
        }),
        first(platform, |t| t.kind == TemplateKind::LongTerm),
    ];
    let mut templates = Vec::new();
    for p in picks.into_iter().flatten() {
        let kids: Vec<u32> = p.keywords.iter().take(5).map(|k| k.kid).collect();
        match platform
            .add_template(&app.appid, p.tid, &kids, "演示")
            .await
        {
            Ok(t) => templates.push(t),
            // Two picks may be the same title; the second is a duplicate and is skipped.
            Err(tuisong_core::Error::TemplateDuplicate) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(DemoApp { app, templates }))
}
