//! `gangway invite …`: invitations for scripts.

use clap::Subcommand;
use sqlx::PgPool;

use super::{Failure, Output, pool, truncate};
use crate::audit::Actor;
use crate::config::Config;
use crate::format;
use crate::invitations::{self, Filter, InvitationStatus, InvitedScope, NewInvitation, mail};
use crate::types::InvitationId;

#[derive(Debug, Subcommand)]
pub(crate) enum InviteCommand {
    /// Create an invitation and queue its email; prints its id, link and expiry.
    Create {
        /// The customer, as their admin will see it: an existing customer with this name (in
        /// any case) is picked, otherwise a new one is created.
        #[arg(long)]
        customer: String,
        /// The customer's Global Administrator's email address.
        #[arg(long)]
        email: String,
        /// delegated | application | customer-app
        #[arg(long)]
        mode: String,
        /// Accept consent only from the tenant verified for this domain.
        #[arg(long)]
        tenant_domain: Option<String>,
        /// How long the link works: e.g. 24h, 7d (1h to 30d).
        #[arg(long, default_value = "7d")]
        expires_in: String,
        /// What the tenant will be synced of: all (everyone) | groups (the members of each
        /// --scope-group, nested groups included) | app-assignments (those assigned to the
        /// provider's app). Default: groups when --scope-group is given, else all.
        #[arg(long)]
        scope: Option<String>,
        /// A group whose members are synced (display name or object id); repeat for more.
        #[arg(long = "scope-group", value_name = "GROUP")]
        scope_groups: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List invitations, open ones first.
    List {
        /// pending | opened | consented | declined | failed | expired | revoked
        #[arg(long)]
        status: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke an invitation: its link stops working for good.
    Revoke { id: InvitationId },
    /// Mint a new link (the old one stops working) and email it again.
    Resend {
        id: InvitationId,
        #[command(flatten)]
        output: Output,
    },
}

/// The scope `--scope` and `--scope-group` give, checked as the console and the API check it.
fn invited_scope(kind: Option<&str>, groups: &[String]) -> Result<Option<InvitedScope>, Failure> {
    let kind = match kind {
        Some(kind) => kind.trim().replace('-', "_"),
        None if groups.is_empty() => "all".to_owned(),
        None => "groups".to_owned(),
    };
    if kind != "groups" && !groups.is_empty() {
        return Err(Failure::Usage(
            "--scope-group goes with --scope groups (or no --scope).".into(),
        ));
    }
    InvitedScope::parse(&kind, groups).map_err(Failure::Usage)
}

/// Runs an invitation command.
pub(super) async fn run(command: InviteCommand) -> Result<(), Failure> {
    let cfg = Config::from_env()?;
    let pool = pool(&cfg.database_url).await?;
    crate::settings::prepare(&pool, &cfg.keys, &cfg.settings_seed()).await?;
    let settings = crate::settings::load(&pool, &cfg.keys)
        .await
        .map_err(anyhow::Error::from)?;
    let cx = invitations::Context {
        public_url: &cfg.public_url,
        brand: &settings.branding,
        keys: &cfg.keys,
    };
    match command {
        InviteCommand::Create {
            customer,
            email,
            mode,
            tenant_domain,
            expires_in,
            scope,
            scope_groups,
            output,
        } => {
            let mut new = NewInvitation::parse(
                &customer,
                &email,
                &mode,
                tenant_domain.as_deref(),
                Some(&expires_in),
            )?;
            new.scope = invited_scope(scope.as_deref(), &scope_groups)?;
            let issued = invitations::create(&pool, cx, &new, &Actor::Cli, None).await?;
            print_issued(&issued, output.json);
            deliver_now(&cfg, &pool).await;
        }
        InviteCommand::Resend { id, output } => {
            let issued = invitations::resend(&pool, cx, id, &Actor::Cli).await?;
            print_issued(&issued, output.json);
            deliver_now(&cfg, &pool).await;
        }
        InviteCommand::Revoke { id } => {
            let revoked = invitations::revoke(&pool, id, &Actor::Cli).await?;
            println!(
                "invitation {} for {} revoked",
                revoked.id, revoked.customer_name
            );
        }
        InviteCommand::List {
            status,
            limit,
            output,
        } => {
            let status = status.as_deref().map(InvitationStatus::parse).transpose()?;
            let filter = Filter {
                status,
                limit: limit.clamp(1, 10_000),
                ..Filter::default()
            };
            let (rows, total) = invitations::list(&pool, &filter).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("invitations serialise")
                );
            } else if rows.is_empty() {
                println!("no invitations");
            } else {
                println!(
                    "{:<36}  {:<10}  {:<24}  {:<28}  {:<12}  EXPIRES",
                    "ID", "STATUS", "CUSTOMER", "EMAIL", "MODE"
                );
                for i in &rows {
                    println!(
                        "{:<36}  {:<10}  {:<24}  {:<28}  {:<12}  {}",
                        i.id,
                        i.status.as_str(),
                        truncate(&i.customer_name, 24),
                        truncate(&i.admin_email, 28),
                        i.consent_mode.as_str(),
                        format::datetime(i.expires_at)
                    );
                }
                println!("{} of {total} invitation(s)", rows.len());
            }
        }
    }
    Ok(())
}

fn print_issued(issued: &invitations::Issued, json: bool) {
    let i = &issued.invitation;
    if json {
        let value = serde_json::json!({
            "id": i.id,
            "link": issued.link.as_str(),
            "expires_at": i.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "status": i.status,
            "customer": i.customer_name,
            "email": i.admin_email,
            "mode": i.consent_mode,
            "sync_scope": i.sync_scope,
            "scope_groups": i.scope_groups,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("json serialises")
        );
    } else {
        println!("id:      {}", i.id);
        println!("link:    {}", issued.link);
        println!("expires: {}", format::datetime(i.expires_at));
        if let Some(scope) = i.scope() {
            println!("scope:   {}", scope.described());
        }
        eprintln!("The link is shown only now; Gangway keeps only its hash.");
    }
}

/// The CLI sends right away when it can; otherwise the server's worker retries later.
async fn deliver_now(cfg: &Config, pool: &PgPool) {
    let Some(url) = &cfg.smtp_url else {
        eprintln!(
            "No GANGWAY_SMTP_URL: the email is queued; send the link yourself or configure mail."
        );
        return;
    };
    let outcome = match mail::Mailer::new(url, &cfg.mail_from) {
        Ok(mailer) => mail::deliver_due(pool, &cfg.keys, &mailer)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(done) if done.sent > 0 && done.failed == 0 => eprintln!("Email sent."),
        Ok(_) => eprintln!("Email not sent yet: it stays queued and `gangway serve` retries it."),
        Err(e) => eprintln!("Email queued, not sent ({e}); `gangway serve` retries it."),
    }
}
