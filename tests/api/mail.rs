//! Invitation mail over a real SMTP exchange, and the outbox that never loses it.

use gangway::audit::Actor;
use gangway::invitations::mail::{self, Mailer};
use gangway::invitations::{self, Setback};
use gangway::tenants;
use gangway::types::Secret;

use crate::helpers::{MailCatcher, TestApp, consent, location};

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
    let state = mail::delivery_state(&app.db, issued.invitation.id.into())
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
    assert_eq!(
        invitation.status,
        gangway::invitations::InvitationStatus::Pending
    );
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
        app.state
            .invitation_context(&app.state.live().await.unwrap()),
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

/// The messages the catcher received, by link.
fn links(app: &TestApp) -> Vec<url::Url> {
    app.mail.messages().iter().map(|m| m.link()).collect()
}

#[tokio::test]
async fn mail_is_not_sent_twice_when_marking_fails() {
    let app = TestApp::spawn().await;
    let first = app.invite("delegated", "first@contoso.example", None).await;
    let second = app
        .invite("delegated", "second@contoso.example", None)
        .await;
    // The database refuses to record the second message as sent, after it went out.
    sqlx::raw_sql(&format!(
        "create function refuse_second_mark() returns trigger language plpgsql as $$
         begin raise exception 'the audit log is unavailable'; end $$;
         create trigger refuse_second_mark before insert on audit_events for each row
         when (new.action = 'invitation.email_sent' and new.invitation_id = '{}')
         execute function refuse_second_mark();",
        second.invitation.id
    ))
    .execute(&app.db)
    .await
    .unwrap();
    let mailer = Mailer::new(&Secret::new(app.mail.url()), "T <t@provider.test>").unwrap();
    let round = mail::deliver_due(&app.db, &app.state.cfg.keys, &mailer).await;
    assert!(round.is_err(), "the failed mark is reported");
    assert_eq!(links(&app), [first.link.clone(), second.link.clone()]);

    sqlx::raw_sql("drop trigger refuse_second_mark on audit_events")
        .execute(&app.db)
        .await
        .unwrap();
    let round = app.deliver_mail().await;
    assert_eq!((round.sent, round.failed), (0, 0));
    assert_eq!(
        links(&app),
        [first.link, second.link],
        "neither message goes out again"
    );
    let first_state = mail::delivery_state(&app.db, first.invitation.id.into())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first_state.sent_at.is_some(),
        "the first mark survived the second's failure"
    );
}

#[tokio::test]
async fn a_lease_held_by_one_worker_keeps_another_from_sending_until_it_runs_out() {
    let app = TestApp::spawn().await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    // Another worker claimed the mail and is sending it.
    sqlx::query("update outbox set leased_until = now() + interval '5 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(app.deliver_mail().await, mail::Delivered::default());
    assert!(app.mail.messages().is_empty());

    // That worker died: once its lease runs out the mail is claimed again, and sent once.
    sqlx::query("update outbox set leased_until = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(app.deliver_mail().await.sent, 1);
    assert_eq!(app.deliver_mail().await.sent, 0);
    assert_eq!(links(&app), [issued.link]);
}

#[tokio::test]
async fn mail_for_a_consented_or_expired_invitation_is_dropped() {
    let app = TestApp::spawn().await;
    let consented = app.invite("delegated", "done@contoso.example", None).await;
    let expired = app.invite("delegated", "late@contoso.example", None).await;
    let failed = app.invite("delegated", "retry@contoso.example", None).await;
    let live = app.invite("delegated", "new@contoso.example", None).await;
    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        consented.invitation.id,
        &consent(uuid::Uuid::new_v4()),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    sqlx::query("update invitations set expires_at = now() - interval '1 minute' where id = $1")
        .bind(expired.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    // A failed attempt leaves the link usable for a retry: its mail still goes.
    invitations::record_setback(
        &app.db,
        failed.invitation.id,
        Setback::Failed,
        "wrong account",
        "That account is not one Microsoft accepts here.",
        &Actor::System,
    )
    .await
    .unwrap();

    let round = app.deliver_mail().await;
    assert_eq!((round.sent, round.failed, round.dropped), (2, 0, 1));
    let mut sent = links(&app);
    sent.sort();
    let mut expected = vec![failed.link, live.link];
    expected.sort();
    assert_eq!(sent, expected);
    for gone in [consented.invitation.id, expired.invitation.id] {
        assert!(
            mail::delivery_state(&app.db, gone.into())
                .await
                .unwrap()
                .is_none(),
            "nothing stays queued for a dead link"
        );
    }
}

#[tokio::test]
async fn a_consented_invitation_page_says_its_mail_link_was_used_and_offers_no_resend() {
    let app = TestApp::spawn().await;
    app.sign_in(gangway::operators::Role::Viewer).await;
    let mailed = app
        .invite("delegated", "mailed@contoso.example", None)
        .await;
    app.deliver_mail().await;
    let quick = app.invite("delegated", "quick@contoso.example", None).await;
    for issued in [&mailed, &quick] {
        tenants::record_consent(
            &app.db,
            &app.state.cfg.keys,
            issued.invitation.id,
            &consent(uuid::Uuid::new_v4()),
            &Actor::System,
        )
        .await
        .unwrap();
    }
    let app = &app;
    let page = |id| async move {
        app.get(&gangway::web::paths::invitation(id))
            .await
            .text()
            .await
            .unwrap()
    };

    let sent = page(mailed.invitation.id).await;
    assert!(
        sent.contains("Link used: the customer consented."),
        "{sent}"
    );
    // Consented before the worker's round: the mail was dropped, and nothing suggests resending.
    let dropped = page(quick.invitation.id).await;
    assert!(
        dropped
            .contains("Not sent: the customer consented with the link before the email went out"),
        "{dropped}"
    );
    for page in [&sent, &dropped] {
        assert!(!page.contains("Resend"), "{page}");
    }
}
