//! Reading real delta rounds from the emulator into typed changes.

use gangway::directory::delta::{self, Change, GroupFields, Link, UserFields};
use gangway::types::permissions;
use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::helpers::TestApp;

/// The raw JSON at `link` (a path under Graph or an absolute next/delta link).
async fn get(app: &TestApp, link: &str, token: &gangway::types::Secret) -> Value {
    let url = match url::Url::parse(link) {
        Ok(absolute) => absolute,
        Err(_) => app.state.graph.url(link).unwrap(),
    };
    app.state.graph.get_json(url, token).await.unwrap()
}

/// Every page of a round from `start`, each read by [`delta::parse`]; the ids upserted and
/// whether the round ended on a delta link.
async fn round<F: serde::de::DeserializeOwned + Default>(
    app: &TestApp,
    token: &gangway::types::Secret,
    start: &str,
) -> (BTreeSet<Uuid>, usize) {
    let (mut link, mut ids, mut members) = (start.to_owned(), BTreeSet::new(), 0);
    for _ in 0..100 {
        let body: Value = get(app, &link, token).await;
        let page = delta::parse::<F>(body.to_string().as_bytes()).unwrap();
        for change in page.changes {
            if let Change::Upsert { id, members: m, .. } = change {
                ids.insert(id);
                members += m.len();
            }
        }
        match page.link {
            Link::Next(next) => link = next,
            Link::Delta(_) => return (ids, members),
        }
    }
    panic!("the round never ended");
}

#[tokio::test]
async fn a_full_delta_round_from_the_emulator_reads_every_user_and_group() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    app.admin
        .grant(
            &tenant.id,
            &app.app.client_id,
            &[],
            &permissions::application_scopes(),
        )
        .await
        .unwrap();
    let tid = gangway::types::TenantId::parse(&tenant.id).unwrap();
    let token = app
        .state
        .live()
        .await
        .unwrap()
        .entra()
        .unwrap()
        .app_token(&tid, None)
        .await
        .unwrap();

    let listed = get(&app, "v1.0/users?$select=id&$top=999", &token).await;
    let expected: BTreeSet<Uuid> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(expected.len() >= 12);
    let (users, _) = round::<UserFields>(
        &app,
        &token,
        "v1.0/users/delta()?$select=userPrincipalName,displayName,givenName,surname,mail,businessPhones,mobilePhone,jobTitle,department,accountEnabled",
    )
    .await;
    assert_eq!(users, expected);
    let (groups, members) = round::<GroupFields>(
        &app,
        &token,
        "v1.0/groups/delta()?$select=displayName,description,mail,mailEnabled,securityEnabled,members",
    )
    .await;
    assert!(!groups.is_empty() && members > 0, "{groups:?} {members}");
}
