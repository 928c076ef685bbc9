//! The push outbox's claim, shared between apps: each app gets its turn and no more than
//! its share, counting what it already has in flight, and an unfinished claim comes back
//! once its lease has passed.

use super::{Backend, grant, postgres_backend, rand_u64, sqlite_backend, world};
use std::collections::BTreeMap;
use std::sync::Arc;
use tuisong_core::ids::{AppId, OpenId, Secret, TemplateId, UserId};
use tuisong_core::push::{ClaimLimits, OutboxItem, PushConfig, PushFormat, PushMode};
use tuisong_core::store::{Store, User};

fn config() -> PushConfig {
    PushConfig {
        url: "https://receiver.example/cb".into(),
        token: Secret::new("token1"),
        encoding_aes_key: None,
        format: PushFormat::Json,
        mode: PushMode::Plaintext,
        extension_events: false,
        updated_at: 0,
    }
}

/// A new user of `appid`, known to it by the returned openid.
async fn subscriber(store: &Arc<dyn Store>, appid: &AppId) -> OpenId {
    let user = User {
        user_id: UserId::generate(),
        nickname: "n".into(),
        token_hash: format!("{:064}", rand_u64()),
        created_at: 0,
    };
    store.create_user(&user).await.expect("user");
    store
        .subscriber_for_user(appid, &user.user_id, &OpenId::generate(), 0)
        .await
        .expect("subscriber")
        .openid
}

/// One popup event of a new user of `appid`, queued at `at`.
async fn event_of_new_user(store: &Arc<dyn Store>, appid: &AppId, tid: &TemplateId, at: i64) {
    let openid = subscriber(store, appid).await;
    store
        .apply_prompt(appid, &openid, &[grant(tid)], at)
        .await
        .expect("prompt");
}

fn limits(total: usize, per_app: usize, in_flight: &[(&AppId, usize)]) -> ClaimLimits {
    ClaimLimits {
        total,
        per_app,
        in_flight: in_flight
            .iter()
            .map(|(a, n)| (a.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn count_of(items: &[OutboxItem], appid: &AppId) -> usize {
    items.iter().filter(|i| i.appid == appid.as_str()).count()
}

contract!(
    #[tokio::test]
    apps_take_turns_in_a_claim_and_none_gets_more_than_its_share
);
async fn apps_take_turns_in_a_claim_and_none_gets_more_than_its_share(b: Backend) {
    let (busy, calm) = (world(&b.store, false).await, world(&b.store, false).await);
    for w in [&busy, &calm] {
        b.store
            .set_push_config(&w.app.appid, Some(&config()))
            .await
            .expect("config");
    }
    let (a, c) = (&busy.app.appid, &calm.app.appid);
    // Six users of the busy app queue first; the calm app's one event comes last.
    for at in 1..=6 {
        event_of_new_user(&b.store, a, &busy.template.id, at).await;
    }
    event_of_new_user(&b.store, c, &calm.template.id, 10).await;

    let first = b
        .store
        .claim_push(100, 1_000, &limits(4, 3, &[]))
        .await
        .expect("claim");
    let apps: Vec<&str> = first.iter().map(|i| i.appid.as_str()).collect();
    assert_eq!(
        apps,
        vec![a.as_str(), c.as_str(), a.as_str(), a.as_str()],
        "{}: each app's oldest first, then the second of each, …",
        b.name
    );
    assert!(first[0].created_at < first[2].created_at);

    // The busy app has 3 in flight and a share of 3: nothing more for it.
    let none = b
        .store
        .claim_push(100, 1_000, &limits(10, 3, &[(a, 3)]))
        .await
        .expect("claim");
    assert!(none.is_empty(), "{}: {none:?}", b.name);
    // One of its three finished: it may take one more, even though more are due.
    let one = b
        .store
        .claim_push(100, 1_000, &limits(10, 3, &[(a, 2)]))
        .await
        .expect("claim");
    assert_eq!((one.len(), count_of(&one, a)), (1, 1), "{}", b.name);
    // An in-flight count of another app does not limit this one.
    let rest = b
        .store
        .claim_push(100, 1_000, &limits(10, 3, &[(c, 3)]))
        .await
        .expect("claim");
    assert_eq!(
        count_of(&rest, a),
        2,
        "{}: the last two of the busy app",
        b.name
    );
    let ids: std::collections::BTreeSet<i64> = first
        .iter()
        .chain(&one)
        .chain(&rest)
        .map(|i| i.id)
        .collect();
    assert_eq!(ids.len(), 7, "{}: every event claimed once", b.name);
    assert!(
        b.store
            .claim_push(100, 1_000, &ClaimLimits::up_to(10))
            .await
            .expect("claim")
            .is_empty(),
        "{}: all leased",
        b.name
    );
}

contract!(
    #[tokio::test]
    an_unfinished_claim_comes_back_after_its_lease_and_keeps_the_users_order
);
async fn an_unfinished_claim_comes_back_after_its_lease_and_keeps_the_users_order(b: Backend) {
    let w = world(&b.store, false).await;
    b.store
        .set_push_config(&w.app.appid, Some(&config()))
        .await
        .expect("config");
    for at in 1..=3 {
        b.store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], at)
            .await
            .expect("prompt");
    }
    let claimed = b
        .store
        .claim_push(10, 500, &limits(10, 5, &[]))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "{}: one per user", b.name);
    // The worker that claimed it crashed: nothing of that user until the lease ends.
    assert!(
        b.store
            .claim_push(499, 1_000, &limits(10, 5, &[]))
            .await
            .expect("claim")
            .is_empty(),
        "{}",
        b.name
    );
    let back = b
        .store
        .claim_push(500, 1_000, &limits(10, 5, &[]))
        .await
        .expect("claim");
    assert_eq!(
        back.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![claimed[0].id],
        "{}: the same event again, not the user's next",
        b.name
    );
    assert_eq!(back[0].attempts, 0, "{}: no attempt was recorded", b.name);
}
