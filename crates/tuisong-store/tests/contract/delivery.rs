//! Acks and opens are about the caller's own inbox: another user's message (or one that
//! does not exist) is answered as unknown, and nothing about it changes.

use super::{Backend, grant, message, postgres_backend, rand_u64, sqlite_backend, world};
use tuisong_core::ids::{MsgId, UserId};
use tuisong_core::store::{MessageStatus, SendOutcome, User};

contract!(
    #[tokio::test]
    acks_and_opens_of_another_users_message_change_nothing
);
async fn acks_and_opens_of_another_users_message_change_nothing(b: Backend) {
    let w = world(&b.store, false).await;
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
        .await
        .expect("grant");
    let m = match b.store.send(&message(&w, None)).await.expect("send") {
        SendOutcome::Accepted { msgid, .. } => msgid,
        other => panic!("{}: {other:?}", b.name),
    };
    let owner = b
        .store
        .get_message(&w.app.appid, m)
        .await
        .expect("read")
        .expect("the message")
        .user_id;
    let other = User {
        user_id: UserId::generate(),
        nickname: "other".into(),
        token_hash: format!("{:064}", rand_u64()),
        created_at: 0,
    };
    b.store.create_user(&other).await.expect("user");
    let before = b.store.timeline(m).await.expect("timeline");

    for msgid in [m, MsgId(m.0 + 1_000)] {
        let who = &other.user_id;
        let n = b.name;
        assert_eq!(
            b.store.ack(who, msgid, "d", 5).await.expect("ack"),
            None,
            "{n}"
        );
        assert!(
            b.store
                .open(who, msgid, "d", 6)
                .await
                .expect("open")
                .is_none(),
            "{n}"
        );
    }
    let after = b
        .store
        .get_message(&w.app.appid, m)
        .await
        .expect("read")
        .expect("the message");
    assert_eq!(
        (after.status, after.delivered_at),
        (MessageStatus::Accepted, None),
        "{}",
        b.name
    );
    let timeline = b.store.timeline(m).await.expect("timeline");
    assert_eq!(timeline, before, "{}: nothing on the timeline", b.name);

    // The owner's own ack is still the first delivery; a second one is not.
    assert_eq!(
        b.store.ack(&owner, m, "d", 7).await.expect("ack"),
        Some(true)
    );
    assert_eq!(
        b.store.ack(&owner, m, "d", 8).await.expect("ack"),
        Some(false)
    );
    assert!(
        b.store
            .open(&owner, m, "d", 9)
            .await
            .expect("open")
            .is_some()
    );
}
