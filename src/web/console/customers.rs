//! Customers: the list, one customer's page (contact, notes, its invitations and tenants), and
//! creating or editing one (admins).

use super::FormErrors;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::invitations::Row as InvitationRow;
use super::list::{Empty, ListPage, ListQuery, link};
use super::tenants::Row as TenantRow;
use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::customers::{self, Customer, CustomerDetails, CustomerError, Field, Listed};
use crate::invitations::{self, Filter};
use crate::tenants;
use crate::types::CustomerId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

const PER_PAGE: i64 = 25;
/// How many invitations a customer's page shows before linking to the full list.
const INVITATIONS_SHOWN: i64 = 25;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::CUSTOMERS, get(list))
        .route(paths::NEW_CUSTOMER, get(new_form).post(create))
        .route(paths::CUSTOMER, get(detail))
        .route(paths::EDIT_CUSTOMER, get(edit_form).post(update))
}

// ---------------------------------------------------------------------------------------------
// The list

struct Row {
    url: String,
    name: String,
    contact: Option<String>,
    invitations: i64,
    tenants: i64,
    created: When,
}

impl From<&Listed> for Row {
    fn from(l: &Listed) -> Self {
        Self {
            url: paths::customer(l.customer.id),
            name: l.customer.name.clone(),
            contact: l.customer.contact.clone(),
            invitations: l.invitations,
            tenants: l.connected_tenants,
            created: When::new(l.customer.created_at),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/customers.html")]
struct CustomersPage {
    chrome: Chrome,
    list: ListPage<Row>,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<()>,
) -> Result<CustomersPage> {
    let (found, total) = customers::list(
        &state.db,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Customers);
    let first = Empty::first_run(
        "No customers yet",
        "A customer is created with its first invitation, or here with its contact and notes.",
        chrome
            .is_admin
            .then(|| ("New customer", paths::NEW_CUSTOMER.to_owned())),
    );
    let rows = found.iter().map(Row::from).collect();
    Ok(CustomersPage {
        chrome,
        list: ListPage::new(
            query,
            paths::CUSTOMERS,
            PER_PAGE,
            rows,
            total,
            "customers",
            first,
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// One customer

#[derive(Template, WebTemplate)]
#[template(path = "console/customer.html")]
struct DetailPage {
    chrome: Chrome,
    customer: Customer,
    created: When,
    notice: Option<&'static str>,
    invitations: Vec<InvitationRow>,
    /// When there are more than shown: the total and the full list's address.
    more_invitations: Option<(i64, String)>,
    tenants: Vec<TenantRow>,
    edit_url: String,
    invite_url: String,
}

#[derive(Deserialize, Default)]
struct DetailQuery {
    done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<DetailPage> {
    let id = parse_id(&id)?;
    let customer = customers::get(&state.db, id).await?;
    let filter = Filter {
        customer_id: Some(id),
        limit: INVITATIONS_SHOWN,
        ..Filter::default()
    };
    let (invitations, total) = invitations::list(&state.db, &filter).await?;
    let tenants = tenants::for_customer(&state.db, id).await?;
    let notice = match query.done.as_deref() {
        Some("created") => Some("Customer created."),
        Some("updated") => Some("Customer details saved."),
        _ => None,
    };
    Ok(DetailPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Customers),
        created: When::new(customer.created_at),
        notice,
        more_invitations: (total > invitations.len() as i64).then(|| {
            (
                total,
                link(paths::INVITATIONS, &[("customer", id.to_string())]),
            )
        }),
        invitations: invitations.iter().map(InvitationRow::from).collect(),
        tenants: tenants.iter().map(TenantRow::from).collect(),
        edit_url: paths::edit_customer(id),
        invite_url: link(
            paths::NEW_INVITATION,
            &[("customer_name", customer.name.clone())],
        ),
        customer,
    })
}

// ---------------------------------------------------------------------------------------------
// Creating and editing

/// The form as typed, kept whole when it has to be shown again.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct CustomerForm {
    name: String,
    contact: String,
    notes: String,
}

impl From<&Customer> for CustomerForm {
    fn from(c: &Customer) -> Self {
        Self {
            name: c.name.clone(),
            contact: c.contact.clone().unwrap_or_default(),
            notes: c.notes.clone().unwrap_or_default(),
        }
    }
}

/// One message per field, in the form's order.
#[derive(Default)]
struct FieldErrors {
    name: Option<String>,
    contact: Option<String>,
    notes: Option<String>,
}

impl FieldErrors {
    fn from_errors(errors: Vec<CustomerError>) -> Self {
        let mut out = Self::default();
        for e in errors {
            let message = e.to_string();
            match e {
                CustomerError::Invalid {
                    field: Field::Contact,
                    ..
                } => out.contact = Some(message),
                CustomerError::Invalid {
                    field: Field::Notes,
                    ..
                } => out.notes = Some(message),
                _ => out.name = Some(message),
            }
        }
        out
    }
}

impl FormErrors for FieldErrors {
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        [
            ("name", &self.name),
            ("contact", &self.contact),
            ("notes", &self.notes),
        ]
        .into()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/customer_form.html")]
struct FormPage {
    chrome: Chrome,
    /// `None` when creating.
    customer: Option<(CustomerId, String)>,
    action: String,
    form: CustomerForm,
    errors: FieldErrors,
}

impl FormPage {
    fn new(chrome: Chrome, editing: Option<&Customer>, form: CustomerForm) -> Self {
        Self {
            chrome,
            action: editing.map_or_else(
                || paths::NEW_CUSTOMER.to_owned(),
                |c| paths::edit_customer(c.id),
            ),
            customer: editing.map(|c| (c.id, c.name.clone())),
            form,
            errors: FieldErrors::default(),
        }
    }

    /// The form again with its problems, as 422.
    fn refused(mut self, errors: FieldErrors) -> Response {
        self.errors = errors;
        (StatusCode::UNPROCESSABLE_ENTITY, self).into_response()
    }
}

async fn new_form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
) -> FormPage {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Customers);
    FormPage::new(chrome, None, CustomerForm::default())
}

/// Saves a valid form (`create` or `update`), or shows it again with its problems.
fn save(
    page: FormPage,
    result: std::result::Result<Customer, CustomerError>,
    done: &str,
) -> Result<Response> {
    match result {
        Ok(saved) => {
            Ok(Redirect::to(&format!("{}?done={done}", paths::customer(saved.id))).into_response())
        }
        Err(e @ (CustomerError::NameTaken(_) | CustomerError::Invalid { .. })) => {
            Ok(page.refused(FieldErrors::from_errors(vec![e])))
        }
        Err(e) => Err(e.into()),
    }
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<CustomerForm>,
) -> Result<Response> {
    let page = FormPage::new(
        Chrome::new(&state, &operator, csrf, Section::Customers),
        None,
        form.clone(),
    );
    let details = match CustomerDetails::parse(&form.name, &form.contact, &form.notes) {
        Ok(details) => details,
        Err(errors) => return Ok(page.refused(FieldErrors::from_errors(errors))),
    };
    let actor = Actor::Operator(operator.email);
    let result = customers::create(&state.db, &details, &actor).await;
    save(page, result, "created")
}

async fn edit_form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
) -> Result<FormPage> {
    let customer = customers::get(&state.db, parse_id(&id)?).await?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Customers);
    Ok(FormPage::new(
        chrome,
        Some(&customer),
        CustomerForm::from(&customer),
    ))
}

async fn update(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<CustomerForm>,
) -> Result<Response> {
    let customer = customers::get(&state.db, parse_id(&id)?).await?;
    let page = FormPage::new(
        Chrome::new(&state, &operator, csrf, Section::Customers),
        Some(&customer),
        form.clone(),
    );
    let details = match CustomerDetails::parse(&form.name, &form.contact, &form.notes) {
        Ok(details) => details,
        Err(errors) => return Ok(page.refused(FieldErrors::from_errors(errors))),
    };
    let actor = Actor::Operator(operator.email);
    let result = customers::update(&state.db, customer.id, &details, &actor).await;
    save(page, result, "updated")
}
