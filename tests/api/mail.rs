//! Invitation mail over a real SMTP exchange, and the outbox that never loses it.

use gangway::invitations::mail::{self, Mailer};
use gangway::secret::Secret;

use crate::helpers::{MailCatcher, TestApp, location};

#[tokio::test]
async fn invitation_mail_arrives_with_a_working_link_and_is_wiped_from_the_outbox() {
    let app = TestApp::spawn().await;
    let admin = app.customer(0).admin.clone();
    let issued = app.invite("delegated", &admin.username, None).await;

    let round = app.deliver_mail().await;
    assert_eq!((round.sent, round.failed), (1, 0));
    let messages = app.mail.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(
        message.from.contains("onboarding@provider.test"),
        "sent from {}",
        message.from
    );
    assert!(
        message.to[0].contains(&admin.username),
        "sent to {:?}",
        message.to
    );
    assert!(
        message.subject().contains("Test Provider"),
        "subject: {}",
        message.subject()
    );
    let text = message.text();
    for expected in [
        "Contoso Ltd",
        "User.Read.All",
        "Group.Read.All",
        "Review the request",
    ] {
        assert!(text.contains(expected), "mail lacks {expected:?}:\n{text}");
    }
    // Both a plain-text and an HTML part, and the link's expiry in words.
    let data = message.data.to_ascii_lowercase();
    assert!(data.contains("multipart/alternative"), "{}", message.data);
    assert!(data.contains("content-type: text/plain") && data.contains("content-type: text/html"));
    let expires = gangway::format::datetime(issued.invitation.expires_at);
    assert!(
        text.contains(&format!("works until {expires}")),
        "mail lacks the expiry:\n{text}"
    );
    assert_eq!(
        message.link(),
        issued.link,
        "the mailed link is the issued one"
    );

    // Sent mail keeps no link at rest.
    let left: Option<Vec<u8>> = sqlx::query_scalar("select payload_ciphertext from outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(left.is_none());
    // The link opens the wizard.
    let response = crate::helpers::browser()
        .get(message.link())
        .send()
        .await
        .unwrap();
    assert_eq!(location(response).await, "/invitation");
}

#[tokio::test]
async fn a_mail_outage_keeps_the_invitation_queued_and_a_later_round_delivers_it() {
    let app = TestApp::spawn().await;
    let issued = app.invite("application", "it@contoso.example", None).await;

    let dead = Mailer::new(
        &Secret::new(MailCatcher::dead_url().await),
        "T <t@provider.test>",
    )
    .unwrap();
    let round = mail::deliver_due(&app.db, &app.state.cfg.keys, &dead)
        .await
        .unwrap();
    assert_eq!((round.sent, round.failed), (0, 1));
    let state = mail::delivery_state(&app.db, issued.invitation.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.attempts, 1);
    assert!(state.sent_at.is_none());
    assert!(state.last_error.is_some());
    assert!(
        state.next_attempt_at > time::OffsetDateTime::now_utc(),
        "a failed mail waits before the next try"
    );
    // Not due yet: nothing is sent, nothing is lost.
    assert_eq!(app.deliver_mail().await.sent, 0);

    sqlx::query("update outbox set next_attempt_at = now()")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(app.deliver_mail().await.sent, 1);
    assert_eq!(app.mail.messages()[0].link(), issued.link);
    let invitation = gangway::invitations::get(&app.db, issued.invitation.id)
        .await
        .unwrap();
    assert_eq!(invitation.status, gangway::invitations::Status::Pending);
    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_events where invitation_id = $1 order by id")
            .bind(issued.invitation.id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            "invitation.created",
            "invitation.email_failed",
            "invitation.email_sent"
        ]
    );
}

#[tokio::test]
async fn resending_replaces_queued_mail_so_only_the_live_link_is_sent() {
    let app = TestApp::spawn().await;
    let first = app.invite("delegated", "admin@contoso.example", None).await;
    let second = gangway::invitations::resend(
        &app.db,
        app.state.invitation_context(),
        first.invitation.id,
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    assert_ne!(first.link, second.link);

    assert_eq!(app.deliver_mail().await.sent, 1);
    let messages = app.mail.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].link(), second.link);
}
